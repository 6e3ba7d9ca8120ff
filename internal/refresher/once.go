package refresher

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"

	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/wait"
)

// onceFetchAttempts bounds the token fetches of a one-shot pass.
const onceFetchAttempts = 3

// RunOnce does one full pass: it fetches a token (retrying with backoff a
// few times), syncs every namespace once with Workers in parallel, and
// returns an error naming each namespace that failed.
func (c *Controller) RunOnce(ctx context.Context) error {
	if !c.caches.WaitForSync(ctx) {
		return ctx.Err()
	}
	c.opts.Observer.Leading(true)
	defer c.opts.Observer.Leading(false)

	backoff := c.opts.RetryInitial
	for attempt := 1; ; attempt++ {
		delay, err := c.refreshOnce(ctx, &backoff)
		if err == nil {
			break
		}
		if attempt == onceFetchAttempts || ctx.Err() != nil {
			return fmt.Errorf("fetch ecr token (%d attempts): %w", attempt, err)
		}
		c.clock.Sleep(delay)
	}
	return c.forEachNamespace(ctx, "sync", func(ctx context.Context, ns string) error {
		return c.SyncNamespace(ctx, ns)
	})
}

// CleanupAll removes what this controller wrote from every namespace, whether
// or not it is a target: our Secret (by label) and the ServiceAccount
// entries naming it. It needs no token.
func (c *Controller) CleanupAll(ctx context.Context) error {
	if !c.caches.WaitForSync(ctx) {
		return ctx.Err()
	}
	return c.forEachNamespace(ctx, "clean up", func(ctx context.Context, ns string) error {
		cleaned, err := c.cleanNamespace(ctx, ns)
		if err == nil && cleaned {
			c.opts.Observer.NamespaceSynced(ns, SyncCleaned)
		}
		if isTerminating(err) {
			return nil
		}
		return err
	})
}

// forEachNamespace runs fn on every cached namespace, Workers at a time, and
// joins the failures, one line per namespace, sorted.
func (c *Controller) forEachNamespace(ctx context.Context, what string, fn func(context.Context, string) error) error {
	all, err := c.caches.Namespaces.List(labels.Everything())
	if err != nil {
		return fmt.Errorf("list namespaces from cache: %w", err)
	}
	names := make(chan string)
	var (
		mu     sync.Mutex
		failed []string
		errs   = map[string]error{}
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
					failed = append(failed, ns)
					errs[ns] = err
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
		return ctx.Err()
	}
	if len(failed) == 0 {
		c.log.Info("one-shot pass done", "action", what, "namespaces", len(all))
		return nil
	}
	slices.Sort(failed)
	lines := make([]string, 0, len(failed))
	for _, ns := range failed {
		lines = append(lines, fmt.Sprintf("%s: %v", ns, errs[ns]))
	}
	return fmt.Errorf("%s failed in %d of %d namespaces (%s):\n%w", what, len(failed), len(all),
		strings.Join(failed, ", "), errors.New(strings.Join(lines, "\n")))
}
