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
