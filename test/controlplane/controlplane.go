// Package controlplane owns the local Kubernetes control plane that the integration
// tests, demo and benchmarks run: etcd, kube-apiserver, kube-controller-manager.
package controlplane

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
)

const (
	// DefaultStartTimeout bounds Start once the binaries are there.
	DefaultStartTimeout = 3 * time.Minute

	stopGrace     = 10 * time.Second       // SIGTERM to SIGKILL
	probeTimeout  = 10 * time.Second       // one readiness check
	pollInterval  = 250 * time.Millisecond // between readiness checks
	portAttempts  = 3                      // starts of one component on fresh ports
	logTailLines  = 200                    // lines per component in Logs
	adminUser     = "testenv-admin"
	adminGroup    = "system:masters"
	adminKubecfg  = "admin.kubeconfig"
	tokenAuthFile = "tokens.csv"
	etcdDataDir   = "etcd-data"
	clientQPS     = 1000
	clientBurst   = 2000
)

// Options configures Start. The zero value builds or reuses the cached
// binaries, works in a new temporary directory and runs all three components.
type Options struct {
	// BinDir holds etcd, kube-apiserver and kube-controller-manager; empty
	// means BinDir().
	BinDir string
	// Dir receives certificates, etcd data, kubeconfigs and logs. Empty means
	// a new temporary directory, which Stop removes; a given Dir is kept.
	Dir string
	// Log receives progress messages; nil discards them.
	Log *slog.Logger
	// SkipControllerManager leaves out kube-controller-manager: no default
	// ServiceAccounts, namespaces are never finalized after deletion.
	SkipControllerManager bool
	// StartTimeout bounds Start after the binaries are found; zero means
	// DefaultStartTimeout. It does not bound a first build of the binaries.
	StartTimeout time.Duration
}

// ControlPlane is a running etcd, kube-apiserver and, unless skipped,
// kube-controller-manager. Its processes outlive the context given to Start;
// Stop ends them, and they are killed if this process dies (Linux).
type ControlPlane struct {
	log    *slog.Logger
	binDir string
	dir    string
	ownDir bool

	caPEM      []byte
	adminToken string
	url        string
	client     kubernetes.Interface
	procs      []*process // in start order

	stopOnce sync.Once
	stopErr  error
}

// Start starts a control plane and waits until it serves: kube-apiserver is
// ready and, with kube-controller-manager, the default ServiceAccount of the
// default namespace exists. The first call on a machine may build the
// binaries first (see BinDir). If Start fails it stops what it started and
// its error includes the tails of the component logs.
func Start(ctx context.Context, opts Options) (*ControlPlane, error) {
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	binDir := opts.BinDir
	if binDir == "" {
		var err error
		if binDir, err = resolveBinDir(log); err != nil {
			return nil, fmt.Errorf("start control plane: %w", err)
		}
	} else if err := checkBinDir(binDir); err != nil {
		return nil, fmt.Errorf("start control plane: check bin dir: %w", err)
	}

	began := time.Now()
	cp := &ControlPlane{log: log, binDir: binDir, dir: opts.Dir}
	if cp.dir == "" {
		dir, err := os.MkdirTemp("", "testenv-")
		if err != nil {
			return nil, fmt.Errorf("start control plane: create working dir: %w", err)
		}
		cp.dir, cp.ownDir = dir, true
	} else if err := os.MkdirAll(cp.dir, 0o700); err != nil {
		return nil, fmt.Errorf("start control plane: create working dir: %w", err)
	}

	ctx, cancel := context.WithTimeout(ctx, cmp.Or(opts.StartTimeout, DefaultStartTimeout))
	defer cancel()
	if err := cp.start(ctx, !opts.SkipControllerManager); err != nil {
		logs := cp.Logs()
		if stopErr := cp.Stop(); stopErr != nil {
			err = errors.Join(err, stopErr)
		}
		return nil, fmt.Errorf("start control plane: %w\n%s", err, logs)
	}
	log.Info("control plane ready", "url", cp.url, "dir", cp.dir,
		"duration", time.Since(began).Round(time.Millisecond))
	return cp, nil
}

func (cp *ControlPlane) start(ctx context.Context, withControllerManager bool) error {
	caPEM, err := writePKI(cp.dir, time.Now())
	if err != nil {
		return err
	}
	cp.caPEM = caPEM
	cp.adminToken = rand.Text()
	tokens := fmt.Sprintf("%s,%s,%s,%s\n", cp.adminToken, adminUser, adminUser, adminGroup)
	if err := os.WriteFile(cp.path(tokenAuthFile), []byte(tokens), 0o600); err != nil {
		return fmt.Errorf("write token file: %w", err)
	}

	etcdURL, err := cp.startEtcd(ctx)
	if err != nil {
		return err
	}
	if err := cp.startAPIServer(ctx, etcdURL); err != nil {
		return err
	}
	if !withControllerManager {
		return nil
	}
	return cp.startControllerManager(ctx)
}

func (cp *ControlPlane) startEtcd(ctx context.Context) (string, error) {
	httpClient := &http.Client{Transport: &http.Transport{Proxy: nil}}
	defer httpClient.CloseIdleConnections()
	dataDir := cp.path(etcdDataDir)
	// A name of its own lets the readiness check tell this etcd from another.
	member := "testenv-" + strings.ToLower(rand.Text()[:10])
	var clientURL string
	err := cp.launch(ctx, "etcd", func() ([]string, func(context.Context) error, error) {
		ports, err := freePorts(2)
		if err != nil {
			return nil, nil, err
		}
		// A failed attempt may have left a member behind with other peer URLs.
		if err := os.RemoveAll(dataDir); err != nil {
			return nil, nil, fmt.Errorf("clear etcd data dir: %w", err)
		}
		clientURL = "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]))
		peerURL := "http://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[1]))
		args := []string{
			"--name=" + member,
			"--data-dir=" + dataDir,
			"--listen-client-urls=" + clientURL,
			"--advertise-client-urls=" + clientURL,
			"--listen-peer-urls=" + peerURL,
			"--initial-advertise-peer-urls=" + peerURL,
			"--initial-cluster=" + member + "=" + peerURL,
			"--initial-cluster-state=new",
			"--unsafe-no-fsync",
			"--log-level=warn",
		}
		url := clientURL
		ready := func(ctx context.Context) error { return etcdReady(ctx, httpClient, url, member) }
		return args, ready, nil
	})
	return clientURL, err
}

// etcdReady reports an error unless the etcd at clientURL is healthy and is
// the one named member: a port lost to another test's etcd must not pass.
func etcdReady(ctx context.Context, client *http.Client, clientURL, member string) error {
	var health struct {
		Health string `json:"health"`
		Reason string `json:"reason"`
	}
	if err := etcdCall(ctx, client, http.MethodGet, clientURL+"/health", &health); err != nil {
		return err
	}
	if health.Health != "true" {
		return fmt.Errorf("etcd not healthy: %s", health.Reason)
	}
	var members struct {
		Members []struct {
			Name string `json:"name"`
		} `json:"members"`
	}
	if err := etcdCall(ctx, client, http.MethodPost, clientURL+"/v3/cluster/member/list", &members); err != nil {
		return err
	}
	if len(members.Members) != 1 || members.Members[0].Name != member {
		return fmt.Errorf("etcd at %s is not member %s: %+v", clientURL, member, members.Members)
	}
	return nil
}

// etcdCall sends an empty JSON request to etcd and decodes the response into v.
func etcdCall(ctx context.Context, client *http.Client, method, url string, v any) error {
	req, err := http.NewRequestWithContext(ctx, method, url, strings.NewReader("{}"))
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: %s", method, url, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("decode %s: %w", url, err)
	}
	return nil
}

func (cp *ControlPlane) startAPIServer(ctx context.Context, etcdURL string) error {
	httpClient, err := rest.HTTPClientFor(cp.RESTConfig())
	if err != nil {
		return fmt.Errorf("build readiness client: %w", err)
	}
	defer httpClient.CloseIdleConnections()
	err = cp.launch(ctx, "kube-apiserver", func() ([]string, func(context.Context) error, error) {
		ports, err := freePorts(1)
		if err != nil {
			return nil, nil, err
		}
		cp.url = "https://" + net.JoinHostPort("127.0.0.1", strconv.Itoa(ports[0]))
		args := []string{
			"--etcd-servers=" + etcdURL,
			"--bind-address=127.0.0.1",
			"--secure-port=" + strconv.Itoa(ports[0]),
			"--cert-dir=" + cp.dir,
			"--tls-cert-file=" + cp.path(servingCertFile),
			"--tls-private-key-file=" + cp.path(servingKeyFile),
			"--token-auth-file=" + cp.path(tokenAuthFile),
			"--authorization-mode=RBAC",
			"--service-account-issuer=" + serviceAccountIss,
			"--service-account-key-file=" + cp.path(saPublicKeyFile),
			"--service-account-signing-key-file=" + cp.path(saKeyFile),
			"--service-cluster-ip-range=" + serviceIPRange,
			// The default reconciler would publish 127.0.0.1 as the endpoint of
			// the kubernetes Service, which the API rejects.
			"--endpoint-reconciler-type=none",
			"--allow-privileged=true",
			// Every write to Secrets and ServiceAccounts, with its user agent
			// and timestamps, so tests can attribute writes to replicas.
			"--audit-policy-file=" + cp.path(auditPolicyFile),
			"--audit-log-path=" + cp.AuditLog(),
			"--audit-log-format=json",
			"--audit-log-mode=blocking",
		}
		if err := os.WriteFile(cp.path(auditPolicyFile), []byte(auditPolicy), 0o600); err != nil {
			return nil, nil, fmt.Errorf("write audit policy: %w", err)
		}
		// Only this kube-apiserver knows the admin token and has a
		// certificate from this CA, so the check cannot pass against another.
		url := cp.url
		ready := func(ctx context.Context) error { return apiserverReady(ctx, httpClient, url) }
		return args, ready, nil
	})
	if err != nil {
		return err
	}
	if cp.client, err = kubernetes.NewForConfig(cp.RESTConfig()); err != nil {
		return fmt.Errorf("build client: %w", err)
	}
	if err := writeKubeconfig(cp.AdminKubeconfig(), cp.url, cp.caPEM, adminUser, cp.adminToken, ""); err != nil {
		return fmt.Errorf("write admin kubeconfig: %w", err)
	}
	return nil
}

// apiserverReady reports an error unless /readyz answers 200; the error
// names the failing checks.
func apiserverReady(ctx context.Context, client *http.Client, url string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/readyz?verbose", nil)
	if err != nil {
		return err
	}
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return fmt.Errorf("read readyz: %w", err)
	}
	if resp.StatusCode == http.StatusOK {
		return nil
	}
	var failing []string
	for line := range strings.Lines(string(body)) {
		if strings.HasPrefix(line, "[-]") {
			failing = append(failing, strings.TrimSpace(line))
		}
	}
	return fmt.Errorf("readyz: %s: %s", resp.Status, strings.Join(failing, "; "))
}

func (cp *ControlPlane) startControllerManager(ctx context.Context) error {
	return cp.launch(ctx, "kube-controller-manager", func() ([]string, func(context.Context) error, error) {
		args := []string{
			"--kubeconfig=" + cp.AdminKubeconfig(),
			"--controllers=serviceaccount-controller,serviceaccount-token-controller,namespace-controller",
			"--service-account-private-key-file=" + cp.path(saKeyFile),
			"--root-ca-file=" + cp.path(caCertFile),
			"--leader-elect=false",
			"--use-service-account-credentials=false",
			"--bind-address=127.0.0.1",
			"--secure-port=0", // serve nothing: no port to pick, nothing to clash
		}
		// The serviceaccount controller creating this proves the controller
		// manager has synced its informers and is working.
		ready := func(ctx context.Context) error {
			_, err := cp.client.CoreV1().ServiceAccounts(metav1.NamespaceDefault).Get(ctx, "default", metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				return errors.New("service account default/default not created yet")
			}
			return err
		}
		return args, ready, nil
	})
}

// launch starts the binary called name with the arguments prepare returns
// and waits until ready succeeds. It calls prepare again, for fresh ports,
// when the process exits because a port was taken meanwhile.
func (cp *ControlPlane) launch(ctx context.Context, name string, prepare func() ([]string, func(context.Context) error, error)) error {
	for attempt := 1; ; attempt++ {
		args, ready, err := prepare()
		if err != nil {
			return fmt.Errorf("prepare %s: %w", name, err)
		}
		cp.log.Info("starting", "component", name, "attempt", attempt)
		began := time.Now()
		p, err := startProcess(name, cp.path(name+".log"), filepath.Join(cp.binDir, name), args)
		if err != nil {
			return err
		}
		p.args, p.ready = args, ready
		err = waitReady(ctx, p, ready)
		if err == nil {
			cp.procs = append(cp.procs, p)
			cp.log.Info("started", "component", name, "pid", p.Pid(),
				"duration", time.Since(began).Round(time.Millisecond))
			return nil
		}
		select {
		case <-p.Done(): // exited: nothing to stop
		default:
			cp.procs = append(cp.procs, p) // Start's cleanup stops it
		}
		if !errors.Is(err, errPortInUse) || attempt == portAttempts {
			return err
		}
		cp.log.Info("port taken, retrying on new ports", "component", name, "attempt", attempt)
	}
}

// waitReady polls ready until it succeeds, p exits or ctx ends.
func waitReady(ctx context.Context, p *process, ready func(context.Context) error) error {
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		probeCtx, cancel := context.WithTimeout(ctx, probeTimeout)
		err := ready(probeCtx)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case <-p.Done():
			return p.exited()
		case <-ctx.Done():
			return fmt.Errorf("wait for %s: %w; last check: %v", p.name, ctx.Err(), err)
		case <-tick.C:
		}
	}
}

// Component names, for Restart.
const (
	Etcd                  = "etcd"
	APIServer             = "kube-apiserver"
	ControllerManager     = "kube-controller-manager"
	restartStopGrace      = 10 * time.Second
	defaultRestartTimeout = 2 * time.Minute
)

// Restart stops one component (SIGTERM, then SIGKILL after a grace period)
// and starts it again with the same arguments, on the same ports and, for
// etcd, the same data directory, as a rolling upgrade or a node reboot
// would; it returns once the component is ready again. Clients keep their
// address. Restart is not safe to call concurrently with Stop or itself.
func (cp *ControlPlane) Restart(ctx context.Context, component string) error {
	i := slices.IndexFunc(cp.procs, func(p *process) bool { return p.name == component })
	if i < 0 {
		return fmt.Errorf("restart %s: not running", component)
	}
	old := cp.procs[i]
	if err := old.stop(restartStopGrace); err != nil {
		return fmt.Errorf("restart %s: %w", component, err)
	}
	ctx, cancel := context.WithTimeout(ctx, defaultRestartTimeout)
	defer cancel()
	p, err := startProcess(component, old.logPath, filepath.Join(cp.binDir, component), old.args)
	if err != nil {
		return fmt.Errorf("restart %s: %w", component, err)
	}
	p.args, p.ready = old.args, old.ready
	cp.procs[i] = p // Stop ends it, ready or not
	if err := waitReady(ctx, p, p.ready); err != nil {
		return fmt.Errorf("restart %s: %w", component, err)
	}
	cp.log.Info("restarted", "component", component, "pid", p.Pid())
	return nil
}

// Pid is the process id of a running component, or 0.
func (cp *ControlPlane) Pid(component string) int {
	for _, p := range cp.procs {
		if p.name == component && !p.Exited() {
			return p.Pid()
		}
	}
	return 0
}

// freePorts returns n distinct ports that were free on 127.0.0.1 a moment ago.
func freePorts(n int) ([]int, error) {
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, fmt.Errorf("find free port: %w", err)
		}
		defer l.Close() // held until all are chosen, so they differ
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// Stop ends every process Start started, newest first, each with SIGTERM
// and then SIGKILL after a grace period, and removes the working directory
// if Start created it. It reports a process that had exited on its own.
// Later calls return the first call's result.
func (cp *ControlPlane) Stop() error {
	cp.stopOnce.Do(func() { cp.stopErr = cp.stop() })
	return cp.stopErr
}

func (cp *ControlPlane) stop() error {
	var errs []error
	for i := len(cp.procs) - 1; i >= 0; i-- {
		if err := cp.procs[i].stop(stopGrace); err != nil {
			errs = append(errs, err)
		}
	}
	if cp.ownDir {
		if err := os.RemoveAll(cp.dir); err != nil {
			errs = append(errs, fmt.Errorf("remove working dir: %w", err))
		}
	}
	cp.log.Info("control plane stopped", "dir", cp.dir)
	return errors.Join(errs...)
}

// auditPolicy records, at Metadata level and at ResponseComplete only, every
// write to Secrets, ServiceAccounts and Leases; nothing else.
const auditPolicy = `apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived", "ResponseStarted", "Panic"]
rules:
- level: Metadata
  verbs: ["create", "update", "patch", "delete"]
  resources:
  - group: ""
    resources: ["secrets", "serviceaccounts"]
  - group: "coordination.k8s.io"
    resources: ["leases"]
- level: None
`

const auditPolicyFile = "audit-policy.yaml"

// AuditLog is the path of kube-apiserver's JSON audit log: one line per
// write to a Secret, ServiceAccount or Lease, when the response was complete.
func (cp *ControlPlane) AuditLog() string { return cp.path("audit.log") }

// URL is the kube-apiserver's address, https://127.0.0.1:<port>.
func (cp *ControlPlane) URL() string { return cp.url }

// Dir is the working directory: certificates, etcd data, kubeconfigs, logs.
func (cp *ControlPlane) Dir() string { return cp.dir }

// AdminKubeconfig is the path of a kubeconfig for a user in system:masters.
func (cp *ControlPlane) AdminKubeconfig() string { return cp.path(adminKubecfg) }

// WriteAdminKubeconfig writes a kubeconfig for the admin user that reaches
// the API server through server (a proxy in front of it, say: the serving
// certificate is for 127.0.0.1, any port) and returns its path in Dir.
func (cp *ControlPlane) WriteAdminKubeconfig(name, server string) (string, error) {
	path := cp.path(name)
	if err := writeKubeconfig(path, server, cp.caPEM, adminUser, cp.adminToken, ""); err != nil {
		return "", fmt.Errorf("write kubeconfig %s: %w", name, err)
	}
	return path, nil
}

// RESTConfig returns a new admin client configuration that trusts only the
// control plane's CA, with QPS and Burst high enough not to slow tests.
func (cp *ControlPlane) RESTConfig() *rest.Config {
	return &rest.Config{
		Host:            cp.url,
		BearerToken:     cp.adminToken,
		TLSClientConfig: rest.TLSClientConfig{CAData: cp.caPEM},
		QPS:             clientQPS,
		Burst:           clientBurst,
	}
}

// Client is a clientset for the admin user.
func (cp *ControlPlane) Client() kubernetes.Interface { return cp.client }

// Logs returns the last lines of each component's log, for a failed test.
func (cp *ControlPlane) Logs() string {
	var b strings.Builder
	for _, name := range requiredBinaries() {
		path := cp.path(name + ".log")
		if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
			continue
		}
		fmt.Fprintf(&b, "==> %s (last %d lines) <==\n%s", path, logTailLines, tail(path, logTailLines))
	}
	return b.String()
}

func (cp *ControlPlane) path(name string) string { return filepath.Join(cp.dir, name) }
