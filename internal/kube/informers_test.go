package kube

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unsafe"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/cache"
)

// eventLog counts informer add events by kind and name.
type eventLog struct {
	mu   sync.Mutex
	adds []string
}

func (l *eventLog) handler(kind string) cache.ResourceEventHandler {
	return cache.ResourceEventHandlerFuncs{AddFunc: func(obj any) {
		m, ok := obj.(metav1.Object)
		if !ok {
			return
		}
		l.mu.Lock()
		defer l.mu.Unlock()
		l.adds = append(l.adds, kind+" "+m.GetNamespace()+"/"+m.GetName())
	}}
}

func (l *eventLog) sorted() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := slices.Clone(l.adds)
	slices.Sort(out)
	return out
}

// eventually polls cond until it holds or a deadline passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func startCaches(t *testing.T, c *Caches) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	c.Start(ctx)
	t.Cleanup(func() {
		cancel()
		c.Shutdown()
	})
	syncCtx, syncCancel := context.WithTimeout(ctx, 5*time.Second)
	defer syncCancel()
	if !c.WaitForSync(syncCtx) {
		t.Fatal("caches did not sync")
	}
	if !c.Synced() {
		t.Fatal("Synced() = false after WaitForSync")
	}
}

func TestCaches(t *testing.T) {
	managed := []metav1.ManagedFieldsEntry{{Manager: "kubectl", Operation: metav1.ManagedFieldsOperationUpdate}}
	p := mustPayload(t, testToken(testT0(), 12*time.Hour, "pw"))
	ours := DesiredSecret("a", testSecret, p)
	objs := []runtime.Object{
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "a", ManagedFields: managed}},
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "b"}},
		ours,
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "default", ManagedFields: managed}},
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "builder"}},
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "other"}},
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "b", Name: "default"}},
	}

	tests := []struct {
		name            string
		serviceAccounts []string
		wantIn          map[string][]string // namespace -> ServiceAccounts to patch
	}{
		{
			name:            "Named ServiceAccounts are returned where they exist",
			serviceAccounts: []string{"default", "builder"},
			wantIn:          map[string][]string{"a": {"builder", "default"}, "b": {"default"}, "c": nil},
		},
		{
			name:            "The wildcard returns every ServiceAccount of the namespace",
			serviceAccounts: []string{AllServiceAccounts},
			wantIn:          map[string][]string{"a": {"builder", "default", "other"}, "b": {"default"}, "c": nil},
		},
		{
			name:            "No ServiceAccount names returns none",
			serviceAccounts: nil,
			wantIn:          map[string][]string{"a": nil, "b": nil},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var copies []runtime.Object
			for _, o := range objs {
				copies = append(copies, o.DeepCopyObject())
			}
			client := fake.NewClientset(copies...)
			var events eventLog
			c, err := NewCaches(client, testSecret, tt.serviceAccounts, 0, CacheHandlers{
				Namespace:      events.handler("namespace"),
				Secret:         events.handler("secret"),
				ServiceAccount: events.handler("serviceaccount"),
			})
			if err != nil {
				t.Fatalf("NewCaches: %v", err)
			}
			startCaches(t, c)

			for ns, want := range tt.wantIn {
				sas, err := c.ServiceAccountsIn(ns)
				if err != nil {
					t.Fatalf("ServiceAccountsIn(%s): %v", ns, err)
				}
				var got []string
				for _, sa := range sas {
					got = append(got, sa.Name)
					if sa.ManagedFields != nil {
						t.Errorf("cached ServiceAccount %s/%s keeps managed fields", sa.Namespace, sa.Name)
					}
				}
				slices.Sort(got)
				if diff := cmp.Diff(want, got); diff != "" {
					t.Errorf("ServiceAccountsIn(%s) mismatch (-want +got):\n%s", ns, diff)
				}
			}

			// Only the wildcard's cache is read by namespace: no other
			// cache pays for a namespace index.
			for i, inf := range c.informers {
				indexers := inf.GetIndexer().GetIndexers()
				_, wild := c.saMC[AllServiceAccounts]
				wantIndex := wild && i == len(c.informers)-1
				if got := len(indexers) > 0; got != wantIndex {
					t.Errorf("informer %d has indexes %v, want a namespace index: %v", i, slices.Collect(maps.Keys(indexers)), wantIndex)
				}
			}

			nsA, err := c.Namespaces.Get("a")
			if err != nil {
				t.Fatalf("namespace a not cached: %v", err)
			}
			if nsA.ManagedFields != nil {
				t.Error("cached namespace keeps managed fields")
			}

			s, err := c.Secret("a", testSecret)
			if err != nil || s == nil {
				t.Fatalf("secret not cached: %v", err)
			}
			if s.Data != nil {
				t.Error("cached Secret keeps its data")
			}
			if got := PlanSecret(s, p, testT0(), 0.5); got.Action != SecretUpToDate {
				t.Errorf("PlanSecret on the cached copy of a current Secret = %v (%s), want up to date", got.Action, got.Reason)
			}

			// Events reach the handlers, including for objects created later.
			if _, err := client.CoreV1().Namespaces().Create(t.Context(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "c"}}, metav1.CreateOptions{}); err != nil {
				t.Fatal(err)
			}
			eventually(t, "namespace c in the cache", func() bool {
				_, err := c.Namespaces.Get("c")
				return err == nil
			})
			want := []string{"namespace /a", "namespace /b", "namespace /c", "secret a/" + testSecret}
			for _, o := range objs {
				if sa, ok := o.(*corev1.ServiceAccount); ok && len(tt.serviceAccounts) > 0 {
					// The fake clientset ignores field selectors, so each
					// ServiceAccount informer sees every ServiceAccount.
					for range tt.serviceAccounts {
						want = append(want, "serviceaccount "+sa.Namespace+"/"+sa.Name)
					}
				}
			}
			slices.Sort(want)
			// Handlers are notified after the store is updated: wait for them.
			deadline := time.Now().Add(5 * time.Second)
			for !cmp.Equal(want, events.sorted()) && time.Now().Before(deadline) {
				time.Sleep(5 * time.Millisecond)
			}
			if diff := cmp.Diff(want, events.sorted()); diff != "" {
				t.Errorf("add events mismatch (-want +got):\n%s", diff)
			}

			// The real API server does apply the field selectors: check they are sent.
			wantSelectors := []string{"namespaces ", "secrets metadata.name=" + testSecret}
			for _, name := range tt.serviceAccounts {
				if name == AllServiceAccounts {
					wantSelectors = append(wantSelectors, "serviceaccounts ")
				} else {
					wantSelectors = append(wantSelectors, "serviceaccounts metadata.name="+name)
				}
			}
			var gotSelectors []string
			for _, a := range client.Actions() {
				if l, ok := a.(k8stesting.ListAction); ok {
					gotSelectors = append(gotSelectors, a.GetResource().Resource+" "+l.GetListRestrictions().Fields.String())
				}
			}
			slices.Sort(wantSelectors)
			slices.Sort(gotSelectors)
			if diff := cmp.Diff(wantSelectors, gotSelectors); diff != "" {
				t.Errorf("list field selectors mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// The transforms share one copy of the strings every cached object carries.
func TestTransformsShareCommonStrings(t *testing.T) {
	p := mustPayload(t, testToken(testT0(), 12*time.Hour, "pw"))
	secret := func(ns string) *corev1.Secret {
		out, err := TransformSecret(DesiredSecret(ns, testSecret, p))
		if err != nil {
			t.Fatal(err)
		}
		return out.(*corev1.Secret)
	}
	a, b := secret("a"), secret("b")
	for k, v := range a.Annotations {
		if unsafe.StringData(b.Annotations[k]) != unsafe.StringData(v) {
			t.Errorf("annotation %s: two copies of %q", k, v)
		}
	}
	if unsafe.StringData(a.Name) != unsafe.StringData(b.Name) {
		t.Error("two copies of the Secret's name")
	}

	sa := func(ns string) *corev1.ServiceAccount {
		out, _ := TransformServiceAccount(&corev1.ServiceAccount{
			ObjectMeta:       metav1.ObjectMeta{Namespace: ns, Name: string([]byte("default")), Labels: map[string]string{string([]byte("team")): string([]byte("x"))}},
			ImagePullSecrets: []corev1.LocalObjectReference{{Name: string([]byte(testSecret))}},
		})
		return out.(*corev1.ServiceAccount)
	}
	sa1, sa2 := sa("a"), sa("b")
	if unsafe.StringData(sa1.Name) != unsafe.StringData(sa2.Name) ||
		unsafe.StringData(sa1.ImagePullSecrets[0].Name) != unsafe.StringData(sa2.ImagePullSecrets[0].Name) ||
		unsafe.StringData(sa1.Labels["team"]) != unsafe.StringData(sa2.Labels["team"]) {
		t.Error("ServiceAccounts hold their own copies of shared strings")
	}

	out, _ := TransformNamespace(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name: "n1", Labels: map[string]string{"kubernetes.io/metadata.name": string([]byte("n1"))}}})
	ns := out.(*corev1.Namespace)
	if unsafe.StringData(ns.Labels["kubernetes.io/metadata.name"]) != unsafe.StringData(ns.Name) {
		t.Error("the metadata.name label holds its own copy of the name")
	}
}

func TestInternerIsBounded(t *testing.T) {
	var in interner
	for i := range 3 * maxInterned {
		in.get(fmt.Sprint(i))
		if len(in.m) > maxInterned {
			t.Fatalf("interner holds %d strings, bound %d", len(in.m), maxInterned)
		}
	}
	long := strings.Repeat("x", maxInternedLen+1)
	in.get(long)
	if _, ok := in.m[long]; ok {
		t.Error("a long value was interned")
	}
}
