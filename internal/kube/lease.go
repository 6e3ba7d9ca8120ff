package kube

import (
	"context"
	"fmt"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	typedcoordinationv1 "k8s.io/client-go/kubernetes/typed/coordination/v1"
	"k8s.io/client-go/util/retry"
)

// TakeLease makes identity the holder of the Lease for hold, whoever holds it
// now. The current leader fails its next renewal and stops writing within its
// renew deadline; no replica can acquire the Lease until hold has passed.
// Cleanup uses it so that no leader re-creates what it removes.
func TakeLease(ctx context.Context, client typedcoordinationv1.LeasesGetter, ns, name, identity string, hold time.Duration, now time.Time) error {
	leases := client.Leases(ns)
	seconds := int32(hold / time.Second)
	at := metav1.NewMicroTime(now)
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := leases.Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			_, err = leases.Create(ctx, &coordinationv1.Lease{
				ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: name},
				Spec: coordinationv1.LeaseSpec{
					HolderIdentity: &identity, LeaseDurationSeconds: &seconds, AcquireTime: &at, RenewTime: &at,
				},
			}, metav1.CreateOptions{})
			return err
		}
		if err != nil {
			return err
		}
		next := cur.DeepCopy()
		transitions := int32(0)
		if next.Spec.LeaseTransitions != nil {
			transitions = *next.Spec.LeaseTransitions
		}
		if next.Spec.HolderIdentity == nil || *next.Spec.HolderIdentity != identity {
			transitions++
		}
		next.Spec.HolderIdentity = &identity
		next.Spec.LeaseDurationSeconds = &seconds
		next.Spec.AcquireTime = &at
		next.Spec.RenewTime = &at
		next.Spec.LeaseTransitions = &transitions
		_, err = leases.Update(ctx, next, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		return fmt.Errorf("take lease %s/%s: %w", ns, name, err)
	}
	return nil
}
