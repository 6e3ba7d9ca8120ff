package kube

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

func TestRemovePullSecretKeepsOtherEntries(t *testing.T) {
	sa := &corev1.ServiceAccount{
		ObjectMeta:       metav1.ObjectMeta{Namespace: "a", Name: "default", ResourceVersion: "1"},
		ImagePullSecrets: []corev1.LocalObjectReference{{Name: "docker-hub"}, {Name: "ecr"}, {Name: "quay"}},
	}
	client := fake.NewClientset(sa)
	written, err := RemovePullSecret(t.Context(), client.CoreV1(), sa, "ecr", false)
	if err != nil || written == nil {
		t.Fatalf("RemovePullSecret = %v, %v; want a write", written, err)
	}
	got, _ := client.CoreV1().ServiceAccounts("a").Get(t.Context(), "default", metav1.GetOptions{})
	if diff := cmp.Diff([]corev1.LocalObjectReference{{Name: "docker-hub"}, {Name: "quay"}}, got.ImagePullSecrets); diff != "" {
		t.Errorf("imagePullSecrets (-want +got):\n%s", diff)
	}
	if sa.ImagePullSecrets[1].Name != "ecr" {
		t.Errorf("the cached object was modified")
	}
	n := len(client.Actions())
	if written, _ := RemovePullSecret(t.Context(), client.CoreV1(), got, "ecr", false); written != nil || len(client.Actions()) != n {
		t.Errorf("a second removal wrote")
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
