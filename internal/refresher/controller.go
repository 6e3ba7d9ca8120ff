// Package refresher owns the refresh loop: it keeps one current ECR token,
// fetched on schedule with backoff, and syncs it into every target namespace.
//
// It ties internal/ecr (tokens) to internal/kube (Secrets, ServiceAccounts).
package refresher

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/cache"
	"k8s.io/client-go/util/workqueue"
	"k8s.io/utils/clock"

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
	opts  Options
	log   *slog.Logger
	clock clock.WithTicker
	// tokenClock sets the token loop's timers; the same clock, kept apart
	// so tests can tell the loop's waits from the workqueue's.
	tokenClock clock.WithTicker
	client     kubernetes.Interface
	tokens     TokenSource
	caches     *kube.Caches

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
	c := &Controller{opts: opts, log: log, clock: clk, tokenClock: clk, client: client, tokens: tokens}
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
	switch {
	case apierrors.IsAlreadyExists(err) || apierrors.IsConflict(err):
		// Our cache was behind a write (often our own): retry quietly.
		c.log.Debug("cache behind the api server; retrying", "namespace", ns, "error", err)
	case errors.Is(err, kube.ErrNotLeading):
		// The write fence held it back: not a failure of this namespace.
		// Either a renewal comes through and the retry writes, or leader
		// election stops this replica.
		c.log.Debug("write held back: this replica has not renewed its lease in time", "namespace", ns)
	default:
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
