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

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"k8s.io/client-go/tools/leaderelection"
	"k8s.io/klog/v2"
	"k8s.io/utils/clock"

	"github.com/kube-ecr-refresher/kube-ecr-refresher/internal/config"
	"github.com/kube-ecr-refresher/kube-ecr-refresher/internal/ecr"
	"github.com/kube-ecr-refresher/kube-ecr-refresher/internal/kube"
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

	restCfg, err := restConfig(cfg)
	if err != nil {
		return configError{err}
	}
	ecrAPI, err := ecr.NewAPI(ctx, cfg.ECRTimeout)
	if err != nil {
		return configError{err}
	}
	client, err := kubernetes.NewForConfig(restCfg)
	if err != nil {
		return fmt.Errorf("kubernetes client: %w", err)
	}

	ctrl, err := refresher.New(client, refresher.ECRTokens{Fetcher: ecr.NewFetcher(ecrAPI, nil)}, refresher.Options{
		SecretName:               cfg.SecretName,
		ServiceAccounts:          cfg.ServiceAccounts,
		Target:                   targetFilter(cfg.TargetNamespaces),
		RefreshRemainingFraction: cfg.RefreshRemainingFraction,
		MinRefreshInterval:       cfg.MinRefreshInterval,
		RetryInitial:             cfg.RetryInitial,
		RetryMax:                 cfg.RetryMax,
		Workers:                  cfg.Workers,
	}, log, clock.RealClock{})
	if err != nil {
		return err
	}

	identity := leaderIdentity(cfg)
	log.Info("starting", "version", version, "identity", identity, "secret", cfg.SecretName,
		"target_namespaces", targetsForLog(cfg.TargetNamespaces), "service_accounts", cfg.ServiceAccounts,
		"leader_elect", cfg.LeaderElect, "api_server", restCfg.Host)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ctrl.Caches().Start(ctx)
	defer ctrl.Caches().Shutdown()

	watchdog := leaderelection.NewLeaderHealthzAdaptor(cfg.RenewDeadline)
	if cfg.HealthAddr != "" {
		srv, err := serveHealth(cfg.HealthAddr, watchdog, ctrl.Caches(), log)
		if err != nil {
			return err
		}
		defer shutdownServer(srv)
	}

	if !cfg.LeaderElect {
		log.Info("leader election disabled; this replica writes")
		return ctrl.Lead(ctx)
	}
	lost, err := kube.RunLeaderElection(ctx, client, kube.LeaderConfig{
		Namespace:     leaseNamespace(cfg),
		Name:          cfg.LeaseName,
		Identity:      identity,
		LeaseDuration: cfg.LeaseDuration,
		RenewDeadline: cfg.RenewDeadline,
		RetryPeriod:   cfg.RetryPeriod,
		Watchdog:      watchdog,
	}, log, func(ctx context.Context) {
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
	rc.QPS = float32(cfg.QPS)
	rc.Burst = cfg.Burst
	rc.UserAgent = "kube-ecr-refresher/" + version
	return rc, nil
}

// targetFilter serves the listed namespaces, or all when the list is empty.
func targetFilter(names []string) func(*corev1.Namespace) bool {
	if len(names) == 0 {
		return nil
	}
	return func(ns *corev1.Namespace) bool { return slices.Contains(names, ns.Name) }
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
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on health address %s: %w", addr, err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("health server stopped", "error", err)
		}
	}()
	log.Info("serving health probes", "address", ln.Addr().String())
	return srv, nil
}

func shutdownServer(srv *http.Server) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = srv.Shutdown(ctx)
}
