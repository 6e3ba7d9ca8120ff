package kube

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

func TestRemovePullSecretRemovesOnlyWhatWeAdded(t *testing.T) {
	added := map[string]string{AddedPullSecretsAnnotation: "ecr", "team": "x"}
	tests := []struct {
		name      string
		sa        *corev1.ServiceAccount
		wantWrote bool
		wantNames []string
		wantAnn   map[string]string
	}{
		{
			name: "An entry we added is removed, with its record, and every other entry keeps its place",
			sa: &corev1.ServiceAccount{
				ObjectMeta:       metav1.ObjectMeta{Namespace: "a", Name: "default", ResourceVersion: "1", Annotations: added},
				ImagePullSecrets: []corev1.LocalObjectReference{{Name: "docker-hub"}, {Name: "ecr"}, {Name: "quay"}},
			},
			wantWrote: true,
			wantNames: []string{"docker-hub", "quay"},
			wantAnn:   map[string]string{"team": "x"},
		},
		{
			name: "An entry someone else added under our Secret's name is never removed",
			sa: &corev1.ServiceAccount{
				ObjectMeta:       metav1.ObjectMeta{Namespace: "a", Name: "default", ResourceVersion: "1"},
				ImagePullSecrets: []corev1.LocalObjectReference{{Name: "docker-hub"}, {Name: "ecr"}},
			},
			wantNames: []string{"docker-hub", "ecr"},
		},
		{
			name: "A record of another Secret we added is kept",
			sa: &corev1.ServiceAccount{
				ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "default", ResourceVersion: "1",
					Annotations: map[string]string{AddedPullSecretsAnnotation: "ecr,old-ecr"}},
				ImagePullSecrets: []corev1.LocalObjectReference{{Name: "ecr"}, {Name: "old-ecr"}},
			},
			wantWrote: true,
			wantNames: []string{"old-ecr"},
			wantAnn:   map[string]string{AddedPullSecretsAnnotation: "old-ecr"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client := fake.NewClientset(tt.sa.DeepCopy())
			before := tt.sa.DeepCopy()
			written, err := RemovePullSecret(t.Context(), client.CoreV1(), tt.sa, "ecr", false)
			if err != nil || (written != nil) != tt.wantWrote {
				t.Fatalf("RemovePullSecret = %v, %v; want a write: %t", written, err, tt.wantWrote)
			}
			got, _ := client.CoreV1().ServiceAccounts("a").Get(t.Context(), "default", metav1.GetOptions{})
			if diff := cmp.Diff(tt.wantNames, pullSecretNames(got)); diff != "" {
				t.Errorf("imagePullSecrets (-want +got):\n%s", diff)
			}
			if tt.wantWrote {
				if diff := cmp.Diff(tt.wantAnn, got.Annotations, cmpopts.EquateEmpty()); diff != "" {
					t.Errorf("annotations (-want +got):\n%s", diff)
				}
			}
			if diff := cmp.Diff(before, tt.sa); diff != "" {
				t.Errorf("the cached object was modified (-before +after):\n%s", diff)
			}
			n := len(client.Actions())
			if written, _ := RemovePullSecret(t.Context(), client.CoreV1(), got, "ecr", false); written != nil || len(client.Actions()) != n {
				t.Errorf("a second removal wrote")
			}
		})
	}
}

// Cleanup after serving: what EnsurePullSecret added, RemovePullSecret takes
// away, leaving the ServiceAccount as it was.
func TestEnsureThenRemoveRestoresTheServiceAccount(t *testing.T) {
	orig := &corev1.ServiceAccount{
		ObjectMeta:       metav1.ObjectMeta{Namespace: "a", Name: "default", ResourceVersion: "1", Annotations: map[string]string{"team": "x"}},
		ImagePullSecrets: []corev1.LocalObjectReference{{Name: "docker-hub"}},
	}
	client := fake.NewClientset(orig.DeepCopy())
	added, err := EnsurePullSecret(t.Context(), client.CoreV1(), orig, "ecr", false)
	if err != nil || added == nil {
		t.Fatalf("EnsurePullSecret = %v, %v", added, err)
	}
	if got := added.Annotations[AddedPullSecretsAnnotation]; got != "ecr" {
		t.Errorf("record after adding = %q, want %q", got, "ecr")
	}
	removed, err := RemovePullSecret(t.Context(), client.CoreV1(), added, "ecr", false)
	if err != nil || removed == nil {
		t.Fatalf("RemovePullSecret = %v, %v", removed, err)
	}
	if diff := cmp.Diff(orig.ImagePullSecrets, removed.ImagePullSecrets); diff != "" {
		t.Errorf("imagePullSecrets (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(orig.Annotations, removed.Annotations); diff != "" {
		t.Errorf("annotations (-want +got):\n%s", diff)
	}
}

func TestDeleteOwnedSecret(t *testing.T) {
	ours := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "s", UID: "u1", ResourceVersion: "7",
		Labels: map[string]string{ManagedByLabel: ManagedByValue}}}
	foreign := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "b", Name: "s", UID: "u2", ResourceVersion: "8"}}
	tests := []struct {
		name       string
		secret     *corev1.Secret
		dryRun     bool
		wantDelete bool
		wantGone   bool
	}{
		{name: "our secret is deleted", secret: ours, wantDelete: true, wantGone: true},
		{name: "a foreign secret is never deleted", secret: foreign},
		{name: "a dry run deletes nothing", secret: ours, dryRun: true, wantDelete: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client := fake.NewClientset(tt.secret.DeepCopy())
			deleted, err := DeleteOwnedSecret(t.Context(), client.CoreV1(), tt.secret, tt.dryRun)
			if err != nil || deleted != tt.wantDelete {
				t.Fatalf("DeleteOwnedSecret = %v, %v; want %v, nil", deleted, err, tt.wantDelete)
			}
			_, err = client.CoreV1().Secrets(tt.secret.Namespace).Get(t.Context(), "s", metav1.GetOptions{})
			if gone := apierrors.IsNotFound(err); gone != tt.wantGone {
				t.Errorf("gone = %v, want %v", gone, tt.wantGone)
			}
		})
	}
}
