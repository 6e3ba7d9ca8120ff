package kube

import (
	"context"
	"fmt"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
)

// DeleteOwnedSecret deletes the cached Secret if it is ours, with UID and
// resourceVersion preconditions so that a Secret replaced meanwhile (perhaps
// by someone else's) is never deleted. It reports whether it deleted.
func DeleteOwnedSecret(ctx context.Context, client typedcorev1.SecretsGetter, cached *corev1.Secret, dryRun bool) (bool, error) {
	if cached == nil || !Owned(cached) {
		return false, nil
	}
	if dryRun {
		return true, nil
	}
	uid, rv := cached.UID, cached.ResourceVersion
	err := client.Secrets(cached.Namespace).Delete(ctx, cached.Name, metav1.DeleteOptions{
		Preconditions: &metav1.Preconditions{UID: &uid, ResourceVersion: &rv},
	})
	switch {
	case apierrors.IsNotFound(err):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("delete secret %s/%s: %w", cached.Namespace, cached.Name, err)
	}
	return true, nil
}
