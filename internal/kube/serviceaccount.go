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
// read's resourceVersion, retried on conflict with a fresh read. It returns
// the ServiceAccount written (nil when no write was needed; in a dry run, the
// one that would have been written). A ServiceAccount that is gone is not an
// error.
func EnsurePullSecret(ctx context.Context, client typedcorev1.ServiceAccountsGetter, cached *corev1.ServiceAccount, secret string, dryRun bool) (*corev1.ServiceAccount, error) {
	return updateServiceAccount(ctx, client, cached, dryRun,
		func(sa *corev1.ServiceAccount) bool { return !HasPullSecret(sa, secret) },
		func(sa *corev1.ServiceAccount) {
			sa.ImagePullSecrets = append(sa.ImagePullSecrets, corev1.LocalObjectReference{Name: secret})
		})
}

// RemovePullSecret removes every entry naming secret from the imagePullSecrets
// of the cached ServiceAccount, keeping all others in order; read-modify-Update
// retried on conflict like EnsurePullSecret, and returns what it wrote.
func RemovePullSecret(ctx context.Context, client typedcorev1.ServiceAccountsGetter, cached *corev1.ServiceAccount, secret string, dryRun bool) (*corev1.ServiceAccount, error) {
	return updateServiceAccount(ctx, client, cached, dryRun,
		func(sa *corev1.ServiceAccount) bool { return HasPullSecret(sa, secret) },
		func(sa *corev1.ServiceAccount) {
			sa.ImagePullSecrets = slices.DeleteFunc(sa.ImagePullSecrets, func(r corev1.LocalObjectReference) bool { return r.Name == secret })
		})
}

// updateServiceAccount applies change to a copy of the ServiceAccount when
// needed says so, and Updates it with the read's resourceVersion. The first
// attempt uses the cached copy; after a conflict the live object is read
// again and needed is asked again. It returns what it wrote (nil: nothing).
func updateServiceAccount(ctx context.Context, client typedcorev1.ServiceAccountsGetter, cached *corev1.ServiceAccount, dryRun bool,
	needed func(*corev1.ServiceAccount) bool, change func(*corev1.ServiceAccount)) (*corev1.ServiceAccount, error) {
	if !needed(cached) {
		return nil, nil
	}
	sas := client.ServiceAccounts(cached.Namespace)
	var written *corev1.ServiceAccount
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
		if !needed(cur) {
			written = nil
			return nil
		}
		next := cur.DeepCopy()
		change(next)
		if dryRun {
			written = next
			return nil
		}
		updated, err := sas.Update(ctx, next, metav1.UpdateOptions{})
		if err != nil {
			return err
		}
		written = updated
		return nil
	})
	if apierrors.IsNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("update serviceaccount %s/%s: %w", cached.Namespace, cached.Name, err)
	}
	return written, nil
}
