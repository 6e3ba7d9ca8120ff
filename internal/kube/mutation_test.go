package kube

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/kube-ecr-refresher/kube-ecr-refresher/internal/registry"
)

// A write of ours is visible to reads before the watch delivers it, so the
// next sync neither creates the Secret again nor updates a stale
// ServiceAccount (each would be a wasted, failing write).
func TestCachesSeeOurWritesBeforeTheWatch(t *testing.T) {
	for _, saName := range []string{"default", AllServiceAccounts} {
		t.Run("serviceaccounts "+saName, func(t *testing.T) {
			c, err := NewCaches(fake.NewClientset(), "ecr", []string{saName}, 0, CacheHandlers{})
			if err != nil {
				t.Fatal(err)
			}
			if s, err := c.Secret("a", "ecr"); err != nil || s != nil {
				t.Fatalf("Secret before any write = %v, %v; want none", s, err)
			}
			p, err := NewPayload(registry.Credentials{Auths: []registry.Auth{{Host: "h", Username: "AWS", Password: "pw"}}})
			if err != nil {
				t.Fatal(err)
			}
			written := DesiredSecret("a", "ecr", p)
			written.ResourceVersion = "5"
			c.Wrote(written)
			got, err := c.Secret("a", "ecr")
			if err != nil || got == nil {
				t.Fatalf("Secret after our write = %v, %v", got, err)
			}
			if got.Data != nil || got.Annotations[cacheDigestAnnotation] != p.Digest {
				t.Errorf("the written Secret was not cached in transformed form: data=%v annotations=%v", got.Data != nil, got.Annotations)
			}
			if written.Data == nil {
				t.Errorf("Wrote modified the object it was given")
			}

			sa := &corev1.ServiceAccount{
				ObjectMeta:       metav1.ObjectMeta{Namespace: "a", Name: "default", ResourceVersion: "6"},
				ImagePullSecrets: []corev1.LocalObjectReference{{Name: "ecr"}},
			}
			c.Wrote(sa)
			sas, err := c.ServiceAccountsIn("a")
			if err != nil || len(sas) != 1 || !HasPullSecret(sas[0], "ecr") {
				t.Errorf("ServiceAccountsIn after our write = %v, %v; want the written one", sas, err)
			}
		})
	}
}
