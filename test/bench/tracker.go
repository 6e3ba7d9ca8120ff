package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"

	"github.com/kube-ecr-refresher/kube-ecr-refresher/internal/kube"
)

// trackerPoll is how often a waiter looks at the tracker's state. It bounds
// how late a wait returns, not what it measures: every time reported comes
// from the arrival of a watch event.
const trackerPoll = 25 * time.Millisecond

// tracker watches the controller's Secrets and the default ServiceAccounts
// in every namespace, and timestamps each change as its watch event arrives.
type tracker struct {
	secret    string
	factories []informers.SharedInformerFactory

	mu sync.Mutex
	ns map[string]*nsState
}

// nsState is what the tracker knows about one namespace.
type nsState struct {
	password   string    // of a valid Secret of ours; "" when there is none
	secretAt   time.Time // when the Secret holding password arrived
	saCreated  time.Time // when the default ServiceAccount first arrived
	saListedAt time.Time // since when it lists the Secret; zero when it does not
}

// startTracker starts watches on the Secrets named secret and the
// ServiceAccounts named default, cluster-wide, and waits for their initial lists.
func startTracker(ctx context.Context, client kubernetes.Interface, secret string) (*tracker, error) {
	t := &tracker{secret: secret, ns: map[string]*nsState{}}
	byName := func(name string) informers.SharedInformerFactory {
		sel := fields.OneTermEqualSelector("metadata.name", name).String()
		return informers.NewSharedInformerFactoryWithOptions(client, 0,
			informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.FieldSelector = sel }))
	}
	secrets := byName(secret)
	sas := byName("default")
	t.factories = []informers.SharedInformerFactory{secrets, sas}
	handlers := []struct {
		inf cache.SharedIndexInformer
		h   cache.ResourceEventHandlerFuncs
	}{
		{secrets.Core().V1().Secrets().Informer(), cache.ResourceEventHandlerFuncs{
			AddFunc:    func(obj any) { t.onSecret(obj, false) },
			UpdateFunc: func(_, obj any) { t.onSecret(obj, false) },
			DeleteFunc: func(obj any) { t.onSecret(obj, true) },
		}},
		{sas.Core().V1().ServiceAccounts().Informer(), cache.ResourceEventHandlerFuncs{
			AddFunc:    func(obj any) { t.onServiceAccount(obj, false) },
			UpdateFunc: func(_, obj any) { t.onServiceAccount(obj, false) },
			DeleteFunc: func(obj any) { t.onServiceAccount(obj, true) },
		}},
	}
	var synced []cache.InformerSynced
	for _, x := range handlers {
		if _, err := x.inf.AddEventHandler(x.h); err != nil {
			return nil, fmt.Errorf("add tracker handler: %w", err)
		}
		synced = append(synced, x.inf.HasSynced)
	}
	for _, f := range t.factories {
		f.Start(ctx.Done())
	}
	if !cache.WaitForCacheSync(ctx.Done(), synced...) {
		t.stop()
		return nil, fmt.Errorf("sync tracker caches: %w", ctx.Err())
	}
	return t, nil
}

// stop waits for the watches to end; the context given to startTracker
// must have been cancelled.
func (t *tracker) stop() {
	for _, f := range t.factories {
		f.Shutdown()
	}
}

func (t *tracker) state(ns string) *nsState {
	s, ok := t.ns[ns]
	if !ok {
		s = &nsState{}
		t.ns[ns] = s
	}
	return s
}

func (t *tracker) onSecret(obj any, deleted bool) {
	now := time.Now()
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	s, ok := obj.(*corev1.Secret)
	if !ok {
		return
	}
	pw := ""
	if !deleted {
		pw = secretPassword(s)
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	st := t.state(s.Namespace)
	if pw != st.password {
		st.password, st.secretAt = pw, now
	}
}

func (t *tracker) onServiceAccount(obj any, deleted bool) {
	now := time.Now()
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	sa, ok := obj.(*corev1.ServiceAccount)
	if !ok {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	st := t.state(sa.Namespace)
	if deleted {
		st.saCreated, st.saListedAt = time.Time{}, time.Time{}
		return
	}
	if st.saCreated.IsZero() {
		st.saCreated = now
	}
	switch listed := kube.HasPullSecret(sa, t.secret); {
	case listed && st.saListedAt.IsZero():
		st.saListedAt = now
	case !listed:
		st.saListedAt = time.Time{}
	}
}

// secretPassword returns the ECR password held by a well-formed Secret of
// ours, or "" when s is not one: wrong type, not labelled as ours, no
// parsable expiry annotation, or data that is not one AWS auth entry.
func secretPassword(s *corev1.Secret) string {
	if s.Type != corev1.SecretTypeDockerConfigJson || !kube.Owned(s) {
		return ""
	}
	if _, err := time.Parse(time.RFC3339, s.Annotations[kube.ExpiresAtAnnotation]); err != nil {
		return ""
	}
	var cfg struct {
		Auths map[string]struct {
			Username string `json:"username"`
			Password string `json:"password"`
			Auth     string `json:"auth"`
		} `json:"auths"`
	}
	if json.Unmarshal(s.Data[corev1.DockerConfigJsonKey], &cfg) != nil || len(cfg.Auths) != 1 {
		return ""
	}
	for _, a := range cfg.Auths {
		dec, err := base64.StdEncoding.DecodeString(a.Auth)
		if err != nil || a.Username != "AWS" || string(dec) != a.Username+":"+a.Password {
			return ""
		}
		return a.Password
	}
	return ""
}

// servedAt is when namespace ns was last brought in line: its Secret holds
// a password accept takes and its default ServiceAccount lists the Secret.
// ok is false while that is not so.
func (t *tracker) servedAt(ns string, accept func(string) bool) (at time.Time, ok bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.servedAtLocked(ns, accept)
}

func (t *tracker) servedAtLocked(ns string, accept func(string) bool) (time.Time, bool) {
	st, ok := t.ns[ns]
	if !ok || st.password == "" || !accept(st.password) || st.saListedAt.IsZero() {
		return time.Time{}, false
	}
	return later(st.secretAt, st.saListedAt), true
}

// allServed reports how many of names are served (see servedAt) and, when
// all are, the time the last one was.
func (t *tracker) allServed(names []string, accept func(string) bool) (served int, last time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, ns := range names {
		if at, ok := t.servedAtLocked(ns, accept); ok {
			served++
			last = later(last, at)
		}
	}
	return served, last
}

// firstSecret is the earliest arrival of a Secret accept takes among names.
func (t *tracker) firstSecret(names []string, accept func(string) bool) time.Time {
	t.mu.Lock()
	defer t.mu.Unlock()
	var first time.Time
	for _, ns := range names {
		st, ok := t.ns[ns]
		if ok && st.password != "" && accept(st.password) && (first.IsZero() || st.secretAt.Before(first)) {
			first = st.secretAt
		}
	}
	return first
}

// snapshot returns a copy of what the tracker knows about ns.
func (t *tracker) snapshot(ns string) nsState {
	t.mu.Lock()
	defer t.mu.Unlock()
	if st, ok := t.ns[ns]; ok {
		return *st
	}
	return nsState{}
}

// countServiceAccounts is how many of names have their default ServiceAccount.
func (t *tracker) countServiceAccounts(names []string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, ns := range names {
		if st, ok := t.ns[ns]; ok && !st.saCreated.IsZero() {
			n++
		}
	}
	return n
}

// waitFor polls cond until it reports done, ctx ends or timeout passes; the
// error then includes cond's last progress note.
func waitFor(ctx context.Context, timeout time.Duration, what string, cond func() (bool, string)) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(trackerPoll)
	defer tick.Stop()
	for {
		done, note := cond()
		if done {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for %s: %w (%s)", what, context.Cause(ctx), note)
		case <-tick.C:
		}
	}
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}
