package kube

import (
	"context"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/util/retry"
)

// AddedPullSecretsAnnotation lists, comma-separated, the imagePullSecrets
// entries of a ServiceAccount that this controller added. It is written in the
// same Update as the entry, and cleanup removes only the entries it lists: an
// entry someone else added is never removed, even if it names our Secret.
const AddedPullSecretsAnnotation = "kube-ecr-refresher/added-image-pull-secrets"

// HasPullSecret reports whether sa lists secret in imagePullSecrets.
func HasPullSecret(sa *corev1.ServiceAccount, secret string) bool {
	return slices.ContainsFunc(sa.ImagePullSecrets, func(r corev1.LocalObjectReference) bool { return r.Name == secret })
}

// AddedPullSecret reports whether sa's annotation records that we added secret.
func AddedPullSecret(sa *corev1.ServiceAccount, secret string) bool {
	return slices.Contains(addedPullSecrets(sa), secret)
}

func addedPullSecrets(sa *corev1.ServiceAccount) []string {
	v := sa.Annotations[AddedPullSecretsAnnotation]
	if v == "" {
		return nil
	}
	return strings.Split(v, ",")
}

func setAddedPullSecrets(sa *corev1.ServiceAccount, names []string) {
	if len(names) == 0 {
		delete(sa.Annotations, AddedPullSecretsAnnotation)
		return
	}
	if sa.Annotations == nil {
		sa.Annotations = map[string]string{}
	}
	slices.Sort(names)
	sa.Annotations[AddedPullSecretsAnnotation] = strings.Join(slices.Compact(names), ",")
}

// EnsurePullSecret adds secret to the imagePullSecrets of the ServiceAccount
// cached (the informer's copy, never modified) if it is missing, keeping every
// other entry, and records in AddedPullSecretsAnnotation that we added it. It
// is called only where the Secret of that name is ours: an entry already
// there naming it is adopted (recorded, so cleanup removes it with the
// Secret; entries added by 0.1 get their record this way). The list is
// atomic, so this is a read-modify-Update with the read's resourceVersion,
// retried on conflict with a fresh read. It returns the ServiceAccount written
// (nil when no write was needed; in a dry run, the one that would have been
// written). A ServiceAccount that is gone is not an error.
func EnsurePullSecret(ctx context.Context, client typedcorev1.ServiceAccountsGetter, cached *corev1.ServiceAccount, secret string, dryRun bool) (*corev1.ServiceAccount, error) {
	return updateServiceAccount(ctx, client, cached, dryRun,
		func(sa *corev1.ServiceAccount) bool {
			return !HasPullSecret(sa, secret) || !AddedPullSecret(sa, secret)
		},
		func(sa *corev1.ServiceAccount) {
			if !HasPullSecret(sa, secret) {
				sa.ImagePullSecrets = append(sa.ImagePullSecrets, corev1.LocalObjectReference{Name: secret})
			}
			setAddedPullSecrets(sa, append(addedPullSecrets(sa), secret))
		})
}

// RemovePullSecret removes the entries naming secret from the imagePullSecrets
// of the cached ServiceAccount if AddedPullSecretsAnnotation records that we
// added it, keeping all others in order, and drops the record. Entries we did
// not add are never removed. Read-modify-Update retried on conflict like
// EnsurePullSecret; it returns what it wrote.
func RemovePullSecret(ctx context.Context, client typedcorev1.ServiceAccountsGetter, cached *corev1.ServiceAccount, secret string, dryRun bool) (*corev1.ServiceAccount, error) {
	return updateServiceAccount(ctx, client, cached, dryRun,
		func(sa *corev1.ServiceAccount) bool { return AddedPullSecret(sa, secret) },
		func(sa *corev1.ServiceAccount) {
			sa.ImagePullSecrets = slices.DeleteFunc(sa.ImagePullSecrets, func(r corev1.LocalObjectReference) bool { return r.Name == secret })
			setAddedPullSecrets(sa, slices.DeleteFunc(addedPullSecrets(sa), func(n string) bool { return n == secret }))
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
