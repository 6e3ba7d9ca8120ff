package refresher

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/utils/clock"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/kube-ecr-refresher/kube-ecr-refresher/internal/kube"
	"github.com/kube-ecr-refresher/kube-ecr-refresher/internal/registry"
)

const (
	testSecret = "ecr-pull"
	testHost   = "123456789012.dkr.ecr.eu-west-1.amazonaws.com"
)

// testT0 is when the tests' fake clock starts.
func testT0() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) }

func testOptions() Options {
	return Options{
		SecretName:               testSecret,
		ServiceAccounts:          []string{"default"},
		RefreshRemainingFraction: 0.5,
		MinRefreshInterval:       time.Minute,
		RetryInitial:             10 * time.Second,
		RetryMax:                 40 * time.Second,
		Workers:                  2,
	}
}

// token is an ECR-like token for testHost.
func token(fetched time.Time, lifetime time.Duration, password string) registry.Credentials {
	return registry.Credentials{
		Auths:     []registry.Auth{{Host: testHost, Username: "AWS", Password: password}},
		FetchedAt: fetched,
		ExpiresAt: fetched.Add(lifetime),
	}
}

func mustPayload(t *testing.T, tok registry.Credentials) *kube.Payload {
	t.Helper()
	p, err := kube.NewPayload(tok)
	if err != nil {
		t.Fatalf("NewPayload: %v", err)
	}
	return p
}

// fakeClock is a fake clock whose NewTimer records each deadline. It is the
// controller's tokenClock (the workqueue runs on the embedded FakeClock, so
// its timers are not recorded): a test knows when the token loop waits and
// until when.
type fakeClock struct {
	*testingclock.FakeClock

	mu        sync.Mutex
	deadlines []time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{FakeClock: testingclock.NewFakeClock(testT0())}
}

func (c *fakeClock) NewTimer(d time.Duration) clock.Timer {
	deadline := c.Now().Add(d)
	tm := c.FakeClock.NewTimer(d)
	c.mu.Lock()
	c.deadlines = append(c.deadlines, deadline)
	c.mu.Unlock()
	return tm
}

// awaitTimer waits until the token loop has set its nth timer (1-based), that
// is, until it has done its nth fetch and is waiting, and returns its deadline.
func (c *fakeClock) awaitTimer(t *testing.T, n int) time.Time {
	t.Helper()
	var deadline time.Time
	eventually(t, fmt.Sprintf("token loop timer %d", n), func() bool {
		c.mu.Lock()
		defer c.mu.Unlock()
		if len(c.deadlines) < n {
			return false
		}
		deadline = c.deadlines[n-1]
		return true
	})
	return deadline
}

// fakeTokens is a TokenSource run by a script: next gets the fetch's index
// (0-based) and the fake clock's time.
type fakeTokens struct {
	clk clock.PassiveClock

	mu    sync.Mutex
	next  func(n int, now time.Time) (registry.Credentials, error)
	times []time.Time
}

func (f *fakeTokens) Fetch(context.Context) (registry.Credentials, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	now := f.clk.Now()
	n := len(f.times)
	f.times = append(f.times, now)
	return f.next(n, now)
}

func (f *fakeTokens) set(next func(n int, now time.Time) (registry.Credentials, error)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.next = next
}

// fetchTimes returns when each fetch happened.
func (f *fakeTokens) fetchTimes() []time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.times)
}

// freshTokens fetches a new token of lifetime each time, with password pw-<n>
// for the nth fetch (1-based).
func freshTokens(lifetime time.Duration) func(int, time.Time) (registry.Credentials, error) {
	return func(n int, now time.Time) (registry.Credentials, error) {
		return token(now, lifetime, fmt.Sprintf("pw-%d", n+1)), nil
	}
}

func failingTokens(err error) func(int, time.Time) (registry.Credentials, error) {
	return func(int, time.Time) (registry.Credentials, error) { return registry.Credentials{}, err }
}

// syncBuffer is a log sink safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// env is a Controller over a fake clientset, a fake clock and fake tokens,
// with its caches started and synced.
type env struct {
	client *fake.Clientset
	clk    *fakeClock
	tokens *fakeTokens
	logs   *syncBuffer
	c      *Controller
}

func newEnv(t *testing.T, opts Options, objs ...k8sruntime.Object) *env {
	t.Helper()
	return newEnvFor(t, withResourceVersions(fake.NewClientset(objs...)), newFakeClock(), opts)
}

// withResourceVersions makes the fake stamp every create and update with an
// increasing resourceVersion, as the API server does, so that the write
// overlay on the caches can tell our write from an older informer copy.
// (The fake still never rejects a stale one: conflicts are proven on the
// real API server.)
func withResourceVersions(client *fake.Clientset) *fake.Clientset {
	var rv atomic.Int64
	rv.Store(1000)
	client.PrependReactor("*", "*", func(a k8stesting.Action) (bool, k8sruntime.Object, error) {
		// Creates and updates carry the object (both action types match).
		w, ok := a.(interface{ GetObject() k8sruntime.Object })
		if !ok {
			return false, nil, nil
		}
		if m, err := meta.Accessor(w.GetObject()); err == nil {
			m.SetResourceVersion(strconv.FormatInt(rv.Add(1), 10))
		}
		return false, nil, nil
	})
	return client
}

// newEnvFor builds another controller over client, as a restarted replica or
// a new leader would be.
func newEnvFor(t *testing.T, client *fake.Clientset, clk *fakeClock, opts Options) *env {
	t.Helper()
	e := &env{
		client: client,
		clk:    clk,
		tokens: &fakeTokens{clk: clk, next: failingTokens(errors.New("no token scripted"))},
		logs:   &syncBuffer{},
	}
	log := slog.New(slog.NewJSONHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	c, err := New(client, e.tokens, opts, log, clk.FakeClock)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	c.tokenClock = clk
	e.c = c
	ctx, cancel := context.WithCancel(t.Context())
	c.Caches().Start(ctx)
	t.Cleanup(func() {
		cancel()
		c.Caches().Shutdown()
	})
	eventually(t, "caches synced", c.Caches().Synced)
	return e
}

// lead runs Lead until stop is called or the test ends.
func (e *env) lead(t *testing.T) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- e.c.Lead(ctx) }()
	stop = sync.OnceFunc(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Lead: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Lead did not return after its context ended")
		}
	})
	t.Cleanup(stop)
	return stop
}

// setPayload stores tok as the current token, as a successful fetch does.
func (e *env) setPayload(t *testing.T, tok registry.Credentials) *kube.Payload {
	t.Helper()
	p := mustPayload(t, tok)
	e.c.payload.Store(p)
	return p
}

// syncAll syncs each namespace in the cache once and returns the namespaces
// whose sync failed.
func (e *env) syncAll(t *testing.T) []string {
	t.Helper()
	nss, err := e.c.Caches().Namespaces.List(labels.Everything())
	if err != nil {
		t.Fatal(err)
	}
	var failed []string
	for _, ns := range nss {
		if err := e.c.SyncNamespace(t.Context(), ns.Name); err != nil {
			failed = append(failed, ns.Name)
		}
	}
	slices.Sort(failed)
	return failed
}

// writes lists the write actions so far, in order, as "verb resource namespace".
func (e *env) writes() []string {
	var out []string
	for _, a := range e.client.Actions() {
		switch a.GetVerb() {
		case "create", "update", "patch", "delete":
			out = append(out, a.GetVerb()+" "+a.GetResource().Resource+" "+a.GetNamespace())
		}
	}
	return out
}

func (e *env) writeCount() int { return len(e.writes()) }

// writesSince lists, sorted, the write actions after the first n.
func (e *env) writesSince(n int) []string {
	out := e.writes()[n:]
	slices.Sort(out)
	return out
}

// secrets returns every Secret named testSecret, by namespace.
func (e *env) secrets(t *testing.T) map[string]*corev1.Secret {
	t.Helper()
	list, err := e.client.CoreV1().Secrets("").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]*corev1.Secret{}
	for i := range list.Items {
		if s := &list.Items[i]; s.Name == testSecret {
			out[s.Namespace] = s
		}
	}
	return out
}

// secretState returns, by namespace, the password our Secret holds, or
// "foreign" for a Secret we do not own.
func (e *env) secretState(t *testing.T) map[string]string {
	t.Helper()
	out := map[string]string{}
	for ns, s := range e.secrets(t) {
		out[ns] = passwordOf(s)
	}
	return out
}

func passwordOf(s *corev1.Secret) string {
	if !kube.Owned(s) {
		return "foreign"
	}
	if s.Type != corev1.SecretTypeDockerConfigJson {
		return "type " + string(s.Type)
	}
	var doc struct {
		Auths map[string]struct {
			Password string `json:"password"`
		} `json:"auths"`
	}
	if err := json.Unmarshal(s.Data[corev1.DockerConfigJsonKey], &doc); err != nil {
		return "malformed"
	}
	return doc.Auths[testHost].Password
}

// pullSecrets returns the imagePullSecrets of every ServiceAccount, by "namespace/name".
func (e *env) pullSecrets(t *testing.T) map[string][]string {
	t.Helper()
	list, err := e.client.CoreV1().ServiceAccounts("").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]string{}
	for _, sa := range list.Items {
		var names []string
		for _, r := range sa.ImagePullSecrets {
			names = append(names, r.Name)
		}
		out[sa.Namespace+"/"+sa.Name] = names
	}
	return out
}

// awaitCached waits until the controller's caches show the namespaces' Secrets
// up to date for the current token and their ServiceAccounts listing it, so
// that a following sync sees our own writes.
func (e *env) awaitCached(t *testing.T, namespaces ...string) {
	t.Helper()
	eventually(t, "caches to show our writes", func() bool {
		p := e.c.Payload()
		for _, ns := range namespaces {
			s, err := e.c.Caches().Secret(ns, testSecret)
			if err != nil || s == nil {
				return false
			}
			if kube.PlanSecret(s, p, e.clk.Now(), e.c.opts.RefreshRemainingFraction).Action != kube.SecretUpToDate {
				return false
			}
			sas, err := e.c.Caches().ServiceAccountsIn(ns)
			if err != nil {
				return false
			}
			for _, sa := range sas {
				if !kube.HasPullSecret(sa, testSecret) {
					return false
				}
			}
		}
		return true
	})
}

// eventually polls cond until it holds, failing the test after a deadline.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func namespace(name string, mod ...func(*corev1.Namespace)) *corev1.Namespace {
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}, Status: corev1.NamespaceStatus{Phase: corev1.NamespaceActive}}
	for _, m := range mod {
		m(ns)
	}
	return ns
}

func serviceAccount(ns, name string, pull ...string) *corev1.ServiceAccount {
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	for _, p := range pull {
		sa.ImagePullSecrets = append(sa.ImagePullSecrets, corev1.LocalObjectReference{Name: p})
	}
	return sa
}

// addedByUs records on sa that we added testSecret to its imagePullSecrets.
func addedByUs(sa *corev1.ServiceAccount) *corev1.ServiceAccount {
	sa.Annotations = map[string]string{kube.AddedPullSecretsAnnotation: testSecret}
	return sa
}

func foreignSecret(ns string) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: testSecret, Labels: map[string]string{"app.kubernetes.io/managed-by": "Helm"}},
		Type:       corev1.SecretTypeOpaque,
		Data:       map[string][]byte{"password": []byte("hunter2")},
	}
}

// recordingEvents counts the Events the controller posts, by kind.
type recordingEvents struct {
	mu   sync.Mutex
	seen map[string]int
}

func (r *recordingEvents) add(kind string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.seen == nil {
		r.seen = map[string]int{}
	}
	r.seen[kind]++
}

func (r *recordingEvents) count(kind string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.seen[kind]
}

func (r *recordingEvents) SecretNotOurs(*corev1.Namespace, string)       { r.add("SecretNotOurs") }
func (r *recordingEvents) SecretFailed(*corev1.Namespace, string, error) { r.add("SecretFailed") }
func (r *recordingEvents) RefreshFailed(error)                           { r.add("RefreshFailed") }
func (r *recordingEvents) RefreshRecovered()                             { r.add("RefreshRecovered") }
func (r *recordingEvents) TokenExpired(time.Duration)                    { r.add("TokenExpired") }

// recordingObserver records the registries reported failing and counts
// expired tokens.
type recordingObserver struct {
	NopObserver
	mu      sync.Mutex
	failed  []string
	expired atomic.Int64
}

func (o *recordingObserver) ExpiredTokenFetched() { o.expired.Add(1) }

func (o *recordingObserver) RegistryFailed(r string) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.failed = append(o.failed, r)
}
