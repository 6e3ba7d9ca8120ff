package refresher

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"

	"github.com/kube-ecr-refresher/kube-ecr-refresher/internal/kube"
)

// SyncNamespace brings one namespace in line with the current token: its
// Secret, then the configured ServiceAccounts. A namespace that is not (or no
// longer) a target has our objects removed. It reads from the caches and
// writes only what differs.
func (c *Controller) SyncNamespace(ctx context.Context, name string) error {
	result, err := c.syncNamespace(ctx, name)
	if result != "" {
		c.opts.Observer.NamespaceSynced(name, result)
	}
	return err
}

func (c *Controller) syncNamespace(ctx context.Context, name string) (string, error) {
	ns, err := c.caches.Namespaces.Get(name)
	if apierrors.IsNotFound(err) {
		return "", nil
	}
	if err != nil {
		return SyncError, fmt.Errorf("get namespace %s from cache: %w", name, err)
	}
	if ns.DeletionTimestamp != nil || ns.Status.Phase == corev1.NamespaceTerminating {
		return "", nil
	}
	if c.opts.Target != nil && !c.opts.Target(ns) {
		cleaned, err := c.cleanNamespace(ctx, name)
		if err != nil {
			return SyncError, err
		}
		if cleaned {
			return SyncCleaned, nil
		}
		return "", nil
	}
	secret, err := c.cachedSecret(name)
	if err != nil {
		return SyncError, err
	}
	if secret != nil && !kube.Owned(secret) {
		c.log.Warn("secret exists and is not managed by kube-ecr-refresher; namespace skipped",
			"namespace", name, "secret", c.opts.SecretName,
			"hint", "delete or rename it, or label it "+kube.ManagedByLabel+"="+kube.ManagedByValue+" to let us manage it")
		if c.opts.Events != nil {
			c.opts.Events.SecretNotOurs(ns, c.opts.SecretName)
		}
		return SyncSkipped, nil
	}
	// Without a token, a Secret of ours already in place still gets its
	// ServiceAccount entries: a new leader during an ECR outage serves a
	// re-created ServiceAccount at once.
	p := c.payload.Load()
	if p == nil && secret == nil {
		return "", nil // the first token enqueues every namespace
	}
	if p != nil {
		now := c.clock.Now()
		plan := kube.PlanSecret(secret, p, now, c.opts.RefreshRemainingFraction)
		switch plan.Action {
		case kube.SecretUpToDate:
			if !plan.RecheckAt.IsZero() {
				if q := c.queue.Load(); q != nil {
					(*q).AddAfter(name, plan.RecheckAt.Sub(now))
				}
			}
		default:
			written, err := kube.ApplySecret(ctx, c.client.CoreV1(), name, c.opts.SecretName, secret, plan.Action, p, c.opts.DryRun)
			if err != nil {
				if isTerminating(err) {
					return "", nil
				}
				// AlreadyExists and Conflict are our cache behind a write:
				// retried quietly (processNext), not worth an Event.
				if c.opts.Events != nil && ctx.Err() == nil && !apierrors.IsAlreadyExists(err) && !apierrors.IsConflict(err) {
					c.opts.Events.SecretFailed(ns, c.opts.SecretName, err)
				}
				return SyncError, err
			}
			if written != nil {
				c.caches.Wrote(written)
			}
			op := OpUpdate
			if plan.Action == kube.SecretCreate || plan.Action == kube.SecretRecreate {
				op = OpCreate
			}
			c.opts.Observer.Wrote(KindSecret, op, name)
			c.log.Info(c.verb("secret written", "dry run: secret would be written"), "namespace", name, "secret", c.opts.SecretName, "action", plan.Action.String(),
				"reason", plan.Reason, "expires_at", p.Token.ExpiresAt.UTC().Format(time.RFC3339))
		}
	}

	sas, err := c.caches.ServiceAccountsIn(name)
	if err != nil {
		return SyncError, fmt.Errorf("list serviceaccounts in %s from cache: %w", name, err)
	}
	var errs []error
	for _, sa := range sas {
		written, err := kube.EnsurePullSecret(ctx, c.client.CoreV1(), sa, c.opts.SecretName, c.opts.DryRun)
		if err != nil {
			if !isTerminating(err) {
				errs = append(errs, err)
			}
			continue
		}
		if written != nil {
			if !c.opts.DryRun {
				c.caches.Wrote(written)
			}
			c.opts.Observer.Wrote(KindServiceAccount, OpUpdate, name)
			c.log.Info(c.verb("serviceaccount patched", "dry run: serviceaccount would be patched"), "namespace", name, "serviceaccount", sa.Name, "secret", c.opts.SecretName)
		}
	}
	if err := errors.Join(errs...); err != nil {
		return SyncError, err
	}
	return SyncOK, nil
}

func (c *Controller) cachedSecret(ns string) (*corev1.Secret, error) {
	secret, err := c.caches.Secret(ns, c.opts.SecretName)
	if err != nil {
		return nil, fmt.Errorf("get secret %s/%s from cache: %w", ns, c.opts.SecretName, err)
	}
	return secret, nil
}

// cleanNamespace removes what is ours from a namespace that is not served:
// our Secret (by label, never anyone else's) and the ServiceAccount entries
// naming it. Entries are left alone when a Secret of that name exists that
// is not ours: they point at someone else's Secret. It reports whether it
// removed anything.
func (c *Controller) cleanNamespace(ctx context.Context, name string) (bool, error) {
	secret, err := c.cachedSecret(name)
	if err != nil {
		return false, err
	}
	if secret != nil && !kube.Owned(secret) {
		return false, nil
	}
	cleaned := false
	if secret != nil {
		deleted, err := kube.DeleteOwnedSecret(ctx, c.client.CoreV1(), secret, c.opts.DryRun)
		if err != nil {
			return false, err
		}
		if deleted {
			cleaned = true
			c.opts.Observer.Wrote(KindSecret, OpDelete, name)
			c.log.Info(c.verb("secret removed", "dry run: secret would be removed"), "namespace", name, "secret", c.opts.SecretName, "reason", "namespace is not a target")
		}
	}
	sas, err := c.caches.ServiceAccountsIn(name)
	if err != nil {
		return cleaned, fmt.Errorf("list serviceaccounts in %s from cache: %w", name, err)
	}
	var errs []error
	for _, sa := range sas {
		written, err := kube.RemovePullSecret(ctx, c.client.CoreV1(), sa, c.opts.SecretName, c.opts.DryRun)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if written != nil {
			if !c.opts.DryRun {
				c.caches.Wrote(written)
			}
			cleaned = true
			c.opts.Observer.Wrote(KindServiceAccount, OpUpdate, name)
			c.log.Info(c.verb("serviceaccount entry removed", "dry run: serviceaccount entry would be removed"), "namespace", name, "serviceaccount", sa.Name, "secret", c.opts.SecretName)
		}
	}
	return cleaned, errors.Join(errs...)
}

// verb picks a write's log message: done, or in dry-run mode, not done.
func (c *Controller) verb(done, dryRun string) string {
	if c.opts.DryRun {
		return dryRun
	}
	return done
}

func isTerminating(err error) bool {
	return apierrors.HasStatusCause(err, corev1.NamespaceTerminatingCause)
}
