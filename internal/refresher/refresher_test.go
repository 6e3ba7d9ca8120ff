package refresher

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/kube-ecr-refresher/kube-ecr-refresher/internal/ecr"
	"github.com/kube-ecr-refresher/kube-ecr-refresher/internal/kube"
	"github.com/kube-ecr-refresher/kube-ecr-refresher/internal/registry"
)

// terminatingError is what the API server answers to a create in a
// namespace that is being deleted.
func terminatingError() error {
	err := apierrors.NewForbidden(corev1.Resource("secrets"), testSecret, errors.New("unable to create new content in namespace a because it is being terminated"))
	err.ErrStatus.Details.Causes = []metav1.StatusCause{{Type: corev1.NamespaceTerminatingCause, Message: "namespace a is being terminated"}}
	return err
}

func TestSyncNamespace(t *testing.T) {
	t0 := testT0()
	current := token(t0, 12*time.Hour, "pw-1")
	base := func(extra ...runtime.Object) []runtime.Object {
		return append([]runtime.Object{
			namespace("a"), namespace("b"),
			serviceAccount("a", "default", "other"), serviceAccount("b", "default"),
			serviceAccount("a", "builder"),
		}, extra...)
	}
	ourOldSecret := func(ns string, tok registry.Credentials) *corev1.Secret {
		p, err := kube.NewPayload(tok)
		if err != nil {
			t.Fatal(err)
		}
		return kube.DesiredSecret(ns, testSecret, p)
	}
	opaque := ourOldSecret("a", token(t0, 12*time.Hour, "pw-0"))
	opaque.Type = corev1.SecretTypeOpaque

	tests := []struct {
		name     string
		objs     []runtime.Object
		target   func(*corev1.Namespace) bool
		dryRun   bool
		token    *registry.Credentials // nil: never fetched
		now      time.Time
		react    func(*fake.Clientset)
		sync     []string // namespaces to sync; nil: every cached namespace
		wantFail []string
		// wantSecrets is the password of our Secret by namespace ("foreign" for a foreign one).
		wantSecrets map[string]string
		wantPull    map[string][]string
		wantWrites  []string
	}{
		{
			name:        "Every namespace gets the Secret and its default ServiceAccount lists it after its own entries",
			objs:        base(),
			token:       &current,
			now:         t0.Add(time.Minute),
			wantSecrets: map[string]string{"a": "pw-1", "b": "pw-1"},
			wantPull:    map[string][]string{"a/default": {"other", testSecret}, "a/builder": nil, "b/default": {testSecret}},
			wantWrites:  []string{"create secrets a", "create secrets b", "update serviceaccounts a", "update serviceaccounts b"},
		},
		{
			name:        "Namespaces outside the target filter are left alone",
			objs:        base(),
			target:      func(ns *corev1.Namespace) bool { return ns.Name == "a" },
			token:       &current,
			now:         t0.Add(time.Minute),
			wantSecrets: map[string]string{"a": "pw-1"},
			wantPull:    map[string][]string{"a/default": {"other", testSecret}, "a/builder": nil, "b/default": nil},
			wantWrites:  []string{"create secrets a", "update serviceaccounts a"},
		},
		{
			name: "A namespace that left the target set has our Secret and the entries we added removed",
			objs: []runtime.Object{
				namespace("a"), namespace("b"),
				serviceAccount("a", "default"), addedByUs(serviceAccount("b", "default", "other", testSecret)),
				ourOldSecret("b", current),
			},
			target:      func(ns *corev1.Namespace) bool { return ns.Name == "a" },
			token:       &current,
			now:         t0.Add(time.Minute),
			wantSecrets: map[string]string{"a": "pw-1"},
			wantPull:    map[string][]string{"a/default": {testSecret}, "b/default": {"other"}},
			wantWrites:  []string{"create secrets a", "delete secrets b", "update serviceaccounts a", "update serviceaccounts b"},
		},
		{
			name: "A namespace outside the target set with a foreign Secret keeps the entries naming it",
			objs: []runtime.Object{
				namespace("a"), namespace("b"),
				serviceAccount("a", "default"), serviceAccount("b", "default", "other", testSecret),
				foreignSecret("b"),
			},
			target:      func(ns *corev1.Namespace) bool { return ns.Name == "a" },
			token:       &current,
			now:         t0.Add(time.Minute),
			wantSecrets: map[string]string{"a": "pw-1", "b": "foreign"},
			wantPull:    map[string][]string{"a/default": {testSecret}, "b/default": {"other", testSecret}},
			wantWrites:  []string{"create secrets a", "update serviceaccounts a"},
		},
		{
			name:        "A dry run writes nothing",
			objs:        base(ourOldSecret("b", token(t0.Add(-7*time.Hour), 12*time.Hour, "pw-0"))),
			dryRun:      true,
			token:       &current,
			now:         t0.Add(time.Minute),
			wantSecrets: map[string]string{"b": "pw-0"},
			wantPull:    map[string][]string{"a/default": {"other"}, "a/builder": nil, "b/default": nil},
		},
		{
			name: "A terminating namespace is skipped without error",
			objs: base(
				namespace("c", func(ns *corev1.Namespace) { ns.Status.Phase = corev1.NamespaceTerminating }),
				namespace("d", func(ns *corev1.Namespace) {
					ns.DeletionTimestamp = &metav1.Time{Time: t0}
					ns.Finalizers = []string{"example.com/hold"}
				}),
				serviceAccount("c", "default"), serviceAccount("d", "default"),
			),
			token:       &current,
			now:         t0.Add(time.Minute),
			wantSecrets: map[string]string{"a": "pw-1", "b": "pw-1"},
			wantPull:    map[string][]string{"a/default": {"other", testSecret}, "a/builder": nil, "b/default": {testSecret}, "c/default": nil, "d/default": nil},
			wantWrites:  []string{"create secrets a", "create secrets b", "update serviceaccounts a", "update serviceaccounts b"},
		},
		{
			name:        "A foreign Secret is left untouched and its namespace skipped",
			objs:        base(foreignSecret("a")),
			token:       &current,
			now:         t0.Add(time.Minute),
			wantSecrets: map[string]string{"a": "foreign", "b": "pw-1"},
			wantPull:    map[string][]string{"a/default": {"other"}, "a/builder": nil, "b/default": {testSecret}},
			wantWrites:  []string{"create secrets b", "update serviceaccounts b"},
		},
		{
			name:        "Nothing is written before the first token",
			objs:        base(),
			now:         t0.Add(time.Minute),
			wantSecrets: map[string]string{},
			wantPull:    map[string][]string{"a/default": {"other"}, "a/builder": nil, "b/default": nil},
		},
		{
			name: "An entry someone else added under our Secret's name stays when the namespace leaves the target set",
			objs: []runtime.Object{
				namespace("a"), namespace("b"),
				serviceAccount("a", "default"), serviceAccount("b", "default", "other", testSecret),
				ourOldSecret("b", current),
			},
			target:      func(ns *corev1.Namespace) bool { return ns.Name == "a" },
			token:       &current,
			now:         t0.Add(time.Minute),
			wantSecrets: map[string]string{"a": "pw-1"},
			wantPull:    map[string][]string{"a/default": {testSecret}, "b/default": {"other", testSecret}},
			wantWrites:  []string{"create secrets a", "delete secrets b", "update serviceaccounts a"},
		},
		{
			name:        "An expired token is written where no usable Secret is, never over a valid one",
			objs:        base(ourOldSecret("b", token(t0.Add(11*time.Hour), 12*time.Hour, "pw-0"))),
			token:       &current,
			now:         current.ExpiresAt,
			wantSecrets: map[string]string{"a": "pw-1", "b": "pw-0"},
			wantPull:    map[string][]string{"a/default": {"other", testSecret}, "a/builder": nil, "b/default": {testSecret}},
			wantWrites:  []string{"create secrets a", "update serviceaccounts a", "update serviceaccounts b"},
		},
		{
			name:        "Without a token, a Secret of ours in place still gets its ServiceAccount entries",
			objs:        base(ourOldSecret("b", token(t0, 12*time.Hour, "pw-0"))),
			now:         t0.Add(time.Minute),
			wantSecrets: map[string]string{"b": "pw-0"},
			wantPull:    map[string][]string{"a/default": {"other"}, "a/builder": nil, "b/default": {testSecret}},
			wantWrites:  []string{"update serviceaccounts b"},
		},
		{
			name:        "A namespace missing from the cache is ignored",
			objs:        base(),
			token:       &current,
			now:         t0.Add(time.Minute),
			sync:        []string{"deleted-meanwhile"},
			wantSecrets: map[string]string{},
			wantPull:    map[string][]string{"a/default": {"other"}, "a/builder": nil, "b/default": nil},
		},
		{
			name:  "A namespace that starts terminating during the write is skipped without error",
			objs:  base(),
			token: &current,
			now:   t0.Add(time.Minute),
			react: func(client *fake.Clientset) {
				client.PrependReactor("create", "secrets", func(k8stesting.Action) (bool, runtime.Object, error) {
					return true, nil, terminatingError()
				})
			},
			wantSecrets: map[string]string{},
			wantPull:    map[string][]string{"a/default": {"other"}, "a/builder": nil, "b/default": nil},
			wantWrites:  []string{"create secrets a", "create secrets b"},
		},
		{
			name:  "A failed ServiceAccount write fails the namespace's sync",
			objs:  base(),
			token: &current,
			now:   t0.Add(time.Minute),
			react: func(client *fake.Clientset) {
				client.PrependReactor("update", "serviceaccounts", func(k8stesting.Action) (bool, runtime.Object, error) {
					return true, nil, apierrors.NewInternalError(errors.New("etcd timeout"))
				})
			},
			wantFail:    []string{"a", "b"},
			wantSecrets: map[string]string{"a": "pw-1", "b": "pw-1"},
			wantPull:    map[string][]string{"a/default": {"other"}, "a/builder": nil, "b/default": nil},
			wantWrites:  []string{"create secrets a", "create secrets b", "update serviceaccounts a", "update serviceaccounts b"},
		},
		{
			name:        "Our Secret of the wrong type is deleted and created again",
			objs:        base(opaque),
			token:       &current,
			now:         t0.Add(time.Minute),
			wantSecrets: map[string]string{"a": "pw-1", "b": "pw-1"},
			wantPull:    map[string][]string{"a/default": {"other", testSecret}, "a/builder": nil, "b/default": {testSecret}},
			wantWrites:  []string{"create secrets a", "create secrets b", "delete secrets a", "update serviceaccounts a", "update serviceaccounts b"},
		},
		{
			name:        "A valid Secret from an earlier token is kept until it is due",
			objs:        base(ourOldSecret("a", token(t0.Add(-time.Hour), 12*time.Hour, "pw-0"))),
			token:       &current,
			now:         t0.Add(time.Minute),
			wantSecrets: map[string]string{"a": "pw-0", "b": "pw-1"},
			wantPull:    map[string][]string{"a/default": {"other", testSecret}, "a/builder": nil, "b/default": {testSecret}},
			wantWrites:  []string{"create secrets b", "update serviceaccounts a", "update serviceaccounts b"},
		},
		{
			name:        "A Secret from an earlier token that is due gets the current one",
			objs:        base(ourOldSecret("a", token(t0.Add(-7*time.Hour), 12*time.Hour, "pw-0"))),
			token:       &current,
			now:         t0.Add(time.Minute),
			wantSecrets: map[string]string{"a": "pw-1", "b": "pw-1"},
			wantPull:    map[string][]string{"a/default": {"other", testSecret}, "a/builder": nil, "b/default": {testSecret}},
			wantWrites:  []string{"create secrets b", "update secrets a", "update serviceaccounts a", "update serviceaccounts b"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := testOptions()
			opts.Target = tt.target
			opts.DryRun = tt.dryRun
			e := newEnv(t, opts, tt.objs...)
			e.clk.SetTime(tt.now)
			if tt.token != nil {
				e.setPayload(t, *tt.token)
			}
			if tt.react != nil {
				tt.react(e.client)
			}
			before := e.writeCount()

			var failed []string
			if tt.sync == nil {
				failed = e.syncAll(t)
			} else {
				for _, ns := range tt.sync {
					if err := e.c.SyncNamespace(t.Context(), ns); err != nil {
						failed = append(failed, ns)
					}
				}
			}
			if diff := cmp.Diff(tt.wantFail, failed); diff != "" {
				t.Errorf("failed namespaces mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantSecrets, e.secretState(t)); diff != "" {
				t.Errorf("Secrets mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantPull, e.pullSecrets(t)); diff != "" {
				t.Errorf("imagePullSecrets mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantWrites, e.writesSince(before), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("writes mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestSyncNamespaceLeavesForeignSecretAsItIs(t *testing.T) {
	foreign := foreignSecret("a")
	e := newEnv(t, testOptions(), namespace("a"), serviceAccount("a", "default"), foreign)
	e.clk.SetTime(testT0().Add(time.Minute))
	e.setPayload(t, token(testT0(), 12*time.Hour, "pw-1"))

	for range 2 {
		if err := e.c.SyncNamespace(t.Context(), "a"); err != nil {
			t.Fatalf("SyncNamespace: %v", err)
		}
	}
	if w := e.writes(); len(w) != 0 {
		t.Errorf("writes = %v, want none", w)
	}
	got := e.secrets(t)["a"]
	if diff := cmp.Diff(foreign, got, cmpopts.IgnoreTypes(metav1.TypeMeta{}), cmpopts.IgnoreFields(metav1.ObjectMeta{}, "ManagedFields", "ResourceVersion")); diff != "" {
		t.Errorf("foreign Secret changed (-want +got):\n%s", diff)
	}
	if logs := e.logs.String(); !strings.Contains(logs, "not managed by kube-ecr-refresher") || !strings.Contains(logs, `"namespace":"a"`) {
		t.Errorf("no warning names the skipped namespace; logs:\n%s", logs)
	}
}

func TestSecondPassWritesNothing(t *testing.T) {
	t0 := testT0()
	first := token(t0, 12*time.Hour, "pw-1")

	tests := []struct {
		name string
		// restart runs the second pass in a new controller, as after a
		// restart or a change of leader.
		restart    bool
		second     registry.Credentials
		now        time.Time
		wantWrites []string
	}{
		{
			name:   "Syncing again with the same token writes nothing",
			second: first,
			now:    t0.Add(time.Minute),
		},
		{
			name:    "A restarted controller with the same token writes nothing",
			restart: true,
			second:  first,
			now:     t0.Add(time.Hour),
		},
		{
			name:    "A new leader with a newer token writes nothing while the Secrets are not due",
			restart: true,
			second:  token(t0.Add(time.Hour), 12*time.Hour, "pw-2"),
			now:     t0.Add(time.Hour + time.Minute),
		},
		{
			name:       "A new leader with a newer token updates the Secrets that are due, and only them",
			restart:    true,
			second:     token(t0.Add(6*time.Hour), 12*time.Hour, "pw-2"),
			now:        t0.Add(6 * time.Hour),
			wantWrites: []string{"update secrets a", "update secrets b"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, testOptions(),
				namespace("a"), namespace("b"), namespace("c"),
				serviceAccount("a", "default", "other"), serviceAccount("b", "default"), serviceAccount("a", "builder"),
				foreignSecret("c"), serviceAccount("c", "default"),
			)
			e.clk.SetTime(t0.Add(time.Minute))
			e.setPayload(t, first)
			if failed := e.syncAll(t); failed != nil {
				t.Fatalf("first pass failed in %v", failed)
			}
			e.awaitCached(t, "a", "b")
			before := e.writeCount()

			second := e
			if tt.restart {
				second = newEnvFor(t, e.client, e.clk, testOptions())
			}
			second.clk.SetTime(tt.now)
			second.setPayload(t, tt.second)
			if failed := second.syncAll(t); failed != nil {
				t.Fatalf("second pass failed in %v", failed)
			}
			if diff := cmp.Diff(tt.wantWrites, e.writesSince(before), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("second pass writes mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestRefreshOnce(t *testing.T) {
	t0 := testT0()
	previous := token(t0.Add(-time.Hour), 12*time.Hour, "pw-0")

	tests := []struct {
		name string
		next func(int, time.Time) (registry.Credentials, error)
		// wantWait is the wait before the next fetch; with jitter, the
		// wait is in [wantWait, wantWaitMax].
		wantWait    time.Duration
		wantWaitMax time.Duration
		wantToken   string // password of the current token afterwards
		wantErr     bool
		// noCurrent starts without a current token (pw-0, valid for 11 h).
		noCurrent bool
	}{
		{
			name:      "A 12 hour token is fetched again when half its lifetime remains",
			next:      freshTokens(12 * time.Hour),
			wantWait:  6 * time.Hour,
			wantToken: "pw-1",
		},
		{
			name: "A token fetched a while ago counts from its fetch time",
			next: func(int, time.Time) (registry.Credentials, error) {
				return token(t0.Add(-time.Hour), 12*time.Hour, "pw-1"), nil
			},
			wantWait:  5 * time.Hour,
			wantToken: "pw-1",
		},
		{
			name:      "A token due sooner than the minimum interval waits the minimum interval",
			noCurrent: true,
			next:      freshTokens(90 * time.Second),
			wantWait:  time.Minute,
			wantToken: "pw-1",
		},
		{
			name:      "A token past its refresh time waits the minimum interval",
			noCurrent: true,
			next: func(_ int, now time.Time) (registry.Credentials, error) {
				return token(now.Add(-7*time.Hour), 12*time.Hour, "pw-1"), nil
			},
			wantWait:  time.Minute,
			wantToken: "pw-1",
		},
		{
			name:      "An expired token waits the minimum interval",
			noCurrent: true,
			next: func(_ int, now time.Time) (registry.Credentials, error) {
				return token(now.Add(-13*time.Hour), 12*time.Hour, "pw-1"), nil
			},
			wantWait:  time.Minute,
			wantToken: "pw-1",
		},
		{
			name:      "A token that expires before the current one does not replace it",
			next:      freshTokens(90 * time.Second),
			wantWait:  5 * time.Hour,
			wantToken: "pw-0",
		},
		{
			name: "A token already expired by ECR's clock does not replace a valid current one",
			next: func(_ int, now time.Time) (registry.Credentials, error) {
				return token(now, -time.Minute, "pw-1"), nil
			},
			wantWait:  5 * time.Hour,
			wantToken: "pw-0",
		},
		{
			name: "A token already expired by ECR's clock becomes current when there is no other and is fetched again after the minimum interval",
			next: func(_ int, now time.Time) (registry.Credentials, error) {
				return token(now, -time.Minute, "pw-1"), nil
			},
			noCurrent: true,
			wantWait:  time.Minute,
			wantToken: "pw-1",
		},
		{
			name:        "A failed fetch keeps the current token and waits the first retry delay",
			next:        failingTokens(errors.New("AccessDeniedException")),
			wantWait:    10 * time.Second,
			wantWaitMax: 12 * time.Second,
			wantToken:   "pw-0",
			wantErr:     true,
		},
		{
			name: "A token without auths is a failed fetch",
			next: func(_ int, now time.Time) (registry.Credentials, error) {
				return registry.Credentials{FetchedAt: now, ExpiresAt: now.Add(12 * time.Hour)}, nil
			},
			wantWait:    10 * time.Second,
			wantWaitMax: 12 * time.Second,
			wantToken:   "pw-0",
			wantErr:     true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, testOptions())
			if !tt.noCurrent {
				e.setPayload(t, previous)
			}
			e.tokens.set(tt.next)
			backoff := e.c.opts.RetryInitial

			got, err := e.c.refreshOnce(t.Context(), &backoff)
			if (err != nil) != tt.wantErr {
				t.Errorf("refreshOnce error = %v, want error: %t", err, tt.wantErr)
			}
			wantMax := max(tt.wantWait, tt.wantWaitMax)
			if got < tt.wantWait || got > wantMax {
				t.Errorf("wait = %s, want %s to %s", got, tt.wantWait, wantMax)
			}
			if pw := e.c.Payload().Token.Auths[0].Password; pw != tt.wantToken {
				t.Errorf("current token %q, want %q", pw, tt.wantToken)
			}
			if strings.Contains(e.logs.String(), "pw-") {
				t.Errorf("logs show a password:\n%s", e.logs.String())
			}
		})
	}
}

// Some registries failing: the others are refreshed at once, the failing
// ones are named, and the fetch is retried with backoff, not in 6 h.
func TestRefreshOnceWithSomeRegistriesFailing(t *testing.T) {
	opts := testOptions()
	obs := &recordingObserver{}
	events := &recordingEvents{}
	opts.Observer, opts.Events = obs, events
	e := newEnv(t, opts)
	e.setPayload(t, token(e.clk.Now().Add(-time.Hour), 12*time.Hour, "pw-0"))
	failed := []string{"registries 222222222222 in us-east-1"}
	e.tokens.set(func(_ int, now time.Time) (registry.Credentials, error) {
		return token(now, 12*time.Hour, "pw-1"), &ecr.PartialError{Failed: failed, Err: errors.New("AccessDeniedException")}
	})
	backoff := e.c.opts.RetryInitial
	wait, err := e.c.refreshOnce(t.Context(), &backoff)
	if !errors.Is(err, ecr.ErrPartial) {
		t.Errorf("refreshOnce error = %v, want ecr.ErrPartial", err)
	}
	if pw := e.c.Payload().Token.Auths[0].Password; pw != "pw-1" {
		t.Errorf("current token %q, want the fresh pw-1", pw)
	}
	if maxWait := e.c.opts.RetryInitial * 6 / 5; wait > maxWait {
		t.Errorf("next fetch in %s, want a retry within %s", wait, maxWait)
	}
	if diff := cmp.Diff(failed, obs.failed); diff != "" {
		t.Errorf("registries reported failing (-want +got):\n%s", diff)
	}
	if events.count("RefreshFailed") != 1 {
		t.Errorf("TokenRefreshFailed Events = %d, want 1", events.count("RefreshFailed"))
	}
	if !strings.Contains(e.logs.String(), failed[0]) {
		t.Errorf("the failing registry is not named in the logs:\n%s", e.logs.String())
	}

	// The same registry failing again posts no new Event; another one does.
	_, _ = e.c.refreshOnce(t.Context(), &backoff)
	if got := events.count("RefreshFailed"); got != 1 {
		t.Errorf("TokenRefreshFailed Events after the same failure = %d, want 1", got)
	}
	failed = []string{"ecr public in us-east-1"}
	_, _ = e.c.refreshOnce(t.Context(), &backoff)
	if got := events.count("RefreshFailed"); got != 2 {
		t.Errorf("TokenRefreshFailed Events after another registry failed = %d, want 2", got)
	}
}

func TestRefreshOnceBackoff(t *testing.T) {
	e := newEnv(t, testOptions())
	e.tokens.set(failingTokens(errors.New("ThrottlingException")))
	opts := e.c.opts
	backoff := opts.RetryInitial

	// Jitter is random: many rounds make a delay beyond RetryMax show.
	base := opts.RetryInitial
	for i := range 40 {
		got, err := e.c.refreshOnce(t.Context(), &backoff)
		if err == nil {
			t.Fatalf("retry %d: refreshOnce succeeded, want the fetch error", i+1)
		}
		hi := min(time.Duration(1.2*float64(base)), opts.RetryMax)
		if got < base || got > hi {
			t.Fatalf("retry %d: wait = %s, want %s to %s", i+1, got, base, hi)
		}
		base = min(2*base, opts.RetryMax)
	}
	if e.c.Payload() != nil {
		t.Fatal("a token was published although every fetch failed")
	}

	e.tokens.set(freshTokens(12 * time.Hour))
	if got, err := e.c.refreshOnce(t.Context(), &backoff); err != nil || got != 6*time.Hour {
		t.Errorf("after recovery refreshOnce = (%s, %v), want (6h, nil)", got, err)
	}
	if backoff != opts.RetryInitial {
		t.Errorf("backoff after a success = %s, want it reset to %s", backoff, opts.RetryInitial)
	}
}

func TestLeadSyncsEveryNamespace(t *testing.T) {
	foreign := foreignSecret("c")
	e := newEnv(t, testOptions(),
		namespace("a"), namespace("b"), namespace("c"),
		serviceAccount("a", "default", "other"), serviceAccount("b", "default"), serviceAccount("c", "default"),
		foreign,
	)
	e.tokens.set(freshTokens(12 * time.Hour))
	e.lead(t)

	want := map[string]string{"a": "pw-1", "b": "pw-1", "c": "foreign"}
	eventually(t, "Secrets in every namespace", func() bool { return cmp.Equal(want, e.secretState(t)) })
	wantPull := map[string][]string{"a/default": {"other", testSecret}, "b/default": {testSecret}, "c/default": nil}
	eventually(t, "ServiceAccounts patched", func() bool { return cmp.Equal(wantPull, e.pullSecrets(t)) })

	// A namespace created later is served when its events arrive.
	if _, err := e.client.CoreV1().Namespaces().Create(t.Context(), namespace("late"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.CoreV1().ServiceAccounts("late").Create(t.Context(), serviceAccount("late", "default"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	want["late"] = "pw-1"
	wantPull["late/default"] = []string{testSecret}
	eventually(t, "Secret in the new namespace", func() bool { return cmp.Equal(want, e.secretState(t)) })
	eventually(t, "new ServiceAccount patched", func() bool { return cmp.Equal(wantPull, e.pullSecrets(t)) })

	e.awaitCached(t, "a", "b", "late")
	if diff := cmp.Diff(foreign, e.secrets(t)["c"], cmpopts.IgnoreTypes(metav1.TypeMeta{}), cmpopts.IgnoreFields(metav1.ObjectMeta{}, "ManagedFields", "ResourceVersion")); diff != "" {
		t.Errorf("foreign Secret changed (-want +got):\n%s", diff)
	}
	if n := len(e.tokens.fetchTimes()); n != 1 {
		t.Errorf("fetched %d tokens, want 1", n)
	}
	if logs := e.logs.String(); strings.Contains(logs, "pw-1") || strings.Contains(logs, "QVdTOnB3LTE") {
		t.Errorf("logs show the token:\n%s", logs)
	}
}

func TestLeadRefreshSchedule(t *testing.T) {
	tests := []struct {
		name     string
		lifetime time.Duration
		fraction float64
		wantWait time.Duration
	}{
		{name: "A 12 hour token is fetched again after 6 hours by default", lifetime: 12 * time.Hour, fraction: 0.5, wantWait: 6 * time.Hour},
		{name: "With a quarter to remain a 12 hour token is fetched again after 9 hours", lifetime: 12 * time.Hour, fraction: 0.25, wantWait: 9 * time.Hour},
		{name: "A 90 second token is fetched again after the minimum interval", lifetime: 90 * time.Second, fraction: 0.5, wantWait: time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := testOptions()
			opts.RefreshRemainingFraction = tt.fraction
			e := newEnv(t, opts, namespace("a"), serviceAccount("a", "default"))
			e.tokens.set(freshTokens(tt.lifetime))
			t0 := e.clk.Now()
			e.lead(t)

			first := e.clk.awaitTimer(t, 1)
			if want := t0.Add(tt.wantWait); !first.Equal(want) {
				t.Fatalf("next fetch at %s, want %s", first, want)
			}
			eventually(t, "first token written", func() bool { return e.secretState(t)["a"] == "pw-1" })
			e.awaitCached(t, "a")

			e.clk.SetTime(first.Add(-time.Second))
			if n := len(e.tokens.fetchTimes()); n != 1 {
				t.Fatalf("fetched %d tokens before the refresh time, want 1", n)
			}
			e.clk.SetTime(first)
			second := e.clk.awaitTimer(t, 2)
			if want := first.Add(tt.wantWait); !second.Equal(want) {
				t.Errorf("fetch after the refresh at %s, want %s", second, want)
			}
			eventually(t, "second token written", func() bool { return e.secretState(t)["a"] == "pw-2" })
		})
	}
}

func TestLeadExpiredTokenDoesNotSpin(t *testing.T) {
	e := newEnv(t, testOptions(), namespace("a"), serviceAccount("a", "default"))
	e.tokens.set(func(_ int, now time.Time) (registry.Credentials, error) {
		return token(now.Add(-13*time.Hour), 12*time.Hour, "expired"), nil
	})
	t0 := e.clk.Now()
	e.lead(t)

	// Step the clock 10 minutes, 10 seconds at a time; whenever a step
	// reaches the token loop's deadline, wait for its next fetch.
	timers := 1
	deadline := e.clk.awaitTimer(t, timers)
	for e.clk.Now().Before(t0.Add(10 * time.Minute)) {
		e.clk.Step(10 * time.Second)
		if !e.clk.Now().Before(deadline) {
			timers++
			deadline = e.clk.awaitTimer(t, timers)
		}
	}

	times := e.tokens.fetchTimes()
	if len(times) != 11 {
		t.Errorf("fetched %d times in 10 minutes, want 11 (once a minute)", len(times))
	}
	for i := 1; i < len(times); i++ {
		if gap := times[i].Sub(times[i-1]); gap < e.c.opts.MinRefreshInterval {
			t.Errorf("fetch %d came %s after the previous one, want at least %s", i+1, gap, e.c.opts.MinRefreshInterval)
		}
	}
	// With no usable Secret in place the expired token is written once (as
	// the kubelet would still try it); the same token again writes nothing.
	if diff := cmp.Diff([]string{"create secrets a", "update serviceaccounts a"}, e.writes()); diff != "" {
		t.Errorf("writes (-want +got):\n%s", diff)
	}
}

func TestLeadKeepsSecretsWhenECRFails(t *testing.T) {
	e := newEnv(t, testOptions(),
		namespace("a"), namespace("b"),
		serviceAccount("a", "default"), serviceAccount("b", "default"),
	)
	opts := e.c.opts
	errECR := errors.New("AccessDeniedException: not authorized")
	e.tokens.set(func(n int, now time.Time) (registry.Credentials, error) {
		if n == 0 {
			return token(now, 12*time.Hour, "pw-1"), nil
		}
		return registry.Credentials{}, errECR
	})
	t0 := e.clk.Now()
	e.lead(t)

	deadline := e.clk.awaitTimer(t, 1)
	eventually(t, "first token written", func() bool {
		return cmp.Equal(map[string]string{"a": "pw-1", "b": "pw-1"}, e.secretState(t))
	})
	e.awaitCached(t, "a", "b")
	snapshot := e.secrets(t)
	writesBefore := e.writeCount()

	// Every fetch from the refresh time on fails: the retry delay doubles
	// from RetryInitial up to RetryMax (with jitter up to 20%, never beyond).
	if want := t0.Add(6 * time.Hour); !deadline.Equal(want) {
		t.Fatalf("first refresh at %s, want %s", deadline, want)
	}
	base := opts.RetryInitial
	for i := 2; i <= 7; i++ {
		e.clk.SetTime(deadline)
		deadline = e.clk.awaitTimer(t, i)
		fetched := e.tokens.fetchTimes()[i-1]
		wait := deadline.Sub(fetched)
		hi := min(time.Duration(1.2*float64(base)), opts.RetryMax)
		if wait < base || wait > hi {
			t.Errorf("retry after failure %d in %s, want %s to %s", i-1, wait, base, hi)
		}
		base = min(2*base, opts.RetryMax)
	}

	if diff := cmp.Diff(snapshot, e.secrets(t)); diff != "" {
		t.Errorf("Secrets changed while ECR failed (-before +after):\n%s", diff)
	}
	if w := e.writesSince(writesBefore); len(w) != 0 {
		t.Errorf("writes while ECR failed: %v", w)
	}
	if pw := e.c.Payload().Token.Auths[0].Password; pw != "pw-1" {
		t.Errorf("current token %q, want the last good one", pw)
	}

	// ECR recovers: the next retry fetches a token that goes everywhere,
	// and the loop goes back to the refresh schedule.
	e.tokens.set(func(_ int, now time.Time) (registry.Credentials, error) {
		return token(now, 12*time.Hour, "pw-recovered"), nil
	})
	e.clk.SetTime(deadline)
	next := e.clk.awaitTimer(t, 8)
	if want := deadline.Add(6 * time.Hour); !next.Equal(want) {
		t.Errorf("refresh after recovery at %s, want %s", next, want)
	}
	eventually(t, "recovered token written", func() bool {
		return cmp.Equal(map[string]string{"a": "pw-recovered", "b": "pw-recovered"}, e.secretState(t))
	})
	if logs := e.logs.String(); strings.Contains(logs, "pw-") {
		t.Errorf("logs show a token:\n%s", logs)
	}
}

func TestLeadNeverFetchedWritesNothing(t *testing.T) {
	e := newEnv(t, testOptions(), namespace("a"), serviceAccount("a", "default", "other"))
	e.tokens.set(failingTokens(errors.New("NoCredentialProviders")))
	e.lead(t)

	deadline := e.clk.awaitTimer(t, 1)
	for i := 2; i <= 5; i++ {
		e.clk.SetTime(deadline)
		deadline = e.clk.awaitTimer(t, i)
	}
	if e.c.Payload() != nil {
		t.Error("a token was published although every fetch failed")
	}
	if w := e.writes(); len(w) != 0 {
		t.Errorf("writes without a token: %v", w)
	}
	if diff := cmp.Diff(map[string][]string{"a/default": {"other"}}, e.pullSecrets(t)); diff != "" {
		t.Errorf("imagePullSecrets changed (-want +got):\n%s", diff)
	}
}
