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

// HasPullSecret reports whether sa lists secret in imagePullSecrets.
func HasPullSecret(sa *corev1.ServiceAccount, secret string) bool {
	return slices.ContainsFunc(sa.ImagePullSecrets, func(r corev1.LocalObjectReference) bool { return r.Name == secret })
}

// EnsurePullSecret adds secret to the imagePullSecrets of the ServiceAccount
// cached (the informer's copy, never modified) if it is missing, keeping every
// other entry. The list is atomic, so this is a read-modify-Update with the
// read's resourceVersion, retried on conflict with a fresh read. It reports
// whether it wrote. A ServiceAccount that is gone is not an error.
func EnsurePullSecret(ctx context.Context, client typedcorev1.ServiceAccountsGetter, cached *corev1.ServiceAccount, secret string, dryRun bool) (bool, error) {
	if HasPullSecret(cached, secret) {
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
		if HasPullSecret(cur, secret) {
			return nil
		}
		next := cur.DeepCopy()
		next.ImagePullSecrets = append(next.ImagePullSecrets, corev1.LocalObjectReference{Name: secret})
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
