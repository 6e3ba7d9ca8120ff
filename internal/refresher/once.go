package refresher

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/kube-ecr-refresher/kube-ecr-refresher/internal/ecr"
	"github.com/kube-ecr-refresher/kube-ecr-refresher/internal/kube"
)

// onceFetchAttempts bounds the token fetches of a one-shot pass.
const onceFetchAttempts = 3

// RunOnce does one full pass: it fetches a token (retrying with backoff a
// few times), syncs every namespace once with Workers in parallel, then
// checks the result. It returns nil only when every target namespace ends
// the pass with a usable Secret of ours (intact, not expired) listed by each
// of its configured ServiceAccounts; the error names every namespace that
// does not, with the reason, and lists apart the namespaces skipped because
// a Secret of that name is someone else's. In a dry run only write failures
// count. Some registries failing (ecr.ErrPartial) fail the pass too, after
// the others were written.
func (c *Controller) RunOnce(ctx context.Context) error {
	if !c.caches.WaitForSync(ctx) {
		return ctx.Err()
	}
	c.opts.Observer.Leading(true)
	defer c.opts.Observer.Leading(false)

	backoff := c.newBackoff()
	var partial error
	for attempt := 1; ; attempt++ {
		delay, err := c.refreshOnce(ctx, &backoff)
		if err == nil || errors.Is(err, ecr.ErrPartial) && c.payload.Load() != nil {
			partial = err
			break
		}
		if attempt == onceFetchAttempts || ctx.Err() != nil {
			return fmt.Errorf("fetch ecr token (%d attempts): %w", attempt, err)
		}
		c.clock.Sleep(delay)
	}
	failed, total, err := c.forEachNamespace(ctx, func(ctx context.Context, ns string) error {
		return c.SyncNamespace(ctx, ns)
	})
	if err != nil {
		return err
	}
	if !c.opts.DryRun {
		if err := c.checkServed(failed); err != nil {
			return err
		}
	}
	if err := passError("sync", failed, total); err != nil {
		return err
	}
	if partial != nil {
		return fmt.Errorf("fetch ecr token: %w", partial)
	}
	c.log.Info("one-shot pass done", "action", "sync", "namespaces", total)
	return nil
}

// checkServed adds to failed every target namespace that has no usable
// Secret of ours or whose ServiceAccounts do not all list it, and returns an
// error listing the namespaces whose Secret is someone else's, if any.
func (c *Controller) checkServed(failed map[string]error) error {
	all, err := c.caches.Namespaces.List(labels.Everything())
	if err != nil {
		return fmt.Errorf("list namespaces from cache: %w", err)
	}
	now := c.clock.Now()
	var foreign []string
	for _, ns := range all {
		if _, ok := failed[ns.Name]; ok || ns.DeletionTimestamp != nil || ns.Status.Phase == corev1.NamespaceTerminating ||
			c.opts.Target != nil && !c.opts.Target(ns) {
			continue
		}
		secret, err := c.cachedSecret(ns.Name)
		if err == nil {
			err = kube.CheckSecret(secret, now)
		}
		if errors.Is(err, kube.ErrNotOurs) {
			foreign = append(foreign, ns.Name)
			continue
		}
		if err != nil {
			failed[ns.Name] = err
			continue
		}
		sas, err := c.caches.ServiceAccountsIn(ns.Name)
		if err != nil {
			failed[ns.Name] = fmt.Errorf("list serviceaccounts from cache: %w", err)
			continue
		}
		var missing []string
		for _, sa := range sas {
			if !kube.HasPullSecret(sa, c.opts.SecretName) {
				missing = append(missing, sa.Name)
			}
		}
		if len(missing) > 0 {
			slices.Sort(missing)
			failed[ns.Name] = fmt.Errorf("serviceaccounts %s do not list secret %s", strings.Join(missing, ", "), c.opts.SecretName)
		}
	}
	if len(foreign) == 0 {
		return nil
	}
	slices.Sort(foreign)
	err = fmt.Errorf("secret %s exists but is not managed by kube-ecr-refresher in %d namespaces (%s): delete or rename it, or exclude the namespace",
		c.opts.SecretName, len(foreign), strings.Join(foreign, ", "))
	if perr := passError("sync", failed, len(all)); perr != nil {
		return fmt.Errorf("%w\n%w", perr, err)
	}
	return err
}

// CleanupAll removes what this controller wrote from every namespace, whether
// or not it is a target: our Secret (by label) and the ServiceAccount
// entries it added. It needs no token.
func (c *Controller) CleanupAll(ctx context.Context) error {
	if !c.caches.WaitForSync(ctx) {
		return ctx.Err()
	}
	failed, total, err := c.forEachNamespace(ctx, func(ctx context.Context, ns string) error {
		cleaned, err := c.cleanNamespace(ctx, ns)
		if err == nil && cleaned {
			c.opts.Observer.NamespaceSynced(ns, SyncCleaned)
		}
		if isTerminating(err) {
			return nil
		}
		return err
	})
	if err != nil {
		return err
	}
	if err := passError("clean up", failed, total); err != nil {
		return err
	}
	c.log.Info("one-shot pass done", "action", "clean up", "namespaces", total)
	return nil
}

// forEachNamespace runs fn on every cached namespace, Workers at a time, and
// returns each namespace's failure and the number of namespaces. Its error
// is the context's.
func (c *Controller) forEachNamespace(ctx context.Context, fn func(context.Context, string) error) (map[string]error, int, error) {
	all, err := c.caches.Namespaces.List(labels.Everything())
	if err != nil {
		return nil, 0, fmt.Errorf("list namespaces from cache: %w", err)
	}
	names := make(chan string)
	var (
		mu     sync.Mutex
		failed = map[string]error{}
		wg     sync.WaitGroup
	)
	for range max(1, c.opts.Workers) {
		wg.Go(func() {
			for ns := range names {
				err := fn(ctx, ns)
				if err != nil && ctx.Err() == nil {
					// One retry after a short pause covers a stale cache
					// (conflict, already exists).
					c.clock.Sleep(wait.Jitter(c.opts.RetryInitial/5, 1))
					err = fn(ctx, ns)
				}
				if err != nil {
					mu.Lock()
					failed[ns] = err
					mu.Unlock()
				}
			}
		})
	}
	for _, ns := range all {
		select {
		case names <- ns.Name:
		case <-ctx.Done():
		}
	}
	close(names)
	wg.Wait()
	if ctx.Err() != nil {
		return nil, 0, ctx.Err()
	}
	return failed, len(all), nil
}

// passError joins the failures of a pass over total namespaces, one line per
// namespace, sorted; nil when there are none.
func passError(what string, failed map[string]error, total int) error {
	if len(failed) == 0 {
		return nil
	}
	names := slices.Sorted(maps.Keys(failed))
	lines := make([]string, 0, len(names))
	for _, ns := range names {
		lines = append(lines, fmt.Sprintf("%s: %v", ns, failed[ns]))
	}
	return fmt.Errorf("%s failed in %d of %d namespaces (%s):\n%w", what, len(names), total,
		strings.Join(names, ", "), errors.New(strings.Join(lines, "\n")))
}
