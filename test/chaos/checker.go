package main

import (
	"context"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	listerscorev1 "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/kube-ecr-refresher/kube-ecr-refresher/internal/kube"
	"github.com/kube-ecr-refresher/kube-ecr-refresher/test/fakeecr"
)

// checkInterval is how often invariants 1 and 6 are evaluated.
const checkInterval = 250 * time.Millisecond

// youngGrace: a namespace that became eligible this recently does not hold
// up the "every namespace served" of a repair measurement.
const youngGrace = 3 * time.Second

// checker watches, with its own informers on the admin client, the Secrets
// of our name and the default ServiceAccounts, and checks invariants 1, 2,
// 3 and 6 as they happen.
type checker struct {
	w       *world
	ecr     *fakeecr.Server
	secret  string
	secrets listerscorev1.SecretLister
	sas     listerscorev1.ServiceAccountLister
	synced  []cache.InformerSynced

	mu         sync.Mutex
	issued     map[string]time.Time // password → expiry on the local clock
	answers    int                  // answers already read into issued
	pending    []*repairWatch
	repairs    map[string][]time.Duration // fault kind → time to repair
	overlapped map[string]int             // fault kind → repairs cut short by another fault
	unserved   map[string]string          // namespace → why, at the last check
}

// repairWatch waits for the repair after one fault: namespace ns served
// again, or every eligible namespace when ns is empty.
type repairWatch struct {
	kind string
	ns   string
	from time.Time
}

func newChecker(ctx context.Context, client kubernetes.Interface, w *world, l *ledger, srv *fakeecr.Server, secretName string) *checker {
	c := &checker{w: w, ecr: srv, secret: secretName, issued: map[string]time.Time{},
		repairs: map[string][]time.Duration{}, overlapped: map[string]int{}, unserved: map[string]string{}}
	byName := func(name string) informers.SharedInformerOption {
		return informers.WithTweakListOptions(func(o *metav1.ListOptions) {
			o.FieldSelector = fields.OneTermEqualSelector("metadata.name", name).String()
		})
	}
	sf := informers.NewSharedInformerFactoryWithOptions(client, 0, byName(secretName))
	af := informers.NewSharedInformerFactoryWithOptions(client, 0, byName("default"))
	si := sf.Core().V1().Secrets()
	ai := af.Core().V1().ServiceAccounts()
	c.secrets, c.sas = si.Lister(), ai.Lister()
	_, _ = si.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { c.onSecret(obj.(*corev1.Secret)) },
		UpdateFunc: func(_, obj any) { c.onSecret(obj.(*corev1.Secret)) },
		DeleteFunc: func(obj any) {
			if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
				obj = d.Obj
			}
			if s, ok := obj.(*corev1.Secret); ok {
				c.onSecretGone(s)
			}
		},
	})
	_, _ = ai.Informer().AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { l.observe(obj.(*corev1.ServiceAccount)) },
		UpdateFunc: func(_, obj any) { l.observe(obj.(*corev1.ServiceAccount)) },
	})
	c.synced = []cache.InformerSynced{si.Informer().HasSynced, ai.Informer().HasSynced}
	sf.Start(ctx.Done())
	af.Start(ctx.Done())
	return c
}

func (c *checker) waitSynced(ctx context.Context) bool {
	return cache.WaitForCacheSync(ctx.Done(), c.synced...)
}

func (c *checker) onSecret(s *corev1.Secret) {
	v := secretVersion{seen: time.Now(), rv: s.ResourceVersion, ours: kube.Owned(s), password: decodePassword(s)}
	v.fetched, _ = time.Parse(time.RFC3339, s.Annotations[kube.FetchedAtAnnotation])
	v.expires, _ = time.Parse(time.RFC3339, s.Annotations[kube.ExpiresAtAnnotation])
	c.w.mu.Lock()
	defer c.w.mu.Unlock()
	c.w.secretHist[s.Namespace] = append(c.w.secretHist[s.Namespace], v)
	st := c.w.ns[s.Namespace]
	// Events may arrive after the harness recorded the foreign version:
	// only a later version is a change.
	if st != nil && st.foreign && st.foreignRV != "" && rvAfter(s.ResourceVersion, st.foreignRV) {
		c.w.violateLocked(Violation{Invariant: InvForeignKept, Time: v.seen, Namespace: s.Namespace,
			Detail: fmt.Sprintf("foreign Secret changed from resourceVersion %s to %s (managed-by %q)", st.foreignRV, s.ResourceVersion, s.Labels[kube.ManagedByLabel])})
		st.foreignRV = s.ResourceVersion // once per change
	}
}

func (c *checker) onSecretGone(s *corev1.Secret) {
	now := time.Now()
	c.w.mu.Lock()
	defer c.w.mu.Unlock()
	c.w.secretHist[s.Namespace] = append(c.w.secretHist[s.Namespace], secretVersion{seen: now})
	st := c.w.ns[s.Namespace]
	// The deletion of the foreign version itself, not of ours just before it.
	if st != nil && st.foreign && !st.deleted && st.foreignRV != "" && !rvAfter(st.foreignRV, s.ResourceVersion) {
		c.w.violateLocked(Violation{Invariant: InvForeignKept, Time: now, Namespace: s.Namespace,
			Detail: "foreign Secret deleted by someone other than its owner"})
		st.foreignRV = ""
	}
}

// rvAfter reports whether resourceVersion a is newer than b. They are
// opaque to clients in general; on one etcd they are increasing integers,
// which this harness relies on.
func rvAfter(a, b string) bool {
	x, err1 := strconv.ParseInt(a, 10, 64)
	y, err2 := strconv.ParseInt(b, 10, 64)
	return err1 == nil && err2 == nil && x > y
}

// refreshIssued reads the answers the ECR endpoint gave since the last call.
func (c *checker) refreshIssued() {
	answers := c.ecr.Answers()
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, a := range answers[c.answers:] {
		if a.Password != "" {
			c.issued[a.Password] = a.ExpiresAt
		}
	}
	c.answers = len(answers)
}

// served reports whether namespace ns has a Secret of ours holding a
// password the endpoint issued that has not expired, listed by default.
func (c *checker) served(ns string, now time.Time) (bool, string) {
	s, err := c.secrets.Secrets(ns).Get(c.secret)
	if err != nil {
		return false, "no secret"
	}
	if !kube.Owned(s) {
		return false, "secret not ours"
	}
	if s.Type != corev1.SecretTypeDockerConfigJson {
		return false, "type " + string(s.Type)
	}
	pw := decodePassword(s)
	c.mu.Lock()
	exp, ok := c.issued[pw]
	c.mu.Unlock()
	switch {
	case !ok:
		return false, "password not issued by the endpoint"
	case !exp.After(now):
		return false, "token expired at " + exp.Format(time.RFC3339)
	}
	sa, err := c.sas.ServiceAccounts(ns).Get("default")
	if err != nil {
		return false, "no default serviceaccount"
	}
	if !kube.HasPullSecret(sa, c.secret) {
		return false, "default serviceaccount does not list it"
	}
	return true, ""
}

// ours reports what of ours is left in ns: a Secret with our label, an
// entry we recorded in the default ServiceAccount.
func (c *checker) ours(ns string) string {
	if s, err := c.secrets.Secrets(ns).Get(c.secret); err == nil && kube.Owned(s) {
		return "secret " + s.Name + " with our label"
	}
	// Only the controller adds entries of this name here.
	if sa, err := c.sas.ServiceAccounts(ns).Get("default"); err == nil && kube.HasPullSecret(sa, c.secret) {
		return "default serviceaccount entry " + c.secret
	}
	return ""
}

// check evaluates invariants 1 and 6 once.
func (c *checker) check(now time.Time) {
	c.refreshIssued()
	c.w.mu.Lock()
	names := make([]string, 0, len(c.w.ns))
	for n := range c.w.ns {
		names = append(names, n)
	}
	c.w.mu.Unlock()
	sort.Strings(names)
	allOK := true
	unserved := map[string]string{}
	gone := map[string]bool{} // not eligible: nothing to repair there
	for _, n := range names {
		ok, why := c.served(n, now)
		left := c.ours(n)
		c.w.mu.Lock()
		st := c.w.ns[n]
		switch {
		case st == nil || st.deleted || st.foreign:
			gone[n] = true
		case st.untargeted:
			gone[n] = true
			// The same budget as invariant 1's: time under a blocking fault
			// (no leader can write) is not held against cleanup.
			last := st.events[len(st.events)-1].at
			unexcused := now.Sub(last) - c.w.excusedLocked(last, now)
			if left != "" && unexcused > c.w.budget && !st.leftCleanAt.Equal(last) {
				st.leftCleanAt = last
				c.w.violateLocked(Violation{Invariant: InvLeftClean, Time: now, Namespace: n,
					Detail: fmt.Sprintf("%s, %s after the namespace left the target set, %s of it outside any blocking fault (budget %s)",
						left, now.Sub(last).Round(time.Second), unexcused.Round(time.Second), c.w.budget)})
			}
		case ok:
			if st.gap != nil {
				c.w.closeGapLocked(st, now)
			}
		default:
			from := maxTime(st.since, st.created)
			if st.gap == nil {
				st.gap = &gap{from: maxTime(from, now.Add(-checkInterval))}
			}
			if now.Sub(from) > youngGrace {
				allOK = false // a namespace seconds old is not yet a repair
			}
			unserved[n] = why
		}
		c.w.mu.Unlock()
	}
	c.mu.Lock()
	c.unserved = unserved
	pending := c.pending[:0]
	for _, r := range c.pending {
		_, bad := unserved[r.ns]
		switch {
		case now.Before(r.from):
			pending = append(pending, r)
		case r.ns == "" && allOK, r.ns != "" && !bad && !gone[r.ns]:
			c.repairs[r.kind] = append(c.repairs[r.kind], now.Sub(r.from))
		case r.ns != "" && gone[r.ns]:
			// deleted or handed over meanwhile: nothing was left to repair
		default:
			pending = append(pending, r)
		}
	}
	c.pending = pending
	c.mu.Unlock()
}

// watchRepair measures the time from from until ns (every namespace when
// ns is empty) is served again, for the report under kind.
func (c *checker) watchRepair(kind, ns string, from time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pending = append(c.pending, &repairWatch{kind: kind, ns: ns, from: from})
}

// interrupt drops the repair measurements still under way: a fault that
// takes the leader or the token away, injected before they completed,
// would be measured with them. They are counted as overlapped.
func (c *checker) interrupt(at time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	pending := c.pending[:0]
	for _, r := range c.pending {
		if r.from.Before(at) {
			c.overlapped[r.kind]++
			continue
		}
		pending = append(pending, r)
	}
	c.pending = pending
}

// overlaps returns, per kind, how many repair measurements another fault cut short.
func (c *checker) overlaps() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := map[string]int{}
	for k, v := range c.overlapped {
		out[k] = v
	}
	return out
}

// repairTimes returns the times to repair per fault kind, and per kind the
// number of faults still unrepaired.
func (c *checker) repairTimes() (map[string][]time.Duration, map[string]int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	open := map[string]int{}
	for _, r := range c.pending {
		open[r.kind]++
	}
	out := map[string][]time.Duration{}
	for k, v := range c.repairs {
		out[k] = append([]time.Duration(nil), v...)
	}
	return out, open
}

// closeAll ends every open gap at now (the end of the run).
func (c *checker) closeAll(now time.Time) {
	c.w.mu.Lock()
	defer c.w.mu.Unlock()
	for _, st := range c.w.ns {
		if st.gap != nil {
			c.w.closeGapLocked(st, now)
		}
	}
}

// run checks every checkInterval until ctx ends.
func (c *checker) run(ctx context.Context) {
	t := time.NewTicker(checkInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			c.check(now)
		}
	}
}

// unservedNow returns the namespaces unserved at the last check, and why.
func (c *checker) unservedNow() map[string]string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.unserved
}
