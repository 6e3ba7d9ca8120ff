package kube

import (
	"context"
	"fmt"
	"slices"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/util/retry"
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

// RemovePullSecret removes every entry naming secret from the imagePullSecrets
// of the cached ServiceAccount, keeping all others in order; read-modify-Update
// retried on conflict like EnsurePullSecret. It reports whether it wrote.
func RemovePullSecret(ctx context.Context, client typedcorev1.ServiceAccountsGetter, cached *corev1.ServiceAccount, secret string, dryRun bool) (bool, error) {
	if !HasPullSecret(cached, secret) {
		return false, nil
	}
	sas := client.ServiceAccounts(cached.Namespace)
	wrote := false
	first := true
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur := cached
		if !first {
			live, err := sas.Get(ctx, cached.Name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			cur = live
		}
		first = false
		if !HasPullSecret(cur, secret) {
			return nil
		}
		next := cur.DeepCopy()
		next.ImagePullSecrets = slices.DeleteFunc(next.ImagePullSecrets, func(r corev1.LocalObjectReference) bool { return r.Name == secret })
		if dryRun {
			wrote = true
			return nil
		}
		if _, err := sas.Update(ctx, next, metav1.UpdateOptions{}); err != nil {
			return err
		}
		wrote = true
		return nil
	})
	if apierrors.IsNotFound(err) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("update serviceaccount %s/%s: %w", cached.Namespace, cached.Name, err)
	}
	return wrote, nil
}
