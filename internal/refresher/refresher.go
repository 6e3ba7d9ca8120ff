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
	"strings"
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

	"github.com/kube-ecr-refresher/kube-ecr-refresher/internal/ecr"
	"github.com/kube-ecr-refresher/kube-ecr-refresher/internal/kube"
	"github.com/kube-ecr-refresher/kube-ecr-refresher/internal/registry"
)

// TokenSource fetches fresh credentials; one call is one ECR round trip.
// *ecr.Source implements it: with an *ecr.PartialError it also returns the
// credentials still good, otherwise an error comes with empty credentials.
type TokenSource interface {
	Fetch(ctx context.Context) (registry.Credentials, error)
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
	// Drain is how long a namespace sync under way when Lead's context ends
	// may go on, so that its requests finish before Lead returns (and the
	// Lease is released); 0 cancels them at once. Keep it well below the
	// lease duration minus the renew deadline: after a lost Lease, that is
	// the margin before another replica may lead.
	Drain time.Duration
	// WorkqueueMetrics instruments the workqueue; nil disables it.
	WorkqueueMetrics workqueue.MetricsProvider
}

// EventSink posts Kubernetes Events (see kube.Events).
type EventSink interface {
	SecretNotOurs(ns *corev1.Namespace, secret string)
	SecretFailed(ns *corev1.Namespace, secret string, err error)
	RefreshFailed(err error)
	RefreshRecovered()
	// TokenExpired: ECR answered with a token expired for this long by its own clock.
	TokenExpired(expiredFor time.Duration)
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
	// failing is true after a failed fetch, until one succeeds (token loop
	// only); failingRegistries names the registries of a partial failure.
	failing           bool
	failingRegistries string
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
	// Some registries failed, the others answered: the token holds the fresh
	// credentials and the failing ones' last good ones until they expire.
	var partial *ecr.PartialError
	if errors.As(err, &partial) {
		err = nil
	}
	var p *kube.Payload
	if err == nil {
		p, err = kube.NewPayload(tok)
	}
	if ctx.Err() == nil {
		if err == nil && partial != nil {
			c.opts.Observer.RefreshAttempt(partial, c.clock.Since(start))
		} else {
			c.opts.Observer.RefreshAttempt(err, c.clock.Since(start))
		}
	}
	if err != nil {
		if ctx.Err() != nil {
			return 0, err
		}
		c.setFailing(err)
		delay := c.nextRetry(backoff)
		attrs := []any{"error", err, "retry_in", delay.Round(time.Millisecond).String()}
		if cur := c.payload.Load(); cur != nil {
			attrs = append(attrs, "current_expires_at", cur.Token.ExpiresAt.UTC().Format(time.RFC3339))
		}
		c.log.Error("ecr token refresh failed; existing secrets are left as they are", attrs...)
		return delay, err
	}
	retry := time.Duration(-1)
	if partial != nil {
		// An Event for each new set of failing registries, not only the first.
		if failed := strings.Join(partial.Failed, "; "); !c.failing || failed != c.failingRegistries {
			c.failing, c.failingRegistries = true, failed
			if c.opts.Events != nil {
				c.opts.Events.RefreshFailed(partial)
			}
		}
		for _, r := range partial.Failed {
			c.opts.Observer.RegistryFailed(r)
		}
		retry = c.nextRetry(backoff)
		c.log.Error("ecr token refresh failed for some registries; the others are refreshed, the failing ones keep their last good credentials until they expire",
			"error", partial, "failed", partial.Failed, "kept", partial.Kept, "retry_in", retry.Round(time.Millisecond).String())
	} else {
		if c.failing {
			c.failing, c.failingRegistries = false, ""
			c.log.Info("ecr token refresh recovered")
			if c.opts.Events != nil {
				c.opts.Events.RefreshRecovered()
			}
		}
		*backoff = c.opts.RetryInitial
	}
	now := c.clock.Now()
	c.noteToken(tok)
	// Every time here is on the local clock: ecr measured the lifetime on
	// ECR's own clock (expiresAt minus the answer's Date), so a skewed
	// clock on this machine changes nothing.
	expired := !tok.ExpiresAt.After(tok.FetchedAt)
	kept := false
	if cur := c.payload.Load(); cur != nil && now.Before(cur.Token.ExpiresAt) && cur.Token.ExpiresAt.After(tok.ExpiresAt) {
		// A valid token that lives longer stays the one new namespaces get.
		c.log.Info("fetched ecr token expires before the current one; keeping the current one",
			"expires_at", formatTime(tok.ExpiresAt), "current_expires_at", formatTime(cur.Token.ExpiresAt))
		p, kept = cur, true
	} else {
		c.payload.Store(p)
		c.opts.Observer.TokenFetched(tok)
		defer c.enqueueAll()
	}
	next := kube.RefreshAt(p.Token.FetchedAt, p.Token.ExpiresAt, c.opts.RefreshRemainingFraction).Sub(now)
	if next < c.opts.MinRefreshInterval {
		if next <= 0 && !expired && !kept {
			c.log.Warn("ecr token is already due for refresh when fetched; waiting the minimum refresh interval",
				"expires_at", formatTime(p.Token.ExpiresAt), "min_refresh_interval", c.opts.MinRefreshInterval.String())
		}
		next = c.opts.MinRefreshInterval
	}
	if retry >= 0 && retry < next {
		next = retry
	}
	c.log.Info("ecr token fetched", "registries", p.Hosts,
		"expires_at", formatTime(p.Token.ExpiresAt), "next_refresh_in", next.Round(time.Second).String())
	if partial != nil {
		return next, partial
	}
	return next, nil
}

// setFailing records a failed fetch; the first of a series posts an Event.
func (c *Controller) setFailing(err error) {
	if c.failing && c.failingRegistries == "" {
		return
	}
	c.failing, c.failingRegistries = true, ""
	if c.opts.Events != nil {
		c.opts.Events.RefreshFailed(err)
	}
}

// nextRetry is the delay before retrying a failed fetch: jittered, never
// beyond RetryMax (the longest retry delay); it doubles the backoff.
func (c *Controller) nextRetry(backoff *time.Duration) time.Duration {
	delay := min(wait.Jitter(*backoff, 0.2), c.opts.RetryMax)
	*backoff = min(*backoff*2, c.opts.RetryMax)
	return delay
}

// noteToken reports what is odd about a fresh token: a clock that differs
// from ECR's by more than a minute, and a token already expired by ECR's own
// clock (written only where no usable Secret is, and fetched again after
// MinRefreshInterval).
func (c *Controller) noteToken(tok registry.Credentials) {
	c.opts.Observer.ClockSkew(tok.ClockSkew)
	if tok.ClockSkew > time.Minute || tok.ClockSkew < -time.Minute {
		c.log.Warn("this machine's clock differs from ECR's; token lifetimes are measured on ECR's clock",
			"clock_skew", tok.ClockSkew.Round(time.Second).String())
	}
	if tok.ExpiresAt.After(tok.FetchedAt) {
		return
	}
	c.opts.Observer.ExpiredTokenFetched()
	c.log.Warn("ecr returned a token already expired by its own clock; it is written only where no usable secret exists",
		"expired_for", tok.FetchedAt.Sub(tok.ExpiresAt).Round(time.Second).String(),
		"retry_in", c.opts.MinRefreshInterval.String())
	if c.opts.Events != nil {
		c.opts.Events.TokenExpired(tok.FetchedAt.Sub(tok.ExpiresAt))
	}
}

func formatTime(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func (c *Controller) processNext(ctx context.Context, q workqueue.TypedRateLimitingInterface[string]) bool {
	ns, quit := q.Get()
	if quit {
		return false
	}
	defer q.Done(ns)
	if ctx.Err() != nil {
		return false // stopping: what is still queued is abandoned
	}
	syncCtx, stop := c.draining(ctx)
	err := c.SyncNamespace(syncCtx, ns)
	stop()
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

// draining returns a context for one sync that outlives ctx by at most
// Options.Drain: a sync under way when the leader stops finishes its
// requests, so none is still in flight when the Lease is released. stop must
// be called when the sync is done.
func (c *Controller) draining(ctx context.Context) (context.Context, func()) {
	if c.opts.Drain <= 0 {
		return ctx, func() {}
	}
	syncCtx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	stopAfter := context.AfterFunc(ctx, func() {
		t := c.clock.NewTimer(c.opts.Drain)
		defer t.Stop()
		select {
		case <-t.C():
			cancel()
		case <-syncCtx.Done():
		}
	})
	return syncCtx, func() {
		stopAfter()
		cancel()
	}
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
