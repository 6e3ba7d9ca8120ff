package kube

import (
	"context"
	"log/slog"
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
	// OnNewLeader is called with the identity of each new leader (may be nil).
	OnNewLeader func(identity string)
}

// RunLeaderElection campaigns for the Lease until ctx ends. lead runs while this
// replica leads, with a context cancelled when leadership is lost. It returns
// true if leadership was lost while ctx was still live (the caller should exit
// non-zero and restart clean); on ctx cancellation the Lease is released
// (ReleaseOnCancel) so another replica takes over at once.
func RunLeaderElection(ctx context.Context, client kubernetes.Interface, cfg LeaderConfig, log *slog.Logger, lead func(ctx context.Context)) (lost bool, err error) {
	lock := &resourcelock.LeaseLock{
		LeaseMeta:  metaFor(cfg.Namespace, cfg.Name),
		Client:     client.CoordinationV1(),
		LockConfig: resourcelock.ResourceLockConfig{Identity: cfg.Identity},
	}
	// led is set by OnStartedLeading, which client-go runs in its own goroutine.
	var led atomic.Bool
	elector, err := leaderelection.NewLeaderElector(leaderelection.LeaderElectionConfig{
		Lock:            lock,
		LeaseDuration:   cfg.LeaseDuration,
		RenewDeadline:   cfg.RenewDeadline,
		RetryPeriod:     cfg.RetryPeriod,
		ReleaseOnCancel: true,
		Name:            cfg.Name,
		WatchDog:        cfg.Watchdog,
		Callbacks: leaderelection.LeaderCallbacks{
			OnStartedLeading: func(ctx context.Context) {
				led.Store(true)
				log.Info("became leader", "lease", cfg.Namespace+"/"+cfg.Name, "identity", cfg.Identity)
				lead(ctx)
			},
			OnStoppedLeading: func() {
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
	elector.Run(ctx)
	// Run returns with ctx live only once leadership was acquired and then
	// lost (acquiring gives up only when ctx ends). Not led.Load(): the
	// OnStartedLeading goroutine may not have run yet.
	return ctx.Err() == nil, nil
}
