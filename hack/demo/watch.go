package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/kube-ecr-refresher/kube-ecr-refresher/internal/kube"
)

// narrator writes the demo's story to one writer; safe for concurrent use.
type narrator struct {
	mu sync.Mutex
	w  io.Writer
}

// line writes one line.
func (n *narrator) line(format string, args ...any) {
	n.mu.Lock()
	defer n.mu.Unlock()
	fmt.Fprintf(n.w, format+"\n", args...)
}

// step announces what the demo does next.
func (n *narrator) step(format string, args ...any) { n.line("==> "+format, args...) }

// event reports something that happened in the cluster or to a replica.
func (n *narrator) event(format string, args ...any) {
	n.line(time.Now().Format("15:04:05")+"  "+format, args...)
}

// block writes preformatted text as is.
func (n *narrator) block(s string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	_, _ = io.WriteString(n.w, s)
}

// watcher follows the cluster through informers and narrates what the
// controller does: namespaces served (with how long it took), namespaces
// left alone, and who holds the Lease.
type watcher struct {
	client    kubernetes.Interface
	secret    string
	leaseNS   string
	leaseName string
	say       *narrator

	factory         informers.SharedInformerFactory
	namespaces      cache.SharedIndexInformer
	secrets         cache.SharedIndexInformer
	serviceAccounts cache.SharedIndexInformer
	cancel          context.CancelFunc
	stopOnce        sync.Once

	mu         sync.Mutex
	pids       map[string]int          // replica identity → pid
	holder     string                  // our Lease's holder as last seen
	lastLeader string                  // the last non-empty holder
	served     map[string]bool         // namespace → has our Secret and the default ServiceAccount lists it
	pending    map[string]pendingSince // namespace → since when it waits to be served, when known
	skipped    map[string]bool         // namespace → the controller reported a foreign Secret
}

// pendingSince records when a namespace started waiting to be served, and why.
type pendingSince struct {
	since time.Time
	again bool // it was served before, then something removed our work
}

func newWatcher(client kubernetes.Interface, secret, leaseNS, leaseName string, say *narrator) *watcher {
	return &watcher{
		client:    client,
		secret:    secret,
		leaseNS:   leaseNS,
		leaseName: leaseName,
		say:       say,
		pids:      map[string]int{},
		served:    map[string]bool{},
		pending:   map[string]pendingSince{},
		skipped:   map[string]bool{},
	}
}

// start runs the informers until stop and waits for their caches to fill.
func (w *watcher) start(ctx context.Context) error {
	ctx, w.cancel = context.WithCancel(ctx)
	w.factory = informers.NewSharedInformerFactory(w.client, 0)
	core := w.factory.Core().V1()
	w.namespaces = core.Namespaces().Informer()
	w.secrets = core.Secrets().Informer()
	w.serviceAccounts = core.ServiceAccounts().Informer()
	events := core.Events().Informer()
	leases := w.factory.Coordination().V1().Leases().Informer()

	handlers := []struct {
		inf cache.SharedIndexInformer
		h   cache.ResourceEventHandler
	}{
		{w.namespaces, cache.ResourceEventHandlerDetailedFuncs{
			AddFunc: func(obj any, initial bool) {
				if ns, ok := obj.(*corev1.Namespace); ok {
					w.appeared(ns.Name, initial)
				}
			},
			UpdateFunc: func(_, obj any) { w.checkObject(obj, "") },
		}},
		{w.secrets, objectHandler(func(obj any) { w.checkObject(obj, w.secret) })},
		{w.serviceAccounts, objectHandler(func(obj any) { w.checkObject(obj, "default") })},
		{events, cache.ResourceEventHandlerFuncs{
			AddFunc:    w.onEvent,
			UpdateFunc: func(_, obj any) { w.onEvent(obj) },
		}},
		{leases, cache.ResourceEventHandlerFuncs{
			AddFunc:    func(obj any) { w.onLease(obj, false) },
			UpdateFunc: func(_, obj any) { w.onLease(obj, false) },
			DeleteFunc: func(obj any) {
				if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
					obj = d.Obj
				}
				w.onLease(obj, true)
			},
		}},
	}
	for _, h := range handlers {
		if _, err := h.inf.AddEventHandler(h.h); err != nil {
			return fmt.Errorf("add event handler: %w", err)
		}
	}
	w.factory.Start(ctx.Done())
	for typ, ok := range w.factory.WaitForCacheSync(ctx.Done()) {
		if !ok {
			return fmt.Errorf("sync %v cache: %w", typ, context.Cause(ctx))
		}
	}
	return nil
}

// stop ends the informers and waits for them. It is safe to call more than
// once, and before start.
func (w *watcher) stop() {
	w.stopOnce.Do(func() {
		if w.cancel == nil {
			return
		}
		w.cancel()
		w.factory.Shutdown()
	})
}

// objectHandler calls fn for every add, update and delete.
func objectHandler(fn func(obj any)) cache.ResourceEventHandlerFuncs {
	return cache.ResourceEventHandlerFuncs{
		AddFunc:    fn,
		UpdateFunc: func(_, obj any) { fn(obj) },
		DeleteFunc: func(obj any) {
			if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			fn(obj)
		},
	}
}

// addReplica names the pid of a leader election identity, for the story.
func (w *watcher) addReplica(identity string, pid int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.pids[identity] = pid
}

// leader returns our Lease's holder as last seen, or "".
func (w *watcher) leader() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.holder
}

// describe returns "replica-1 (pid 123)" for a known identity.
func (w *watcher) describe(identity string) string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.describeLocked(identity)
}

func (w *watcher) describeLocked(identity string) string {
	if pid, ok := w.pids[identity]; ok {
		return fmt.Sprintf("%s (pid %d)", identity, pid)
	}
	return identity
}

// settled reports whether a replica leads, every namespace but those in
// leftAlone is served, every one in leftAlone was reported as holding a
// foreign Secret, and every one in created exists. The detail lists what
// is still missing.
func (w *watcher) settled(created, leftAlone []string) (bool, string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	var missing []string
	if w.holder == "" {
		missing = append(missing, "no leader")
	}
	names := w.namespaces.GetStore().ListKeys()
	for _, ns := range created {
		if !slices.Contains(names, ns) {
			missing = append(missing, ns+" not seen yet")
		}
	}
	for _, ns := range names {
		switch {
		case slices.Contains(leftAlone, ns):
			if !w.skipped[ns] {
				missing = append(missing, ns+" not reported as left alone")
			}
		case !w.served[ns]:
			missing = append(missing, ns+" not served")
		}
	}
	slices.Sort(missing)
	return len(missing) == 0, strings.Join(missing, "; ")
}

// appeared records a namespace the informer reports; one created after the
// watcher started is timed until it is served.
func (w *watcher) appeared(ns string, initial bool) {
	if !initial {
		w.mu.Lock()
		w.pending[ns] = pendingSince{since: time.Now()}
		w.mu.Unlock()
	}
	w.check(ns)
}

// checkObject checks the namespace of obj when obj is named name (any
// name when name is empty; a Namespace is its own namespace).
func (w *watcher) checkObject(obj any, name string) {
	m, ok := obj.(metav1.Object)
	if !ok || (name != "" && m.GetName() != name) {
		return
	}
	ns := m.GetNamespace()
	if ns == "" {
		ns = m.GetName()
	}
	w.check(ns)
}

// check compares a namespace's state with what was last narrated and
// narrates a change: served (with the time it took, when known), or no
// longer served (our Secret or ServiceAccount entry removed).
func (w *watcher) check(ns string) {
	item, exists, err := w.namespaces.GetStore().GetByKey(ns)
	if err != nil || !exists {
		return // its add, which checks again, is still to come
	}
	terminating := item.(*corev1.Namespace).DeletionTimestamp != nil
	servedNow, why := w.servedNow(ns)

	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case servedNow && !w.served[ns]:
		w.served[ns] = true
		p, timed := w.pending[ns]
		delete(w.pending, ns)
		if !timed {
			return
		}
		took := time.Since(p.since).Round(time.Millisecond)
		if p.again {
			w.say.event("%s served again %s later", ns, took)
			return
		}
		w.say.event("%s served %s after it was created: Secret %s written, ServiceAccount default lists it", ns, took, w.secret)
	case !servedNow && w.served[ns] && !terminating:
		w.served[ns] = false
		w.pending[ns] = pendingSince{since: time.Now(), again: true}
		w.say.event("%s: %s; the leader repairs it", ns, why)
	}
}

// servedNow reports whether ns holds our Secret and its default
// ServiceAccount lists it; if not, it says what is missing.
func (w *watcher) servedNow(ns string) (bool, string) {
	item, exists, err := w.secrets.GetStore().GetByKey(ns + "/" + w.secret)
	if err != nil || !exists {
		return false, "Secret " + w.secret + " is gone"
	}
	if !kube.Owned(item.(*corev1.Secret)) {
		return false, "Secret " + w.secret + " is not ours"
	}
	item, exists, err = w.serviceAccounts.GetStore().GetByKey(ns + "/default")
	if err != nil || !exists {
		return false, "ServiceAccount default is gone"
	}
	if !kube.HasPullSecret(item.(*corev1.ServiceAccount), w.secret) {
		return false, "ServiceAccount default no longer lists " + w.secret
	}
	return true, ""
}

// onEvent narrates, once per namespace, the controller's Event saying a
// namespace holds a Secret of our name that is not ours.
func (w *watcher) onEvent(obj any) {
	e, ok := obj.(*corev1.Event)
	if !ok || e.Reason != kube.ReasonSecretNotOurs || e.InvolvedObject.Kind != "Namespace" {
		return
	}
	ns := e.InvolvedObject.Name
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.skipped[ns] {
		return
	}
	w.skipped[ns] = true
	w.say.event("%s left alone: its Secret %s is not labelled %s=%s (Warning event %s)",
		ns, w.secret, kube.ManagedByLabel, kube.ManagedByValue, e.Reason)
}

// onLease narrates a change of our Lease's holder. A deleted Lease has none.
func (w *watcher) onLease(obj any, deleted bool) {
	lease, ok := obj.(*coordinationv1.Lease)
	if !ok || lease.Namespace != w.leaseNS || lease.Name != w.leaseName {
		return
	}
	holder := ""
	if !deleted && lease.Spec.HolderIdentity != nil {
		holder = *lease.Spec.HolderIdentity
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	prev := w.holder
	if holder == prev {
		return
	}
	w.holder = holder
	switch {
	case holder == "":
		w.say.event("%s released the Lease; the other replica takes it within seconds", w.describeLocked(prev))
	case w.lastLeader == "":
		w.say.event("%s leads: it holds the Lease %s/%s", w.describeLocked(holder), w.leaseNS, w.leaseName)
	case w.lastLeader == holder:
		w.say.event("%s leads again", w.describeLocked(holder))
	default:
		w.say.event("leadership moved from %s to %s", w.describeLocked(w.lastLeader), w.describeLocked(holder))
	}
	if holder != "" {
		w.lastLeader = holder
	}
}
