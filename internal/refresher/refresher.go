// Package refresher owns the refresh loop: it keeps one current ECR token,
// fetched on schedule with backoff, and syncs it into every target namespace.
//
// It ties internal/ecr (tokens) to internal/kube (Secrets, ServiceAccounts).
package refresher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"

	"github.com/kube-ecr-refresher/kube-ecr-refresher/internal/kube"
)

// TokenSource fetches a fresh token; one call is one ECR round trip.
type TokenSource interface {
	Fetch(ctx context.Context) (kube.Token, error)
}

// Options configure a Controller.
type Options struct {
	SecretName      string
	ServiceAccounts []string
	// Target reports whether a namespace is served; nil serves every namespace.
	Target func(ns *corev1.Namespace) bool
	// RefreshRemainingFraction: refresh when less than this fraction of a
	// token's lifetime remains.
	RefreshRemainingFraction float64
	MinRefreshInterval       time.Duration
	RetryInitial             time.Duration
	RetryMax                 time.Duration
	Workers                  int
	// Resync re-lists the caches periodically (0: never).
	Resync time.Duration
	// DryRun logs each write that would be made and makes none.
	DryRun bool
	// Observer is told what happens (metrics); nil ignores it.
	Observer Observer
	// Events posts Kubernetes Events; nil posts none.
	Events EventSink
	// WorkqueueMetrics instruments the workqueue; nil disables it.
	WorkqueueMetrics workqueue.MetricsProvider
}

// EventSink posts Kubernetes Events (see kube.Events).
type EventSink interface {
	SecretNotOurs(ns *corev1.Namespace, secret string)
	SecretFailed(ns *corev1.Namespace, secret string, err error)
	RefreshFailed(err error)
	RefreshRecovered()
}

// Controller syncs the current token into every target namespace while it
// leads. Its caches run on every replica so a new leader starts warm.
type Controller struct {
	opts   Options
	log    *slog.Logger
	clock  clock.WithTicker
	client kubernetes.Interface
	tokens TokenSource
	caches *kube.Caches

	payload atomic.Pointer[kube.Payload]
	// failing is true after a failed fetch, until one succeeds (token loop only).
	failing bool
	// queue is non-nil only while leading; event handlers drop events otherwise.
	queue atomic.Pointer[workqueue.TypedRateLimitingInterface[string]]
}

// New builds a Controller and its informers (not yet started).
func New(client kubernetes.Interface, tokens TokenSource, opts Options, log *slog.Logger, clk clock.WithTicker) (*Controller, error) {
	if opts.Observer == nil {
		opts.Observer = NopObserver{}
	}
	c := &Controller{opts: opts, log: log, clock: clk, client: client, tokens: tokens}
	byNamespace := cache.ResourceEventHandlerFuncs{
		AddFunc:    func(obj any) { c.enqueueObject(obj) },
		UpdateFunc: func(_, obj any) { c.enqueueObject(obj) },
		DeleteFunc: func(obj any) { c.enqueueObject(obj) },
	}
	caches, err := kube.NewCaches(client, opts.SecretName, opts.ServiceAccounts, opts.Resync, kube.CacheHandlers{
		Namespace: cache.ResourceEventHandlerFuncs{
			AddFunc:    func(obj any) { c.enqueueNamespace(obj) },
			UpdateFunc: func(_, obj any) { c.enqueueNamespace(obj) },
		},
		Secret:         byNamespace,
		ServiceAccount: byNamespace,
	})
	if err != nil {
		return nil, err
	}
	c.caches = caches
	return c, nil
}

// Caches returns the controller's informer caches.
func (c *Controller) Caches() *kube.Caches { return c.caches }

// Payload returns the token currently written, or nil before the first fetch.
func (c *Controller) Payload() *kube.Payload { return c.payload.Load() }

func (c *Controller) enqueueNamespace(obj any) {
	if ns, ok := obj.(*corev1.Namespace); ok {
		c.enqueue(ns.Name)
	}
}

func (c *Controller) enqueueObject(obj any) {
	if d, ok := obj.(cache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	switch o := obj.(type) {
	case *corev1.Secret:
		c.enqueue(o.Namespace)
	case *corev1.ServiceAccount:
		c.enqueue(o.Namespace)
	}
}

func (c *Controller) enqueue(ns string) {
	if q := c.queue.Load(); q != nil {
		(*q).Add(ns)
	}
}

func (c *Controller) enqueueAll() {
	q := c.queue.Load()
	if q == nil {
		return
	}
	all, err := c.caches.Namespaces.List(labels.Everything())
	if err != nil {
		return
	}
	for _, ns := range all {
		(*q).Add(ns.Name)
	}
}

// Lead runs the token loop and the workers until ctx ends. The caches must
// have been started. It returns once every worker has stopped.
func (c *Controller) Lead(ctx context.Context) error {
	if !c.caches.WaitForSync(ctx) {
		return ctx.Err()
	}
	q := workqueue.NewTypedRateLimitingQueueWithConfig(
		workqueue.DefaultTypedControllerRateLimiter[string](),
		workqueue.TypedRateLimitingQueueConfig[string]{Name: "namespaces", Clock: c.clock, MetricsProvider: c.opts.WorkqueueMetrics},
	)
	c.queue.Store(&q)
	c.opts.Observer.Leading(true)
	defer func() {
		c.queue.Store(nil)
		q.ShutDown()
		c.opts.Observer.Leading(false)
	}()

	var wg sync.WaitGroup
	for range c.opts.Workers {
		wg.Go(func() {
			for c.processNext(ctx, q) {
			}
		})
	}
	c.tokenLoop(ctx)
	q.ShutDown()
	wg.Wait()
	return nil
}

// tokenLoop fetches a token, publishes it, enqueues every namespace and sleeps
// until the token is due (never less than MinRefreshInterval); after a failed
// fetch it keeps the current token and retries with capped, jittered backoff.
func (c *Controller) tokenLoop(ctx context.Context) {
	backoff := c.opts.RetryInitial
	for {
		wait, _ := c.refreshOnce(ctx, &backoff)
		if ctx.Err() != nil {
			return
		}
		t := c.clock.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C():
		}
	}
}

// refreshOnce does one fetch and returns how long to wait for the next, and
// the fetch error.
func (c *Controller) refreshOnce(ctx context.Context, backoff *time.Duration) (time.Duration, error) {
	start := c.clock.Now()
	tok, err := c.tokens.Fetch(ctx)
	var p *kube.Payload
	if err == nil {
		p, err = kube.NewPayload(tok)
	}
	if ctx.Err() == nil {
		c.opts.Observer.RefreshAttempt(err, c.clock.Since(start))
	}
	if err != nil {
		if ctx.Err() != nil {
			return 0, err
		}
		if !c.failing {
			c.failing = true
			if c.opts.Events != nil {
				c.opts.Events.RefreshFailed(err)
			}
		}
		// Jitter, but never beyond RetryMax: it is the longest retry delay.
		delay := min(wait.Jitter(*backoff, 0.2), c.opts.RetryMax)
		*backoff = min(*backoff*2, c.opts.RetryMax)
		attrs := []any{"error", err, "retry_in", delay.Round(time.Millisecond).String()}
		if cur := c.payload.Load(); cur != nil {
			attrs = append(attrs, "current_expires_at", cur.Token.ExpiresAt.UTC().Format(time.RFC3339))
		}
		c.log.Error("ecr token refresh failed; existing secrets are left as they are", attrs...)
		return delay, err
	}
	if c.failing {
		c.failing = false
		c.log.Info("ecr token refresh recovered")
		if c.opts.Events != nil {
			c.opts.Events.RefreshRecovered()
		}
	}
	*backoff = c.opts.RetryInitial
	c.payload.Store(p)
	c.opts.Observer.TokenFetched(tok)
	now := c.clock.Now()
	next := kube.RefreshAt(tok.FetchedAt, tok.ExpiresAt, c.opts.RefreshRemainingFraction).Sub(now)
	if next < c.opts.MinRefreshInterval {
		if next <= 0 {
			c.log.Warn("ecr token is already due for refresh when fetched; waiting the minimum refresh interval",
				"expires_at", tok.ExpiresAt.UTC().Format(time.RFC3339), "min_refresh_interval", c.opts.MinRefreshInterval.String())
		}
		next = c.opts.MinRefreshInterval
	}
	c.log.Info("ecr token fetched", "registries", p.Hosts,
		"expires_at", tok.ExpiresAt.UTC().Format(time.RFC3339), "next_refresh_in", next.Round(time.Second).String())
	c.enqueueAll()
	return next, nil
}

func (c *Controller) processNext(ctx context.Context, q workqueue.TypedRateLimitingInterface[string]) bool {
	ns, quit := q.Get()
	if quit {
		return false
	}
	defer q.Done(ns)
	err := c.SyncNamespace(ctx, ns)
	if err == nil {
		q.Forget(ns)
		return true
	}
	if ctx.Err() != nil {
		return true
	}
	if apierrors.IsAlreadyExists(err) || apierrors.IsConflict(err) {
		// Our cache was behind a write (often our own): retry quietly.
		c.log.Debug("cache behind the api server; retrying", "namespace", ns, "error", err)
	} else {
		c.log.Error("sync namespace failed; will retry", "namespace", ns, "error", err, "attempt", q.NumRequeues(ns)+1)
	}
	q.AddRateLimited(ns)
	return true
}

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
	p := c.payload.Load()
	if p == nil {
		return "", nil // the first token enqueues every namespace
	}
	now := c.clock.Now()
	if !now.Before(p.Token.ExpiresAt) {
		return SyncSkipped, nil // never write an expired token; the next fetch enqueues again
	}

	secret, err := c.cachedSecret(name)
	if err != nil {
		return SyncError, err
	}
	plan := kube.PlanSecret(secret, p, now, c.opts.RefreshRemainingFraction)
	switch plan.Action {
	case kube.SecretForeign:
		c.log.Warn("secret exists and is not managed by kube-ecr-refresher; namespace skipped",
			"namespace", name, "secret", c.opts.SecretName,
			"hint", "delete or rename it, or label it "+kube.ManagedByLabel+"="+kube.ManagedByValue+" to let us manage it")
		if c.opts.Events != nil {
			c.opts.Events.SecretNotOurs(ns, c.opts.SecretName)
		}
		return SyncSkipped, nil
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
			if c.opts.Events != nil && ctx.Err() == nil {
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
