package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/kube-ecr-refresher/kube-ecr-refresher/internal/config"
	"github.com/kube-ecr-refresher/kube-ecr-refresher/test/controlplane"
	"github.com/kube-ecr-refresher/kube-ecr-refresher/test/fakeecr"
)

// What the bench names.
const (
	secretName     = "ecr-pull-secret"    // the controller's default SECRET_NAME
	leaseName      = "kube-ecr-refresher" // the controller's default LEASE_NAME
	leaseNamespace = metav1.NamespaceDefault
	longLifetime   = 12 * time.Hour // ECR's real token lifetime
	stopGrace      = 20 * time.Second
	leasePoll      = 50 * time.Millisecond
)

// Options configure a benchmark run.
type Options struct {
	// Sizes are the numbers of namespaces to measure, each on a fresh control plane.
	Sizes []int
	// ControllerBin is the controller binary; empty builds one into WorkDir.
	ControllerBin string
	// ControllerEnv overrides controller settings: keys without the
	// KUBE_ECR_REFRESHER_ prefix (WORKERS), applied after the bench's own.
	ControllerEnv map[string]string
	// RuntimeEnv sets Go runtime variables of the controller process
	// (GOGC, GOMEMLIMIT, GOMAXPROCS, GODEBUG); none by default.
	RuntimeEnv map[string]string
	// WorkDir receives the controller binary and logs.
	WorkDir string
	// Concurrency is the number of requests in flight for the floor and for
	// creating namespaces.
	Concurrency int
	// CreateServiceAccounts has the bench create each namespace's default
	// ServiceAccount instead of waiting for kube-controller-manager, whose
	// client is limited to 20 requests/s.
	CreateServiceAccounts bool
	// RefreshAfter is when, after the first token, the forced refresh is
	// due; zero picks it from the floor and the controller's QPS, at least
	// MinRefreshAfter.
	RefreshAfter    time.Duration
	MinRefreshAfter time.Duration
	// NewNamespaces are created at NewNamespaceRate per second.
	NewNamespaces    int
	NewNamespaceRate float64
	// RestartWindow is how long the restarted controller is watched for writes.
	RestartWindow time.Duration
	// FailoverRuns is the number of SIGKILL and of SIGTERM failovers.
	FailoverRuns int
	// Settle is the pause after a phase before its writes are counted, so
	// that a late write is not missed.
	Settle time.Duration
	// Log receives progress; nil discards it.
	Log *slog.Logger
}

// DefaultOptions are `make bench`'s.
func DefaultOptions() Options {
	return Options{
		Sizes:            []int{100, 1000},
		Concurrency:      64,
		MinRefreshAfter:  15 * time.Second,
		NewNamespaces:    200,
		NewNamespaceRate: 10,
		RestartWindow:    10 * time.Second,
		FailoverRuns:     3,
		Settle:           2 * time.Second,
	}
}

// benchEnv are settings the bench gives every controller unless
// ControllerEnv overrides them: the forced refresh comes sooner than the
// product's one-minute floor between fetches.
func benchEnv() map[string]string {
	return map[string]string{"MIN_REFRESH_INTERVAL": "1s"}
}

// reportedSettings are the controller settings the report shows.
func reportedSettings() []string {
	return []string{"WORKERS", "KUBE_API_QPS", "KUBE_API_BURST", "REFRESH_REMAINING_FRACTION",
		"MIN_REFRESH_INTERVAL", "LEASE_DURATION", "RENEW_DEADLINE", "RETRY_PERIOD", "LOG_LEVEL"}
}

// controllerDefaults maps each setting (without prefix) to its default,
// read from the controller's own config struct tags.
func controllerDefaults() map[string]string {
	out := map[string]string{}
	t := reflectConfig()
	for i := range t.NumField() {
		f := t.Field(i)
		if key := f.Tag.Get("envconfig"); key != "" {
			out[key] = f.Tag.Get("default")
		}
	}
	return out
}

// effectiveSettings are the product defaults, then the bench's, then the overrides.
func effectiveSettings(overrides map[string]string) map[string]string {
	eff := controllerDefaults()
	for k, v := range benchEnv() {
		eff[k] = v
	}
	for k, v := range overrides {
		eff[k] = v
	}
	return eff
}

// Run measures every size in opts.Sizes. The report holds every size that
// completed, even when an error stopped the run.
func Run(ctx context.Context, opts Options) (*Report, error) {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	settings := effectiveSettings(opts.ControllerEnv)
	defaults := controllerDefaults()
	rep := &Report{StartedAt: time.Now().UTC(), Machine: describeMachine(), Controller: map[string]string{}}
	for _, k := range reportedSettings() {
		rep.Controller[k] = settings[k]
		if settings[k] != defaults[k] {
			rep.Changed = append(rep.Changed, k)
		}
	}
	for k := range opts.ControllerEnv {
		if !slices.Contains(rep.Changed, k) && opts.ControllerEnv[k] != defaults[k] {
			rep.Controller[k] = opts.ControllerEnv[k]
			rep.Changed = append(rep.Changed, k)
		}
	}
	for k, v := range opts.RuntimeEnv {
		rep.Controller[k] = v
		rep.Changed = append(rep.Changed, k)
	}
	slices.Sort(rep.Changed)

	bin := opts.ControllerBin
	rep.ControllerSource = "binary " + bin
	if bin == "" {
		bin = filepath.Join(opts.WorkDir, "kube-ecr-refresher")
		opts.Log.Info("building the controller", "output", bin)
		if err := buildController(ctx, bin); err != nil {
			return rep, err
		}
		rep.ControllerSource = "built from " + gitDescribe(ctx)
	}
	for _, n := range opts.Sizes {
		r := &sizeRun{opts: opts, n: n, bin: bin, settings: settings, log: opts.Log.With("n", n),
			dir: filepath.Join(opts.WorkDir, fmt.Sprintf("n%d", n))}
		res, err := r.run(ctx)
		if err != nil {
			rep.Error = fmt.Sprintf("N=%d: %v", n, err)
			rep.Targets = evaluateTargets(rep)
			return rep, fmt.Errorf("n=%d: %w", n, err)
		}
		rep.Results = append(rep.Results, res)
	}
	rep.Targets = evaluateTargets(rep)
	return rep, nil
}

// sizeRun is the measurement at one number of namespaces.
type sizeRun struct {
	opts     Options
	n        int
	bin      string
	settings map[string]string
	log      *slog.Logger
	dir      string

	undo   cleanups
	plane  *controlplane.ControlPlane
	client kubernetes.Interface
	ecr    *fakeecr.Server
	tokens tokenLog
	track  *tracker
	http   *http.Client
	pids   map[string]int // control plane processes by command name
	seq    int            // controllers started
	// ctl is the controller of the current phase: the one that did the
	// install, refresh and new namespaces, then the restarted one.
	ctl *controller
	res Result
}

func (r *sizeRun) run(ctx context.Context) (res Result, err error) {
	defer func() {
		if cerr := r.undo.run(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("clean up: %w", cerr))
		}
	}()
	if err := os.MkdirAll(r.dir, 0o700); err != nil {
		return Result{}, fmt.Errorf("create working dir: %w", err)
	}
	r.res.N = r.n
	r.http = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{Proxy: nil}}
	steps := []struct {
		name string
		fn   func(context.Context) error
	}{
		{"start the control plane", r.start},
		{"create namespaces", r.createNamespaces},
		{"floor", r.floor},
		{"cold install", r.install},
		{"steady refresh", r.refresh},
		{"new namespaces", r.newNamespaces},
		{"restart", r.restart},
		{"failover", r.failover},
	}
	for _, s := range steps {
		r.log.Info("phase", "name", s.name)
		if err := s.fn(ctx); err != nil {
			return r.res, fmt.Errorf("%s: %w", s.name, err)
		}
	}
	return r.res, nil
}

// phaseTimeout bounds one wait; the install at the default 100 requests/s
// needs 2N/100 seconds.
func (r *sizeRun) phaseTimeout() time.Duration {
	return 3*time.Minute + time.Duration(r.n)*60*time.Millisecond
}

func (r *sizeRun) start(ctx context.Context) error {
	began := time.Now()
	plane, err := controlplane.Start(ctx, controlplane.Options{Log: r.log.With("component", "controlplane")})
	if err != nil {
		return err
	}
	r.plane, r.client = plane, plane.Client()
	r.undo.push(plane.Stop)
	r.res.Setup.ControlPlaneSeconds = time.Since(began).Seconds()

	srv, err := fakeecr.Start("127.0.0.1:0", fakeecr.WithNow(r.tokens.now))
	if err != nil {
		return err
	}
	r.ecr = srv
	r.undo.push(func() error { srv.Close(); return nil })

	trackCtx, cancel := context.WithCancel(ctx)
	t, err := startTracker(trackCtx, r.client, secretName)
	if err != nil {
		cancel()
		return err
	}
	r.track = t
	r.undo.push(func() error { cancel(); t.stop(); return nil })

	if r.pids, err = childPIDs(os.Getpid()); err != nil {
		return fmt.Errorf("find control plane processes: %w", err)
	}
	return nil
}

func benchNamespaces(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%05d", prefix, i)
	}
	return out
}

func (r *sizeRun) createNamespaces(ctx context.Context) error {
	names := benchNamespaces("bench", r.n)
	began := time.Now()
	err := parallel(ctx, r.n, r.opts.Concurrency, func(ctx context.Context, i int) error {
		_, err := r.client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: names[i]}}, metav1.CreateOptions{})
		if err != nil {
			return fmt.Errorf("create namespace %s: %w", names[i], err)
		}
		if !r.opts.CreateServiceAccounts {
			return nil
		}
		sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default", Namespace: names[i]}}
		if _, err := r.client.CoreV1().ServiceAccounts(names[i]).Create(ctx, sa, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create serviceaccount %s/default: %w", names[i], err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	r.res.Setup.NamespacesSeconds = time.Since(began).Seconds()
	r.res.Setup.ServiceAccountsBy = "kube-controller-manager"
	if r.opts.CreateServiceAccounts {
		r.res.Setup.ServiceAccountsBy = "bench"
	}
	err = waitFor(ctx, r.phaseTimeout()+time.Duration(r.n)*60*time.Millisecond, "every default serviceaccount", func() (bool, string) {
		got := r.track.countServiceAccounts(names)
		return got == r.n, fmt.Sprintf("%d of %d", got, r.n)
	})
	r.res.Setup.ServiceAccountsSeconds = time.Since(began).Seconds()
	return err
}

// cpuSample is the CPU time used so far by the controller (when given) and
// the control plane.
type cpuSample struct{ controller, apiserver, etcd time.Duration }

func (r *sizeRun) cpu(c *controller) cpuSample {
	var s cpuSample
	read := func(pid int) time.Duration {
		st, err := readProcStats(pid)
		if err != nil {
			r.log.Warn("read cpu time", "pid", pid, "error", err)
			return 0
		}
		return st.CPU
	}
	if c != nil && !c.exited() {
		s.controller = read(c.pid())
	}
	if pid, ok := r.pids["kube-apiserver"]; ok {
		s.apiserver = read(pid)
	}
	if pid, ok := r.pids["etcd"]; ok {
		s.etcd = read(pid)
	}
	return s
}

// selfCPU is the bench process's own CPU time so far.
func (r *sizeRun) selfCPU() time.Duration {
	st, err := readProcStats(os.Getpid())
	if err != nil {
		r.log.Warn("read own cpu time", "error", err)
		return 0
	}
	return st.CPU
}

func cpuSince(a, b cpuSample) CPU {
	return CPU{
		Controller: (b.controller - a.controller).Seconds(),
		APIServer:  (b.apiserver - a.apiserver).Seconds(),
		Etcd:       (b.etcd - a.etcd).Seconds(),
	}
}

func (r *sizeRun) floor(ctx context.Context) error {
	before, self0 := r.cpu(nil), r.selfCPU()
	f, err := measureFloor(ctx, r.plane.RESTConfig(), benchNamespaces("bench", r.n), r.opts.Concurrency)
	if err != nil {
		return err
	}
	f.CPU = cpuSince(before, r.cpu(nil))
	f.ClientSeconds = (r.selfCPU() - self0).Seconds()
	r.res.Floor = f
	r.log.Info("floor", "creates", seconds(f.CreateSeconds), "updates", seconds(f.UpdateSeconds))
	return nil
}

// controllerEnv is the environment of one controller process: nothing
// inherited that could reach beyond loopback, dummy static AWS keys, the
// local ECR endpoint, then the settings.
func (r *sizeRun) controllerEnv(identity string) []string {
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + r.dir,
		"AWS_REGION=us-east-1",
		"AWS_ACCESS_KEY_ID=AKIDBENCHMARK",
		"AWS_SECRET_ACCESS_KEY=benchmark-secret",
		"AWS_EC2_METADATA_DISABLED=true",
		"AWS_ENDPOINT_URL_ECR=" + r.ecr.URL,
		"AWS_CONFIG_FILE=/dev/null",
		"AWS_SHARED_CREDENTIALS_FILE=/dev/null",
	}
	set := func(k, v string) { env = append(env, config.EnvName(k)+"="+v) }
	set("KUBECONFIG", r.plane.AdminKubeconfig())
	set("LEASE_NAMESPACE", leaseNamespace)
	set("LEADER_ELECTION_IDENTITY", identity)
	set("HEALTH_ADDR", "127.0.0.1:0")
	set("METRICS_ADDR", "127.0.0.1:0")
	for _, m := range []map[string]string{benchEnv(), r.opts.ControllerEnv} {
		for _, k := range slices.Sorted(maps.Keys(m)) {
			set(k, m[k])
		}
	}
	for _, k := range slices.Sorted(maps.Keys(r.opts.RuntimeEnv)) {
		env = append(env, k+"="+r.opts.RuntimeEnv[k])
	}
	return env
}

// startController starts one more controller process; its identity and
// log file are named after the order it was started in.
func (r *sizeRun) startController() (*controller, error) {
	r.seq++
	identity := fmt.Sprintf("bench-%d", r.seq)
	c, err := startController(identity, identity, r.bin, filepath.Join(r.dir, identity+".log"), r.controllerEnv(identity))
	if err != nil {
		return nil, err
	}
	r.log.Info("started controller", "identity", identity, "pid", c.pid(), "log", c.logPath)
	r.undo.push(func() error {
		r.notePeak(c)
		_, err := c.stop(stopGrace)
		return err
	})
	return c, nil
}

// notePeak folds a running controller's VmHWM into the largest peak seen.
// It must be read before the process ends: wait4's rusage is no substitute,
// since its maxrss also counts the bench's own memory, which the child
// shared between fork and exec.
func (r *sizeRun) notePeak(c *controller) {
	if c.exited() {
		return
	}
	if st, err := readProcStats(c.pid()); err == nil {
		r.res.Memory.MaxRSSAnyBytes = max(r.res.Memory.MaxRSSAnyBytes, st.PeakRSS)
	}
}

func (r *sizeRun) scrape(ctx context.Context, c *controller) (controllerCounters, error) {
	if err := c.waitServing(ctx, time.Minute); err != nil {
		return controllerCounters{}, err
	}
	return scrapeController(ctx, r.http, c.metrics())
}

// issued accepts any password the ECR endpoint handed out.
func (r *sizeRun) issued() func(string) bool {
	set := map[string]bool{}
	for _, p := range r.ecr.Passwords() {
		set[p] = true
	}
	return func(pw string) bool { return set[pw] }
}

// refreshAfter is when, after the first token, the second is due.
func (r *sizeRun) refreshAfter() time.Duration {
	if r.opts.RefreshAfter > 0 {
		return r.opts.RefreshAfter
	}
	qps, err := strconv.ParseFloat(r.settings["KUBE_API_QPS"], 64)
	if err != nil || qps <= 0 {
		qps = 100
	}
	// The install must be over before the refresh: 2N writes at the
	// controller's QPS, or twice the floor, plus start-up; with margin.
	predicted := time.Duration(float64(2*r.n)/qps*float64(time.Second)) +
		time.Duration(2*r.res.Floor.WritesSeconds()*float64(time.Second)) + 5*time.Second
	return max(r.opts.MinRefreshAfter, predicted*3/2).Round(time.Second)
}

func (r *sizeRun) install(ctx context.Context) error {
	fraction, err := strconv.ParseFloat(r.settings["REFRESH_REMAINING_FRACTION"], 64)
	if err != nil || fraction <= 0 || fraction >= 1 {
		return fmt.Errorf("refresh remaining fraction %q: want 0 < f < 1", r.settings["REFRESH_REMAINING_FRACTION"])
	}
	after := r.refreshAfter()
	// The controller refreshes when fraction of the lifetime remains.
	r.ecr.SetLifetime(time.Duration(float64(after) / (1 - fraction)))
	r.res.Refresh.AfterSeconds = after.Seconds()

	names := benchNamespaces("bench", r.n)
	api0, err := apiserverWrites(ctx, r.client)
	if err != nil {
		return err
	}
	calls0 := r.ecr.Calls()
	cpu0 := r.cpu(nil)
	c, err := r.startController()
	if err != nil {
		return err
	}
	r.ctl = c
	began := c.started
	err = waitFor(ctx, r.phaseTimeout(), "every namespace served", func() (bool, string) {
		if c.exited() {
			return false, "controller exited"
		}
		got, _ := r.track.allServed(names, r.issued())
		return got == r.n, fmt.Sprintf("%d of %d served", got, r.n)
	})
	if err != nil {
		return fmt.Errorf("%w (log %s)", err, c.logPath)
	}
	_, last := r.track.allServed(names, r.issued())
	first := r.track.firstSecret(names, r.issued())
	if err := sleep(ctx, r.opts.Settle); err != nil {
		return err
	}
	cpu1 := r.cpu(c)
	counters, err := r.scrape(ctx, c)
	if err != nil {
		return err
	}
	api1, err := apiserverWrites(ctx, r.client)
	if err != nil {
		return err
	}
	in := &r.res.Install
	in.Seconds = last.Sub(began).Seconds()
	in.FirstWriteSeconds = first.Sub(began).Seconds()
	in.Ratio = ratio(in.Seconds, r.res.Floor.WritesSeconds())
	in.ControllerWrites = counters.Writes
	in.APIServerWrites = api1 - api0
	in.ECRCalls = r.ecr.Calls() - calls0
	in.CPU = cpuSince(cpu0, cpu1)
	in.CPU.Controller = cpu1.controller.Seconds() // from exec
	r.log.Info("cold install", "seconds", seconds(in.Seconds), "ratio", in.Ratio, "writes", in.APIServerWrites)
	return nil
}

func (r *sizeRun) refresh(ctx context.Context) error {
	c := r.ctl
	names := benchNamespaces("bench", r.n)
	rf := &r.res.Refresh
	if r.tokens.count() >= 2 {
		r.ecr.SetLifetime(longLifetime)
		rf.Note = "the refresh came before the install was over; raise -refresh-after"
		return nil
	}
	// The refreshed token is long-lived, so nothing else refreshes later.
	r.ecr.SetLifetime(longLifetime)
	api0, err := apiserverWrites(ctx, r.client)
	if err != nil {
		return err
	}
	before, err := r.scrape(ctx, c)
	if err != nil {
		return err
	}
	calls0 := r.ecr.Calls()
	cpu0 := r.cpu(c)
	wait := time.Duration(rf.AfterSeconds*float64(time.Second)) + r.phaseTimeout()
	if err := waitFor(ctx, wait, "the second ecr token", func() (bool, string) {
		return r.tokens.count() >= 2, "not yet"
	}); err != nil {
		return err
	}
	t2 := r.tokens.at(1)
	pw := r.ecr.Passwords()[1]
	isNew := func(p string) bool { return p == pw }
	err = waitFor(ctx, r.phaseTimeout(), "every secret carrying the new token", func() (bool, string) {
		got, _ := r.track.allServed(names, isNew)
		return got == r.n, fmt.Sprintf("%d of %d refreshed", got, r.n)
	})
	if err != nil {
		return fmt.Errorf("%w (log %s)", err, c.logPath)
	}
	_, last := r.track.allServed(names, isNew)
	if err := sleep(ctx, r.opts.Settle); err != nil {
		return err
	}
	cpu1 := r.cpu(c)
	after, err := r.scrape(ctx, c)
	if err != nil {
		return err
	}
	api1, err := apiserverWrites(ctx, r.client)
	if err != nil {
		return err
	}
	rf.Measured = true
	rf.Seconds = last.Sub(t2).Seconds()
	rf.Ratio = ratio(rf.Seconds, r.res.Floor.UpdateSeconds)
	rf.ControllerWrites = after.Writes - before.Writes
	rf.APIServerWrites = api1 - api0
	rf.ECRCalls = r.ecr.Calls() - calls0
	rf.CPU = cpuSince(cpu0, cpu1)
	r.log.Info("steady refresh", "seconds", seconds(rf.Seconds), "ratio", rf.Ratio, "writes", rf.APIServerWrites, "ecr_calls", rf.ECRCalls)
	return nil
}

func (r *sizeRun) newNamespaces(ctx context.Context) error {
	m := r.opts.NewNamespaces
	if m <= 0 {
		return nil
	}
	names := make([]string, m)
	created := make([]time.Time, m)
	interval := time.Duration(float64(time.Second) / r.opts.NewNamespaceRate)
	tick := time.NewTicker(interval)
	defer tick.Stop()
	began := time.Now()
	for i := range m {
		if i > 0 {
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-tick.C:
			}
		}
		names[i] = fmt.Sprintf("new-%05d", i)
		created[i] = time.Now()
		if _, err := r.client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: names[i]}}, metav1.CreateOptions{}); err != nil {
			return fmt.Errorf("create namespace %s: %w", names[i], err)
		}
	}
	elapsed := time.Since(began)
	err := waitFor(ctx, r.phaseTimeout(), "every new namespace served", func() (bool, string) {
		got, _ := r.track.allServed(names, r.issued())
		return got == m, fmt.Sprintf("%d of %d served", got, m)
	})
	if err != nil {
		return fmt.Errorf("%w (log %s)", err, r.ctl.logPath)
	}
	var served, secret, sa []time.Duration
	accept := r.issued()
	for i, ns := range names {
		at, _ := r.track.servedAt(ns, accept)
		st := r.track.snapshot(ns)
		served = append(served, at.Sub(created[i]))
		secret = append(secret, st.secretAt.Sub(created[i]))
		sa = append(sa, st.saCreated.Sub(created[i]))
	}
	l := &r.res.NewNamespaces
	l.Count = m
	if m > 1 {
		l.RatePerSecond = float64(m-1) / elapsed.Seconds()
	}
	l.Served, l.Secret, l.ServiceAccount = distribution(served), distribution(secret), distribution(sa)
	r.log.Info("new namespaces", "p50", seconds(l.Served.P50), "p99", seconds(l.Served.P99), "max", seconds(l.Served.Max))
	return nil
}

func (r *sizeRun) restart(ctx context.Context) error {
	c := r.ctl
	st, err := readProcStats(c.pid())
	if err != nil {
		return err
	}
	r.res.Memory.PeakRSSBytes, r.res.Memory.RSSBytes, r.res.Memory.RSSFileBytes = st.PeakRSS, st.RSS, st.RSSFile
	r.notePeak(c)
	api0, err := apiserverWrites(ctx, r.client)
	if err != nil {
		return err
	}
	took, err := c.stop(stopGrace)
	if err != nil {
		return err
	}
	rs := &r.res.Restart
	rs.StopSeconds = took.Seconds()
	c2, err := r.startController()
	if err != nil {
		return err
	}
	r.ctl = c2
	if err := sleep(ctx, time.Until(c2.started.Add(r.opts.RestartWindow))); err != nil {
		return err
	}
	counters, err := r.scrape(ctx, c2)
	if err != nil {
		return err
	}
	if st, err := readProcStats(c2.pid()); err == nil {
		r.res.Memory.RestartPeakRSSBytes = st.PeakRSS
	}
	api1, err := apiserverWrites(ctx, r.client)
	if err != nil {
		return err
	}
	rs.WindowSeconds = r.opts.RestartWindow.Seconds()
	rs.ControllerWrites = counters.Writes
	rs.APIServerWrites = api1 - api0
	rs.Syncs = counters.Syncs
	rs.Leader = counters.Leader
	r.log.Info("restart", "controller_writes", rs.ControllerWrites, "apiserver_writes", rs.APIServerWrites, "syncs", rs.Syncs, "leader", rs.Leader)
	return nil
}

func (r *sizeRun) failover(ctx context.Context) error {
	fo := &r.res.Failover
	fo.LeaseDuration, fo.RenewDeadline, fo.RetryPeriod = r.settings["LEASE_DURATION"], r.settings["RENEW_DEADLINE"], r.settings["RETRY_PERIOD"]
	lease, err := time.ParseDuration(fo.LeaseDuration)
	if err != nil {
		return fmt.Errorf("lease duration: %w", err)
	}
	replicas := map[string]*controller{r.ctl.identity: r.ctl}
	timeout := 2*lease + time.Minute
	for _, k := range []struct {
		kind string
		sig  syscall.Signal
		runs *[]FailoverRun
	}{{"kill", syscall.SIGKILL, &fo.Kill}, {"term", syscall.SIGTERM, &fo.Term}} {
		for i := range r.opts.FailoverRuns {
			// Two replicas, both ready, one of them leading.
			for len(replicas) < 2 {
				c, err := r.startController()
				if err != nil {
					return err
				}
				replicas[c.identity] = c
			}
			for _, c := range replicas {
				if err := c.waitReady(ctx, r.http, time.Minute); err != nil {
					return err
				}
			}
			var holder string
			err := waitFor(ctx, timeout, "a leader among the replicas", func() (bool, string) {
				holder = r.leaseHolder(ctx)
				_, ok := replicas[holder]
				return ok, "holder " + holder
			})
			if err != nil {
				return err
			}
			victim := replicas[holder]
			delete(replicas, holder)
			for _, c := range replicas {
				r.notePeak(c)
			}
			r.notePeak(victim)
			run, err := r.failoverOnce(ctx, victim, k.sig, fmt.Sprintf("failover-%s-%d", k.kind, i), timeout)
			if err != nil {
				return err
			}
			*k.runs = append(*k.runs, run)
			r.log.Info("failover", "signal", k.kind, "secret_seconds", seconds(run.SecretSeconds), "lease_seconds", seconds(run.LeaseSeconds))
		}
	}
	for _, c := range replicas {
		r.notePeak(c)
		if _, err := c.stop(stopGrace); err != nil {
			return err
		}
	}
	return nil
}

// failoverOnce signals the leader, creates namespace ns right after, and
// times the Lease moving and the new leader serving ns.
func (r *sizeRun) failoverOnce(ctx context.Context, victim *controller, sig syscall.Signal, ns string, timeout time.Duration) (FailoverRun, error) {
	old := victim.identity
	began := time.Now()
	if err := victim.signal(sig); err != nil {
		return FailoverRun{}, err
	}
	if _, err := r.client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{}); err != nil {
		return FailoverRun{}, fmt.Errorf("create namespace %s: %w", ns, err)
	}
	var (
		wg    sync.WaitGroup
		moved time.Time
		exit  time.Time
	)
	wctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	wg.Go(func() {
		tick := time.NewTicker(leasePoll)
		defer tick.Stop()
		for {
			if h := r.leaseHolder(wctx); h != "" && h != old {
				moved = time.Now()
				return
			}
			select {
			case <-wctx.Done():
				return
			case <-tick.C:
			}
		}
	})
	wg.Go(func() {
		select {
		case <-victim.proc.Done():
			exit = time.Now()
		case <-wctx.Done():
		}
	})
	err := waitFor(ctx, timeout, "namespace "+ns+" served after the leader's "+sig.String(), func() (bool, string) {
		_, ok := r.track.servedAt(ns, r.issued())
		return ok, "not yet"
	})
	if err != nil {
		cancel()
		wg.Wait()
		return FailoverRun{}, err
	}
	wg.Wait()
	at, _ := r.track.servedAt(ns, r.issued())
	st := r.track.snapshot(ns)
	run := FailoverRun{
		SecretSeconds: st.secretAt.Sub(began).Seconds(),
		ServedSeconds: at.Sub(began).Seconds(),
	}
	if !moved.IsZero() {
		run.LeaseSeconds = moved.Sub(began).Seconds()
	}
	if !exit.IsZero() {
		run.ExitSeconds = exit.Sub(began).Seconds()
	}
	return run, nil
}

func (r *sizeRun) leaseHolder(ctx context.Context) string {
	l, err := r.client.CoordinationV1().Leases(leaseNamespace).Get(ctx, leaseName, metav1.GetOptions{})
	if err != nil || l.Spec.HolderIdentity == nil {
		return ""
	}
	return *l.Spec.HolderIdentity
}

// tokenLog records when the ECR endpoint issued each token (it asks for the
// time once per token issued).
type tokenLog struct {
	mu    sync.Mutex
	times []time.Time
}

func (l *tokenLog) now() time.Time {
	t := time.Now()
	l.mu.Lock()
	l.times = append(l.times, t)
	l.mu.Unlock()
	return t
}

func (l *tokenLog) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.times)
}

func (l *tokenLog) at(i int) time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.times[i]
}

// cleanups runs undo steps newest first and joins their errors.
type cleanups struct{ fns []func() error }

func (c *cleanups) push(fn func() error) { c.fns = append(c.fns, fn) }

func (c *cleanups) run() error {
	var errs []error
	for i := len(c.fns) - 1; i >= 0; i-- {
		if err := c.fns[i](); err != nil {
			errs = append(errs, err)
		}
	}
	c.fns = nil
	return errors.Join(errs...)
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// ratio is a/b, or 0 when there is no b to compare with.
func ratio(a, b float64) float64 {
	if b <= 0 {
		return 0
	}
	return a / b
}

// seconds rounds for logs.
func seconds(s float64) string { return strconv.FormatFloat(s, 'f', 3, 64) + "s" }
