// Package app owns the wiring of the binary: configuration to clients, the
// three modes (controller, --once, --cleanup), the HTTP servers and leader election.
package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"runtime"
	"slices"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	"github.com/kube-ecr-refresher/kube-ecr-refresher/internal/config"
	"github.com/kube-ecr-refresher/kube-ecr-refresher/internal/ecr"
	"github.com/kube-ecr-refresher/kube-ecr-refresher/internal/health"
	"github.com/kube-ecr-refresher/kube-ecr-refresher/internal/kube"
	"github.com/kube-ecr-refresher/kube-ecr-refresher/internal/metrics"
	"github.com/kube-ecr-refresher/kube-ecr-refresher/internal/refresher"
)

// Exit codes.
const (
	ExitOK          = 0
	ExitError       = 1
	ExitConfigError = 2
)

// ConfigError marks errors found before anything was contacted.
type ConfigError struct{ Err error }

func (e ConfigError) Error() string { return e.Err.Error() }
func (e ConfigError) Unwrap() error { return e.Err }

// ExitCode maps Run's error to the process exit code and prints it to stderr.
func ExitCode(err error, stderr io.Writer) int {
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return ExitOK
	case errors.As(err, new(ConfigError)):
		fmt.Fprintf(stderr, "kube-ecr-refresher: invalid configuration:\n%s\n", indent(err.Error()))
		return ExitConfigError
	default:
		fmt.Fprintf(stderr, "kube-ecr-refresher: %v\n", err)
		return ExitError
	}
}

func indent(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = "  " + l
	}
	return strings.Join(lines, "\n")
}

// Run loads the configuration from args and the environment, then runs the
// chosen mode until it is done or ctx ends. version is the build's version.
//
// With "status" as the first argument it runs the status command instead,
// which prints to stdout; --version prints the version.
func Run(ctx context.Context, version string, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "status" {
		return runStatus(ctx, version, args[1:], stdout, stderr, deps{})
	}
	if len(args) == 1 && (args[0] == "--version" || args[0] == "-version" || args[0] == "version") {
		_, err := fmt.Fprintf(stdout, "kube-ecr-refresher %s (%s)\n", version, runtime.Version())
		return err
	}
	return run(ctx, version, args, stderr, deps{})
}

// deps are what tests replace; each nil field means the real thing.
type deps struct {
	// kube builds the Kubernetes client from the configuration.
	kube func(config.Config) (kubernetes.Interface, error)
	// tokens replaces the ECR token source.
	tokens refresher.TokenSource
	// listening is told the address each server listens on.
	listening func(what string, addr net.Addr)
}

func run(ctx context.Context, version string, args []string, stderr io.Writer, d deps) error {
	cfg, err := config.Load(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return err
	}
	if err != nil {
		return ConfigError{err}
	}
	log := newLogger(cfg, stderr)
	klog.SetSlogLogger(log.With("component", "client-go"))

	filter := kube.NewNamespaceFilter(cfg.TargetNamespaces, cfg.ExcludeNamespaces, cfg.Selector())
	identity, leaseNS := cfg.Identity, cfg.LeaseNamespace // resolved by config.Load
	// Every write leaves through the fence, which leader election arms.
	fence := kube.NewWriteFence(cfg.LeaseDuration, cfg.RenewDeadline)
	newClient := d.kube
	if newClient == nil {
		newClient = func(cfg config.Config) (kubernetes.Interface, error) {
			return realClient(cfg, version, identity, fence)
		}
	}
	var (
		reg *prometheus.Registry
		m   *metrics.Metrics
	)
	if cfg.MetricsAddr != "" {
		reg = metrics.NewRegistry()
		if m, err = metrics.New(reg); err != nil {
			return fmt.Errorf("metrics: %w", err)
		}
		m.SetBuildInfo(version)
	}
	tokens := d.tokens
	if tokens == nil && !cfg.Cleanup { // cleanup needs no token, so no AWS configuration
		if tokens, err = ecrTokens(ctx, cfg, m); err != nil {
			return err
		}
	}
	client, err := newClient(cfg)
	if err != nil {
		return err
	}
	// The elector has a client of its own, outside the fence's connections:
	// a stale leader must still learn that it lost the Lease.
	leaseClient := client
	if d.kube == nil {
		if leaseClient, err = realClient(cfg, version, identity, nil); err != nil {
			return err
		}
	}

	opts := refresher.Options{
		SecretName:               cfg.SecretName,
		ServiceAccounts:          serviceAccountNames(cfg.ServiceAccounts),
		Target:                   filter.Matches,
		RefreshRemainingFraction: cfg.RefreshRemainingFraction,
		MinRefreshInterval:       cfg.MinRefreshInterval,
		RetryInitial:             cfg.RetryInitial,
		RetryMax:                 cfg.RetryMax,
		Workers:                  cfg.Workers,
		DryRun:                   cfg.DryRun,
		// Half the margin between a failed renewal and the Lease expiring.
		Drain: (cfg.LeaseDuration - cfg.RenewDeadline) / 2,
	}
	if m != nil {
		opts.Observer = m
		opts.WorkqueueMetrics = m.WorkqueueProvider()
	}
	var events *kube.Events
	if cfg.Events {
		events = kube.NewEvents(client, cfg.PodNamespace, cfg.PodName, leaseNS, cfg.LeaseName, log)
		defer events.Shutdown()
		opts.Events = events
	}
	ctrl, err := refresher.New(client, tokens, opts, log, clock.RealClock{})
	if err != nil {
		return err
	}

	mode := "controller"
	switch {
	case cfg.Cleanup:
		mode = "cleanup"
	case cfg.Once:
		mode = "once"
	}
	log.Info("starting", "version", version, "mode", mode, "identity", identity, "secret", cfg.SecretName,
		"target_namespaces", targetsForLog(cfg.TargetNamespaces), "exclude_namespaces", cfg.ExcludeNamespaces,
		"namespace_selector", cfg.NamespaceSelector, "service_accounts", cfg.ServiceAccounts,
		"leader_elect", cfg.LeaderElect, "dry_run", cfg.DryRun)

	ctx, cancel := context.WithCancel(ctx)
	ctrl.Caches().Start(ctx)
	defer func() {
		cancel() // informers stop only once their context ends
		ctrl.Caches().Shutdown()
	}()

	leader := kube.LeaderConfig{
		Namespace:     leaseNS,
		Name:          cfg.LeaseName,
		Identity:      identity,
		LeaseDuration: cfg.LeaseDuration,
		RenewDeadline: cfg.RenewDeadline,
		RetryPeriod:   cfg.RetryPeriod,
		Fence:         fence,
	}
	switch mode {
	case "cleanup":
		return runCleanup(ctx, cfg, leaseClient, leader, ctrl, log)
	case "once":
		return runOnce(ctx, cfg, leaseClient, leader, ctrl, events, log)
	}

	listen := func(what, addr string, h http.Handler) (*health.Server, error) {
		srv, err := health.Listen(what, addr, h, log)
		if err == nil && d.listening != nil {
			d.listening(what, srv.Addr())
		}
		return srv, err
	}
	watchdog := leaderelection.NewLeaderHealthzAdaptor(cfg.RenewDeadline)
	leader.Watchdog = watchdog
	if cfg.HealthAddr != "" {
		ready := health.CheckFunc(func(*http.Request) error {
			if !ctrl.Caches().Synced() {
				return health.ErrNotSynced
			}
			return nil
		})
		srv, err := listen("health", cfg.HealthAddr, health.Handler(watchdog, ready))
		if err != nil {
			return err
		}
		defer srv.Shutdown()
	}
	if cfg.PprofAddr != "" {
		srv, err := listen("pprof", cfg.PprofAddr, pprofHandler())
		if err != nil {
			return err
		}
		defer srv.Shutdown()
		log.Warn("pprof endpoints enabled; profiles show memory contents", "addr", srv.Addr().String())
	}
	if reg != nil {
		srv, err := listen("metrics", cfg.MetricsAddr, metrics.Handler(reg))
		if err != nil {
			return err
		}
		defer srv.Shutdown()
	}

	if !cfg.LeaderElect {
		log.Info("leader election disabled; this replica writes")
		return ctrl.Lead(ctx)
	}
	lost, err := kube.RunLeaderElection(ctx, leaseClient, leader, log, func(ctx context.Context) {
		if err := ctrl.Lead(ctx); err != nil && ctx.Err() == nil {
			log.Error("controller stopped", "error", err)
			cancel()
		}
		// The process exits once leading ends: stop posting Events before
		// the Lease is released, so no request of ours is left in flight.
		if events != nil {
			events.Shutdown()
		}
	})
	if err != nil {
		return fmt.Errorf("leader election: %w", err)
	}
	if lost {
		return errors.New("lost leadership; exiting so this replica restarts clean")
	}
	log.Info("shut down")
	return nil
}

// ecrTokens builds the ECR token source from the configuration.
func ecrTokens(ctx context.Context, cfg config.Config, m *metrics.Metrics) (refresher.TokenSource, error) {
	var wrap func(ecr.API) ecr.API
	if m != nil {
		wrap = m.InstrumentECR
	}
	src, err := ecr.NewSource(ctx, ecr.SourceOptions{
		Registries: cfg.RegistryList,
		ExtraHosts: cfg.ExtraRegistryHosts,
		Public:     cfg.ECRPublic,
		Timeout:    cfg.ECRTimeout,
		Wrap:       wrap,
	})
	if err != nil {
		return nil, ConfigError{err}
	}
	return src, nil
}

// runOnce does one pass, as the leader when leader election is on (so it
// never races a running Deployment), and releases the Lease at the end.
func runOnce(ctx context.Context, cfg config.Config, client kubernetes.Interface, leader kube.LeaderConfig, ctrl *refresher.Controller, events *kube.Events, log *slog.Logger) error {
	if !cfg.LeaderElect {
		return ctrl.RunOnce(ctx)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	result := make(chan error, 1)
	_, err := kube.RunLeaderElection(ctx, client, leader, log, func(leadCtx context.Context) {
		result <- ctrl.RunOnce(leadCtx)
		// Post the pass's Events while the Lease is still ours: the write
		// fence refuses them once it is released.
		if events != nil {
			events.Shutdown()
		}
		cancel() // release the Lease
	})
	if err != nil {
		return fmt.Errorf("leader election: %w", err)
	}
	select {
	case err := <-result:
		return err
	default:
		return errors.New("stopped before the one-shot pass completed")
	}
}

// cleanupLeaseHold is how long --cleanup keeps the Lease: long enough for
// helm uninstall to delete the Deployment after its pre-delete hook, so no
// replica re-creates what was removed.
const cleanupLeaseHold = 10 * time.Minute

// runCleanup removes everything ours. With leader election on it first takes
// the Lease and waits until no replica can still believe it leads.
func runCleanup(ctx context.Context, cfg config.Config, client kubernetes.Interface, leader kube.LeaderConfig, ctrl *refresher.Controller, log *slog.Logger) error {
	if cfg.LeaderElect && !cfg.DryRun {
		if err := kube.TakeLease(ctx, client.CoordinationV1(), leader.Namespace, leader.Name, leader.Identity+"-cleanup", cleanupLeaseHold, time.Now()); err != nil {
			return err
		}
		// The old leader notices within a retry period, gives up renewing
		// after the renew deadline, then drains for at most half of
		// (lease duration - renew deadline): all within this.
		settle := cfg.LeaseDuration + 2*cfg.RetryPeriod
		log.Info("took the lease so no replica writes during cleanup; waiting for the old leader to stop",
			"lease", leader.Namespace+"/"+leader.Name, "hold", cleanupLeaseHold.String(), "wait", settle.String())
		select {
		case <-time.After(settle):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if err := ctrl.CleanupAll(ctx); err != nil {
		return err
	}
	log.Info("cleanup done")
	return nil
}

// serviceAccountNames maps the configured names to the informers' names.
func serviceAccountNames(names []string) []string {
	if slices.Contains(names, "*") {
		return []string{kube.AllServiceAccounts}
	}
	return names
}

func newLogger(cfg config.Config, w io.Writer) *slog.Logger {
	opts := &slog.HandlerOptions{Level: cfg.SlogLevel()}
	if cfg.LogFormat == "text" {
		return slog.New(slog.NewTextHandler(w, opts))
	}
	return slog.New(slog.NewJSONHandler(w, opts))
}

// realClient builds the Kubernetes client from the kubeconfig or the
// in-cluster configuration; with a fence, every request and connection of
// it passes the fence.
func realClient(cfg config.Config, version, identity string, fence *kube.WriteFence) (kubernetes.Interface, error) {
	rc, err := restConfig(cfg, version, identity)
	if err != nil {
		return nil, ConfigError{err}
	}
	if fence != nil {
		rc.Wrap(fence.Wrap)
		rc.Dial = fence.Dial((&net.Dialer{Timeout: 30 * time.Second, KeepAlive: 30 * time.Second}).DialContext)
	}
	client, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	return client, nil
}

// restConfig builds the client configuration. The user agent names this
// replica (kube-ecr-refresher/VERSION (IDENTITY)), so the API server's audit
// log tells which replica made each write.
func restConfig(cfg config.Config, version, identity string) (*rest.Config, error) {
	var (
		rc  *rest.Config
		err error
	)
	if cfg.Kubeconfig != "" {
		rc, err = clientcmd.BuildConfigFromFlags("", cfg.Kubeconfig)
		if err != nil {
			return nil, fmt.Errorf("load kubeconfig %s: %w", cfg.Kubeconfig, err)
		}
	} else {
		rc, err = rest.InClusterConfig()
		if err != nil {
			return nil, fmt.Errorf("in-cluster config: %w (outside a cluster, set %s or --%s)",
				err, config.EnvName("KUBECONFIG"), config.FlagName("KUBECONFIG"))
		}
	}
	// Protobuf for built-in types: less CPU and garbage than JSON on the
	// watch streams and the writes, as kube-controller-manager does.
	rc.ContentType = "application/vnd.kubernetes.protobuf"
	rc.AcceptContentTypes = "application/vnd.kubernetes.protobuf,application/json"
	rc.QPS = float32(cfg.QPS)
	rc.Burst = cfg.Burst
	rc.UserAgent = "kube-ecr-refresher/" + version + " (" + identity + ")"
	return rc, nil
}

func targetsForLog(names []string) string {
	if len(names) == 0 {
		return "all"
	}
	return strings.Join(names, ",")
}

// pprofHandler serves net/http/pprof's endpoints on a mux of their own (the
// package's init registers them on http.DefaultServeMux, which no server
// here uses).
func pprofHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}
