package kube

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/client-go/tools/leaderelection/resourcelock"
)

// LeaderConfig names the Lease and its timings.
type LeaderConfig struct {
	Namespace     string
	Name          string
	Identity      string
	LeaseDuration time.Duration
	RenewDeadline time.Duration
	RetryPeriod   time.Duration
	// Watchdog fails a health check when this replica leads but has not
	// renewed the Lease for longer than the lease duration plus this slack.
	Watchdog *leaderelection.HealthzAdaptor
	// Fence, if set, is armed with this elector: from then on the writes
	// through its transport pass only while this replica leads and has
	// renewed the Lease within the renew deadline.
	Fence *WriteFence
	// OnNewLeader is called with the identity of each new leader (may be nil).
	OnNewLeader func(identity string)
}

// RunLeaderElection campaigns for the Lease until ctx ends. lead runs while this
// replica leads, with a context cancelled when ctx ends or leadership is lost.
// It returns true if leadership was lost while ctx was still live (the caller
// should exit non-zero and restart clean).
//
// When ctx ends, the Lease is released (ReleaseOnCancel) so another replica
// takes over at once, but only after lead has returned: until then this
// replica keeps renewing, so a new leader never starts while this one still
// writes. lead must return promptly once its context ends.
//
// cfg.Watchdog, if set, is armed with this elector (client-go arms it only in
// RunOrDie), so that its Check fails once this replica leads but has not
// renewed the Lease for longer than the lease duration plus its slack.
func RunLeaderElection(ctx context.Context, client kubernetes.Interface, cfg LeaderConfig, log *slog.Logger, lead func(ctx context.Context)) (lost bool, err error) {
	var lock resourcelock.Interface = &resourcelock.LeaseLock{
		LeaseMeta:  metaFor(cfg.Namespace, cfg.Name),
		Client:     client.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: cfg.Identity},
	}
	lock = &guardedLock{Interface: lock, fence: cfg.Fence}
	// The elector runs on its own context, ended once ctx has ended and lead
	// (if it started) has returned.
	electCtx, stopElecting := context.WithCancel(context.WithoutCancel(ctx))
	defer stopElecting()
	var (
		mu       sync.Mutex
		started  bool // lead was called
		leadDone = make(chan struct{})
		led      atomic.Bool // for OnStoppedLeading's log only
	)
	elector, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock:            lock,
		LeaseDuration:   cfg.LeaseDuration,
		RenewDeadline:   cfg.RenewDeadline,
		RetryPeriod:     cfg.RetryPeriod,
		ReleaseOnCancel: true,
		Name:            cfg.Name,
		WatchDog:        cfg.Watchdog,
		Callbacks: leaderelection.LeaderCallbacks{
			// client-go runs this in its own goroutine; electedCtx ends when
			// leadership is lost.
			OnStartedLeading: func(electedCtx context.Context) {
				mu.Lock()
				if ctx.Err() != nil {
					mu.Unlock()
					return // stopping already: never start writing
				}
				started = true
				mu.Unlock()
				defer close(leadDone)
				leadCtx, cancel := context.WithCancel(electedCtx)
				defer cancel()
				defer context.AfterFunc(ctx, cancel)()
				led.Store(true)
				log.Info("became leader", "lease", cfg.Namespace+"/"+cfg.Name, "identity", cfg.Identity)
				lead(leadCtx)
			},
			OnStoppedLeading: func() {
				if cfg.Fence != nil {
					cfg.Fence.end()
				}
				if led.Load() {
					log.Info("stopped leading", "lease", cfg.Namespace+"/"+cfg.Name, "identity", cfg.Identity)
				}
			},
			OnNewLeader: func(identity string) {
				if identity != cfg.Identity {
					log.Info("following leader", "leader", identity)
				}
				if cfg.OnNewLeader != nil {
					cfg.OnNewLeader(identity)
				}
			},
		},
	})
	if err != nil {
		return false, err
	}
	if cfg.Watchdog != nil {
		cfg.Watchdog.SetLeaderElection(elector)
	}
	if cfg.Fence != nil {
		cfg.Fence.arm(elector)
	}
	// waitLead returns once lead has returned, or at once if it never started
	// (and then never will: OnStartedLeading checks ctx under mu).
	waitLead := func() {
		mu.Lock()
		s := started
		mu.Unlock()
		if s {
			<-leadDone
		}
	}
	go func() {
		select {
		case <-ctx.Done():
			waitLead()
			stopElecting() // now the elector releases the Lease
		case <-electCtx.Done():
		}
	}()
	elector.Run(electCtx)
	// Run returns with ctx live only once leadership was acquired and then
	// lost (acquiring gives up only when ctx ends). lead's context is
	// cancelled by then; wait for it so no write outlives this call.
	lost = ctx.Err() == nil
	waitLead()
	return lost, nil
}

// guardedLock wraps the Lease lock client-go's elector uses.
//
// It refuses to release a Lease that another replica holds. client-go's
// tryRelease reads the Lease, then asks its own last observed record, not
// the one it just read, whether this replica leads. A replica that lost the
// Lease without noticing (its reads timed out, or it was paused) then
// releases the new holder's Lease on its way out, with the resourceVersion
// it just read, so the write succeeds; a third replica acquires the free
// Lease while the new holder, which still renews in its own view, keeps
// writing: two writers. make chaos found it (docs/reliability.md).
//
// With a fence, it also tells the fence when each successful write of the
// Lease naming this replica was sent: the fence's clock starts there.
type guardedLock struct {
	resourcelock.Interface
	fence *WriteFence // nil: no fence

	mu         sync.Mutex
	lastHolder string // the holder the Lease named when last read or written; "" before
}

// errHeldByAnother is returned, instead of releasing, for a Lease another
// replica holds.
var errHeldByAnother = errors.New("not released: the lease is held by another replica")

func (l *guardedLock) Get(ctx context.Context) (*resourcelock.LeaderElectionRecord, []byte, error) {
	rec, raw, err := l.Interface.Get(ctx)
	if err == nil {
		l.mu.Lock()
		l.lastHolder = rec.HolderIdentity
		l.mu.Unlock()
	}
	return rec, raw, err
}

func (l *guardedLock) Create(ctx context.Context, rec resourcelock.LeaderElectionRecord) error {
	sent := time.Now()
	err := l.Interface.Create(ctx, rec)
	l.done(rec, sent, err)
	return err
}

func (l *guardedLock) Update(ctx context.Context, rec resourcelock.LeaderElectionRecord) error {
	if rec.HolderIdentity == "" { // a release
		l.mu.Lock()
		holder := l.lastHolder
		l.mu.Unlock()
		if holder != "" && holder != l.Identity() {
			return fmt.Errorf("%w (%s)", errHeldByAnother, holder)
		}
	}
	sent := time.Now()
	err := l.Interface.Update(ctx, rec)
	l.done(rec, sent, err)
	return err
}

func (l *guardedLock) done(rec resourcelock.LeaderElectionRecord, sent time.Time, err error) {
	if err != nil {
		return
	}
	l.mu.Lock()
	l.lastHolder = rec.HolderIdentity
	l.mu.Unlock()
	if l.fence != nil && rec.HolderIdentity != "" && rec.HolderIdentity == l.Identity() {
		l.fence.renewedAt(sent)
	}
}
