// Command kube-ecr-refresher keeps Amazon ECR image pull Secrets fresh in every
// target namespace of a Kubernetes cluster. main is wiring only.
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
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
	"github.com/kube-ecr-refresher/kube-ecr-refresher/internal/kube"
	"github.com/kube-ecr-refresher/kube-ecr-refresher/internal/metrics"
	"github.com/kube-ecr-refresher/kube-ecr-refresher/internal/refresher"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// Exit codes.
const (
	exitOK          = 0
	exitError       = 1
	exitConfigError = 2
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stderr)
	stop()
	os.Exit(exitCode(err, os.Stderr))
}

// configError marks errors found before anything was contacted.
type configError struct{ err error }

func (e configError) Error() string { return e.err.Error() }
func (e configError) Unwrap() error { return e.err }

func exitCode(err error, stderr io.Writer) int {
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return exitOK
	case errors.As(err, new(configError)):
		fmt.Fprintf(stderr, "kube-ecr-refresher: invalid configuration:\n%s\n", indent(err.Error()))
		return exitConfigError
	default:
		fmt.Fprintf(stderr, "kube-ecr-refresher: %v\n", err)
		return exitError
	}
}

func indent(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		lines[i] = "  " + l
	}
	return strings.Join(lines, "\n")
}

func run(ctx context.Context, args []string, stderr io.Writer) error {
	cfg, err := config.Load(args, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return err
	}
	if err != nil {
		return configError{err}
	}
	log := newLogger(cfg, stderr)
	klog.SetSlogLogger(log.With("component", "client-go"))

	filter, err := kube.NewNamespaceFilter(cfg.TargetNamespaces, cfg.ExcludeNamespaces, cfg.NamespaceSelector)
	if err != nil {
		return configError{fmt.Errorf("%s (--%s): %w", config.EnvName("NAMESPACE_SELECTOR"), config.FlagName("NAMESPACE_SELECTOR"), err)}
	}
	restCfg, err := restConfig(cfg)
	if err != nil {
		return configError{err}
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
	var tokens refresher.TokenSource
	if !cfg.Cleanup { // cleanup needs no token, so no AWS configuration
		regs, err := config.ParseRegistries(cfg.Registries) // validated by Load
		if err != nil {
			return configError{err}
		}
		ecrRegs := make([]ecr.Registry, len(regs))
		for i, r := range regs {
			ecrRegs[i] = ecr.Registry(r)
		}
		src, err := ecr.NewSource(ctx, ecr.SourceOptions{
			Registries: ecrRegs,
			ExtraHosts: cfg.ExtraRegistryHosts,
			Public:     cfg.ECRPublic,
			Timeout:    cfg.ECRTimeout,
			Wrap:       instrumentECR(m),
		})
		if err != nil {
			return configError{err}
		}
		tokens = refresher.ECRTokens{Fetcher: src}
	}
	client, err := kubernetes.NewForConfig(restCfg)
	if err != nil {
		return fmt.Errorf("kubernetes client: %w", err)
	}

	identity := leaderIdentity(cfg)
	leaseNS := leaseNamespace(cfg)
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
	}
	if m != nil {
		opts.Observer = m
		opts.WorkqueueMetrics = m.WorkqueueProvider()
	}
	if cfg.Events {
		events := kube.NewEvents(client, os.Getenv("POD_NAMESPACE"), os.Getenv("POD_NAME"), leaseNS, cfg.LeaseName, log)
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
		"leader_elect", cfg.LeaderElect, "dry_run", cfg.DryRun, "api_server", restCfg.Host)

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
	}
	switch mode {
	case "cleanup":
		return runCleanup(ctx, cfg, client, leader, ctrl, log)
	case "once":
		return runOnce(ctx, cfg, client, leader, ctrl, log)
	}

	watchdog := leaderelection.NewLeaderHealthzAdaptor(cfg.RenewDeadline)
	leader.Watchdog = watchdog
	if cfg.HealthAddr != "" {
		srv, err := serveHealth(cfg.HealthAddr, watchdog, ctrl.Caches(), log)
		if err != nil {
			return err
		}
		defer shutdownServer(srv)
	}

	if reg != nil {
		srv, err := serve("metrics", cfg.MetricsAddr, metrics.Handler(reg), log)
		if err != nil {
			return err
		}
		defer shutdownServer(srv)
	}

	if !cfg.LeaderElect {
		log.Info("leader election disabled; this replica writes")
		return ctrl.Lead(ctx)
	}
	lost, err := kube.RunLeaderElection(ctx, client, leader, log, func(ctx context.Context) {
		if err := ctrl.Lead(ctx); err != nil && ctx.Err() == nil {
			log.Error("controller stopped", "error", err)
			cancel()
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

// runOnce does one pass, as the leader when leader election is on (so it
// never races a running Deployment), and releases the Lease at the end.
func runOnce(ctx context.Context, cfg config.Config, client kubernetes.Interface, leader kube.LeaderConfig, ctrl *refresher.Controller, log *slog.Logger) error {
	if !cfg.LeaderElect {
		return ctrl.RunOnce(ctx)
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	result := make(chan error, 1)
	_, err := kube.RunLeaderElection(ctx, client, leader, log, func(leadCtx context.Context) {
		result <- ctrl.RunOnce(leadCtx)
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
		settle := cfg.RenewDeadline + 2*cfg.RetryPeriod
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

func restConfig(cfg config.Config) (*rest.Config, error) {
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
	rc.UserAgent = "kube-ecr-refresher/" + version
	return rc, nil
}

func targetsForLog(names []string) string {
	if len(names) == 0 {
		return "all"
	}
	return strings.Join(names, ",")
}

const inClusterNamespaceFile = "/var/run/secrets/kubernetes.io/serviceaccount/namespace"

func leaseNamespace(cfg config.Config) string {
	if cfg.LeaseNamespace != "" {
		return cfg.LeaseNamespace
	}
	if ns := os.Getenv("POD_NAMESPACE"); ns != "" {
		return ns
	}
	if b, err := os.ReadFile(inClusterNamespaceFile); err == nil && len(strings.TrimSpace(string(b))) > 0 {
		return strings.TrimSpace(string(b))
	}
	return "default"
}

func leaderIdentity(cfg config.Config) string {
	if cfg.Identity != "" {
		return cfg.Identity
	}
	if name := os.Getenv("POD_NAME"); name != "" {
		return name
	}
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "kube-ecr-refresher"
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return host + "_" + hex.EncodeToString(b)
}

func serveHealth(addr string, watchdog *leaderelection.HealthzAdaptor, caches *kube.Caches, log *slog.Logger) (*http.Server, error) {
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		if err := watchdog.Check(r); err != nil {
			http.Error(w, "unhealthy: "+err.Error(), http.StatusInternalServerError)
			return
		}
		_, _ = io.WriteString(w, "ok\n")
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !caches.Synced() {
			http.Error(w, "caches not synced", http.StatusServiceUnavailable)
			return
		}
		_, _ = io.WriteString(w, "ok\n")
	})
	return serve("health", addr, mux, log)
}

// serve listens on addr and serves h until shutdownServer.
func serve(what, addr string, h http.Handler, log *slog.Logger) (*http.Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s address %s: %w", what, addr, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error(what+" server stopped", "error", err)
		}
	}()
	log.Info("serving "+what, "address", ln.Addr().String())
	return srv, nil
}

// instrumentECR times ECR calls when metrics are on.
func instrumentECR(m *metrics.Metrics) func(ecr.API) ecr.API {
	if m == nil {
		return nil
	}
	return m.InstrumentECR
}

func shutdownServer(srv *http.Server) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = srv.Shutdown(ctx)
}
