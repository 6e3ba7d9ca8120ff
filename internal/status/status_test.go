package status

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"

	"github.com/kube-ecr-refresher/kube-ecr-refresher/internal/kube"
	"github.com/kube-ecr-refresher/kube-ecr-refresher/internal/registry"
)

const (
	secretName = "ecr-pull-secret"
	host       = "123456789012.dkr.ecr.eu-west-1.amazonaws.com"
)

var now = time.Date(2026, 12, 3, 12, 0, 0, 0, time.UTC)

func ours(t *testing.T, ns string, fetched time.Time) *corev1.Secret {
	t.Helper()
	p, err := kube.NewPayload(registry.Credentials{
		Auths:     []registry.Auth{{Host: host, Username: "AWS", Password: "pw"}},
		FetchedAt: fetched, ExpiresAt: fetched.Add(12 * time.Hour),
	})
	if err != nil {
		t.Fatal(err)
	}
	return kube.DesiredSecret(ns, secretName, p)
}

func sa(ns, name string, pullSecrets ...string) *corev1.ServiceAccount {
	s := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name}}
	for _, p := range pullSecrets {
		s.ImagePullSecrets = append(s.ImagePullSecrets, corev1.LocalObjectReference{Name: p})
	}
	return s
}

func namespace(name string) *corev1.Namespace {
	return &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}
}

func cluster(t *testing.T) []runtime.Object {
	expired := ours(t, "old", now.Add(-13*time.Hour))
	foreign := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: "theirs", Name: secretName},
		Type:       corev1.SecretTypeDockerConfigJson,
		Data:       map[string][]byte{corev1.DockerConfigJsonKey: []byte(`{"auths":{}}`)},
	}
	return []runtime.Object{
		namespace("app"), ours(t, "app", now.Add(-time.Hour)), sa("app", "default", "other", secretName),
		namespace("new"), sa("new", "default"),
		namespace("theirs"), foreign, sa("theirs", "default", secretName),
		namespace("old"), expired, sa("old", "default", secretName),
		namespace("unlisted"), ours(t, "unlisted", now.Add(-2*time.Hour)), sa("unlisted", "default"),
		namespace("kube-system"),
		&coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Namespace: "kube-ecr-refresher", Name: "kube-ecr-refresher"},
			Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To("pod-a"), LeaseDurationSeconds: ptr.To[int32](15),
				RenewTime: &metav1.MicroTime{Time: now.Add(-2 * time.Second)}},
		},
	}
}

func options() Options {
	return Options{
		SecretName: secretName, ServiceAccounts: []string{"default"},
		Target:         func(ns *corev1.Namespace) bool { return ns.Name != "kube-system" },
		LeaseNamespace: "kube-ecr-refresher", LeaseName: "kube-ecr-refresher", Now: now,
	}
}

func TestCollect(t *testing.T) {
	for _, tt := range []struct {
		name  string
		react func(*fake.Clientset)
	}{
		{name: "With list access"},
		{name: "With get access to the named objects only", react: func(c *fake.Clientset) {
			forbidden := func(a k8stesting.Action) (bool, runtime.Object, error) {
				return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: a.GetResource().Resource}, "", nil)
			}
			c.PrependReactor("list", "secrets", forbidden)
			c.PrependReactor("list", "serviceaccounts", forbidden)
		}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			client := fake.NewClientset(cluster(t)...)
			if tt.react != nil {
				tt.react(client)
			}
			r, err := Collect(t.Context(), client, options())
			if err != nil {
				t.Fatal(err)
			}
			type row struct {
				Served  bool
				Secret  string
				Problem string
			}
			got := map[string]row{}
			for _, n := range r.Namespaces {
				got[n.Name] = row{n.Served, n.Secret, strings.Join(n.Problems, "; ")}
			}
			want := map[string]row{
				"app":      {true, "ours", ""},
				"new":      {false, "missing", "no Secret ecr-pull-secret; ServiceAccount default does not list ecr-pull-secret"},
				"theirs":   {false, "foreign", "Secret ecr-pull-secret is not managed by kube-ecr-refresher (left alone)"},
				"old":      {false, "expired", "secret holds an expired token (expired at 2026-12-03T11:00:00Z)"},
				"unlisted": {false, "ours", "ServiceAccount default does not list ecr-pull-secret"},
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("namespaces (-want +got):\n%s", diff)
			}
			if r.Targets != 5 || r.Served != 1 {
				t.Errorf("served %d of %d, want 1 of 5", r.Served, r.Targets)
			}
			if !r.Lease.Found || r.Lease.Holder != "pod-a" || !r.Lease.Valid {
				t.Errorf("lease %+v, want held by pod-a and valid", r.Lease)
			}
			if r.LastRefresh == nil || !r.LastRefresh.Equal(now.Add(-time.Hour)) {
				t.Errorf("last refresh %v, want %v", r.LastRefresh, now.Add(-time.Hour))
			}
			app := r.Namespaces[0]
			if app.Name != "app" || !cmp.Equal(app.Registries, []string{host}) || app.ExpiresAt == nil || !app.ExpiresAt.Equal(now.Add(11*time.Hour)) {
				t.Errorf("app: registries %v, expiry %v", app.Registries, app.ExpiresAt)
			}
		})
	}
}

func TestLeaseStates(t *testing.T) {
	client := fake.NewClientset()
	r, err := Collect(t.Context(), client, options())
	if err != nil {
		t.Fatal(err)
	}
	if r.Lease.Found {
		t.Errorf("lease found in an empty cluster: %+v", r.Lease)
	}
	old := &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Namespace: "kube-ecr-refresher", Name: "kube-ecr-refresher"},
		Spec: coordinationv1.LeaseSpec{HolderIdentity: ptr.To("pod-a"), LeaseDurationSeconds: ptr.To[int32](15),
			RenewTime: &metav1.MicroTime{Time: now.Add(-time.Minute)}},
	}
	r, err = Collect(t.Context(), fake.NewClientset(old), options())
	if err != nil {
		t.Fatal(err)
	}
	if !r.Lease.Found || r.Lease.Valid {
		t.Errorf("a Lease renewed a minute ago with a 15 s duration: %+v, want found and not valid", r.Lease)
	}
}

func TestWriteTableAndJSON(t *testing.T) {
	r, err := Collect(t.Context(), fake.NewClientset(cluster(t)...), options())
	if err != nil {
		t.Fatal(err)
	}
	var table bytes.Buffer
	if err := WriteTable(&table, r, now); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"NAMESPACE", "app ", "yes", "in 11h0m0s", host,
		"Lease kube-ecr-refresher/kube-ecr-refresher: held by pod-a, renewed 2s ago (valid)",
		"Last refresh: 2026-12-03T11:00:00Z (1h0m0s ago)",
		"1 of 5 target namespaces served",
	} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
	var js bytes.Buffer
	if err := WriteJSON(&js, r); err != nil {
		t.Fatal(err)
	}
	var back Report
	if err := json.Unmarshal(js.Bytes(), &back); err != nil {
		t.Fatalf("JSON does not parse: %v\n%s", err, js.String())
	}
	if back.Served != 1 || len(back.Namespaces) != 5 || back.Lease.Holder != "pod-a" {
		t.Errorf("JSON round trip: %+v", back)
	}
}
