package main

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/kube-ecr-refresher/kube-ecr-refresher/internal/kube"
	"github.com/kube-ecr-refresher/kube-ecr-refresher/test/controlplane"
	"github.com/kube-ecr-refresher/kube-ecr-refresher/test/fakeecr"
)

// Options configures one chaos run.
type Options struct {
	// Duration of the fault phase; setup and the final settle come on top.
	Duration time.Duration
	// Seed draws the fault schedule and every random choice of the harness.
	Seed uint64
	// Interval is the mean time between two faults.
	Interval time.Duration
	// Namespaces is how many target namespaces the churn keeps alive.
	Namespaces int
	// Writers other controllers edit default ServiceAccounts, EditsPerMinute in all.
	Writers        int
	EditsPerMinute int
	// RepairBudget: a target namespace may be unserved this long, not
	// counting time when a blocking fault made repair impossible.
	RepairBudget time.Duration
	// Replicas of the controller.
	Replicas int
	// ControllerEnv are the controller's settings (KEY=VALUE without the
	// KUBE_ECR_REFRESHER_ prefix) on top of the chaos defaults.
	ControllerEnv map[string]string
	// WorkDir keeps the control plane's files, the binary and every
	// replica's log.
	WorkDir string
	Log     *slog.Logger
}

// DefaultOptions are `make chaos`'s.
func DefaultOptions() Options {
	return Options{
		Duration:       5 * time.Minute,
		Seed:           1,
		Interval:       4 * time.Second,
		Namespaces:     30,
		Writers:        20,
		EditsPerMinute: 1000,
		RepairBudget:   30 * time.Second,
		Replicas:       3,
	}
}

// Controller settings of a chaos run, beyond the defaults the chart uses.
// The lease timings are the defaults. ECR timings are shortened so that a
// run of minutes sees many refreshes and retries.
var chaosSettings = map[string]string{
	"TARGET_NAMESPACES":    "chaos-*",
	"LEASE_NAMESPACE":      "default",
	"LEASE_NAME":           "kube-ecr-refresher",
	"HEALTH_ADDR":          "127.0.0.1:0",
	"LOG_LEVEL":            "info",
	"MIN_REFRESH_INTERVAL": "10s",
	"RETRY_INITIAL":        "1s",
	"RETRY_MAX":            "10s",
	"ECR_TIMEOUT":          "5s",
}

const (
	secretName = "ecr-pull-secret"
	nsPrefix   = "chaos-"
	// tokenLifetime of the endpoint's tokens outside lifetime faults: short,
	// so that the leader refreshes every two minutes and ECR faults meet
	// real calls, not only the first fetch of a new leader.
	tokenLifetime = 4 * time.Minute
)

// harness is one run.
type harness struct {
	opts    Options
	log     *slog.Logger
	plane   *controlplane.ControlPlane
	client  kubernetes.Interface
	ecr     *fakeecr.Server
	slots   []*slot
	w       *world
	ledger  *ledger
	check   *checker
	rng     *rand.Rand
	rngMu   sync.Mutex
	env     map[string]string
	lease   time.Duration
	started time.Time
	commit  string // of the tree the controller was built from

	mu       sync.Mutex
	busy     map[string]bool // resources in use
	injected map[string]int
	skipped  map[string]int
	faults   []faultRecord
	seq      int
	wg       sync.WaitGroup

	noLeader time.Duration
}

// faultRecord is one fault as it was injected.
type faultRecord struct {
	Kind      string    `json:"kind"`
	Start     time.Time `json:"start"`
	End       time.Time `json:"end"`
	Namespace string    `json:"namespace,omitempty"`
	Target    string    `json:"target,omitempty"` // replica identity
	Detail    string    `json:"detail,omitempty"`
}

// Run runs one chaos soak and returns its report. The error is for a run
// that could not be carried out; violations are in the report.
func Run(ctx context.Context, opts Options) (*Report, error) {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.WorkDir == "" {
		return nil, errors.New("chaos: WorkDir is required")
	}
	h := &harness{
		opts: opts, log: opts.Log, w: newWorld(opts.RepairBudget),
		rng:  rand.New(rand.NewPCG(opts.Seed, opts.Seed+1)),
		busy: map[string]bool{}, injected: map[string]int{}, skipped: map[string]int{},
		env: map[string]string{},
	}
	for k, v := range chaosSettings {
		h.env[k] = v
	}
	for k, v := range opts.ControllerEnv {
		h.env[k] = v
	}
	if h.env["LEASE_DURATION"] == "" {
		h.env["LEASE_DURATION"] = "15s"
	}
	var err error
	if h.lease, err = time.ParseDuration(h.env["LEASE_DURATION"]); err != nil {
		return nil, fmt.Errorf("chaos: LEASE_DURATION: %w", err)
	}
	h.ledger = newLedger(h.w)
	defer h.stopAll()
	if err := h.setup(ctx); err != nil {
		return nil, err
	}
	return h.soak(ctx)
}

func (h *harness) setup(ctx context.Context) error {
	bin := filepath.Join(h.opts.WorkDir, "kube-ecr-refresher")
	h.commit = gitDescribe()
	h.log.Info("building the controller", "out", bin)
	build := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", "-s -w -X main.version=chaos",
		"-o", bin, "./cmd/kube-ecr-refresher")
	build.Dir = repoRoot()
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		return fmt.Errorf("build controller: %w\n%s", err, out)
	}
	var err error
	h.plane, err = controlplane.Start(ctx, controlplane.Options{Dir: filepath.Join(h.opts.WorkDir, "plane"), Log: h.log})
	if err != nil {
		return err
	}
	h.client = h.plane.Client()
	h.ecr = fakeecr.New(fakeecr.WithLifetime(tokenLifetime))
	h.check = newChecker(ctx, h.client, h.w, h.ledger, h.ecr, secretName)
	if !h.check.waitSynced(ctx) {
		return errors.New("checker caches did not sync")
	}
	u, err := url.Parse(h.plane.URL())
	if err != nil {
		return err
	}
	for i := range h.opts.Replicas {
		p, err := NewProxy(u.Host)
		if err != nil {
			return err
		}
		kc, err := h.plane.WriteAdminKubeconfig(fmt.Sprintf("replica-%d.kubeconfig", i), "https://"+p.Addr())
		if err != nil {
			return err
		}
		env := []string{
			"PATH=" + os.Getenv("PATH"),
			"HOME=" + h.opts.WorkDir,
			"AWS_REGION=us-east-1",
			"AWS_SECRET_ACCESS_KEY=chaos-secret",
			"AWS_EC2_METADATA_DISABLED=true",
			"AWS_ENDPOINT_URL_ECR=" + h.ecr.URL,
			"AWS_CONFIG_FILE=/dev/null",
			"AWS_SHARED_CREDENTIALS_FILE=/dev/null",
			"KUBE_ECR_REFRESHER_KUBECONFIG=" + kc,
		}
		for k, v := range h.env {
			env = append(env, "KUBE_ECR_REFRESHER_"+k+"="+v)
		}
		slices.Sort(env)
		h.slots = append(h.slots, newSlot(i, p, bin, h.opts.WorkDir, env, h.log))
	}
	for range h.opts.Namespaces {
		if _, err := h.createNamespace(ctx); err != nil {
			return err
		}
	}
	for _, s := range h.slots {
		s.launch()
	}
	h.log.Info("waiting for every namespace to be served")
	deadline := time.Now().Add(3 * time.Minute)
	for {
		h.check.check(time.Now())
		if len(h.check.unservedNow()) == 0 {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("initial install: still unserved after 3m: %v", h.check.unservedNow())
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(500 * time.Millisecond):
		}
	}
	// What the setup left unserved for a while is not a violation.
	h.w.mu.Lock()
	for _, st := range h.w.ns {
		st.gap = nil
		st.since = time.Now()
	}
	h.w.mu.Unlock()
	return nil
}

// repoRoot is the repository root: this package is test/chaos.
func repoRoot() string {
	dir, _ := os.Getwd()
	for d := dir; d != "/"; d = filepath.Dir(d) {
		if b, err := os.ReadFile(filepath.Join(d, "go.mod")); err == nil && strings.Contains(string(b), "module github.com/kube-ecr-refresher/kube-ecr-refresher\n") {
			return d
		}
	}
	return dir
}

func (h *harness) soak(ctx context.Context) (*Report, error) {
	plan := Schedule(h.opts.Seed, h.opts.Duration, h.opts.Interval, h.lease)
	h.log.Info("fault phase", "seed", h.opts.Seed, "duration", h.opts.Duration, "faults_planned", len(plan))
	phase, stopPhase := context.WithCancel(ctx)
	defer stopPhase()
	checkCtx, stopCheck := context.WithCancel(ctx)
	defer stopCheck()
	go h.check.run(checkCtx)
	go h.sample(checkCtx)
	var bg sync.WaitGroup
	perWriter := time.Duration(float64(time.Minute) * float64(h.opts.Writers) / float64(max(h.opts.EditsPerMinute, 1)))
	for i := range h.opts.Writers {
		o := &otherWriter{id: i, client: h.client, ledger: h.ledger, interval: perWriter,
			rng: rand.New(rand.NewPCG(h.opts.Seed+uint64(i)+100, uint64(i))), pick: h.pickAny}
		bg.Add(1)
		go func() { defer bg.Done(); o.run(phase) }()
	}
	bg.Add(1)
	go func() { defer bg.Done(); h.churn(phase) }()

	h.started = time.Now()
	// A fault that cannot be injected yet (its resource is busy, or there
	// is no leader to hit) is tried again at each later slot.
	var deferred []plannedFault
	for _, f := range plan {
		select {
		case <-ctx.Done():
			stopPhase()
			bg.Wait()
			return nil, ctx.Err()
		case <-time.After(time.Until(h.started.Add(f.At))):
		}
		var still []plannedFault
		for _, d := range deferred {
			if !h.inject(phase, d) {
				still = append(still, d)
			}
		}
		deferred = still
		if !h.inject(phase, f) {
			deferred = append(deferred, f)
		}
	}
	h.mu.Lock()
	for _, d := range deferred {
		h.skipped[d.Kind]++
	}
	h.mu.Unlock()
	select {
	case <-ctx.Done():
	case <-time.After(time.Until(h.started.Add(h.opts.Duration))):
	}
	h.log.Info("fault phase over; healing and settling")
	stopPhase()
	bg.Wait()
	h.wg.Wait() // every windowed fault healed
	phaseEnd := time.Now()
	settle := time.Now().Add(h.opts.RepairBudget + 15*time.Second)
	for time.Now().Before(settle) && ctx.Err() == nil {
		if len(h.check.unservedNow()) == 0 {
			if _, open := h.check.repairTimes(); sum(open) == 0 {
				break
			}
		}
		time.Sleep(500 * time.Millisecond)
	}
	h.check.check(time.Now())
	stopCheck()
	h.check.closeAll(time.Now())
	for ns, why := range h.check.unservedNow() {
		h.w.violate(Violation{Invariant: InvServed, Time: time.Now(), Namespace: ns, Detail: "still unserved when the run ended: " + why})
	}
	for _, s := range h.slots {
		s.stop(20 * time.Second)
	}
	return h.report(phaseEnd)
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// sample reads each replica's peak RSS and tracks time without a leader.
func (h *harness) sample(ctx context.Context) {
	t := time.NewTicker(250 * time.Millisecond)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case now := <-t.C:
			for _, s := range h.slots {
				if r := s.current(); r != nil {
					r.sampleRSS()
				}
			}
			if !h.leading(ctx, now) {
				h.mu.Lock()
				h.noLeader += now.Sub(last)
				h.mu.Unlock()
			}
			last = now
		}
	}
}

// leading reports whether a replica that can write holds a live Lease: it
// is running, not stopped, its proxy passes traffic, and the Lease was
// renewed within its duration.
func (h *harness) leading(ctx context.Context, now time.Time) bool {
	r, l := h.leader(ctx)
	if r == nil || r.isStopped() {
		return false
	}
	if m := h.slots[r.slot].proxy.Mode(); m == Blackhole || m == Reset {
		return false
	}
	return l.Spec.RenewTime != nil && now.Sub(l.Spec.RenewTime.Time) < h.lease
}

// leader returns the running replica the Lease names, and the Lease.
func (h *harness) leader(ctx context.Context) (*replica, *coordinationv1.Lease) {
	l := h.getLease(ctx)
	if l == nil {
		return nil, nil
	}
	for _, s := range h.slots {
		if r := s.current(); r != nil && r.identity == *l.Spec.HolderIdentity {
			return r, l
		}
	}
	return nil, nil
}

// getLease reads the Lease through the admin client; nil when it cannot,
// or when it names no holder.
func (h *harness) getLease(ctx context.Context) *coordinationv1.Lease {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	l, err := h.client.CoordinationV1().Leases("default").Get(ctx, h.env["LEASE_NAME"], metav1.GetOptions{})
	if err != nil || l.Spec.HolderIdentity == nil {
		return nil
	}
	return l
}

// lease0 returns the Lease's holder, or "".
func (h *harness) lease0(ctx context.Context) string {
	if l := h.getLease(ctx); l != nil {
		return *l.Spec.HolderIdentity
	}
	return ""
}

// follower returns a running replica the Lease does not name.
func (h *harness) follower(ctx context.Context, pick uint64) *replica {
	lead, _ := h.leader(ctx)
	var fs []*replica
	for _, s := range h.slots {
		if r := s.current(); r != nil && r != lead && !r.isStopped() {
			fs = append(fs, r)
		}
	}
	if len(fs) == 0 {
		return nil
	}
	return fs[pick%uint64(len(fs))]
}

// createNamespace creates a new target namespace and records it.
func (h *harness) createNamespace(ctx context.Context) (string, error) {
	h.mu.Lock()
	h.seq++
	name := fmt.Sprintf("%sns-%04d", nsPrefix, h.seq)
	h.mu.Unlock()
	now := time.Now()
	h.w.mu.Lock()
	h.w.ns[name] = &nsState{name: name, created: now, since: now, events: []nsEvent{{kind: evCreated, at: now}}}
	h.w.mu.Unlock()
	_, err := h.client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil {
		h.w.mu.Lock()
		delete(h.w.ns, name)
		h.w.mu.Unlock()
		return "", fmt.Errorf("create namespace %s: %w", name, err)
	}
	return name, nil
}

// deleteNamespace deletes a namespace the harness created.
func (h *harness) deleteNamespace(ctx context.Context, name string) error {
	h.w.event(name, evDeleted, time.Now())
	h.ledger.forget(name)
	err := h.client.CoreV1().Namespaces().Delete(ctx, name, metav1.DeleteOptions{})
	if err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	return nil
}

// churn keeps creating namespaces and deleting the oldest idle ones, so the
// population stays around Options.Namespaces.
func (h *harness) churn(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(h.jitter(3 * time.Second)):
		}
		if _, err := h.createNamespace(ctx); err != nil {
			h.log.Debug("churn: create", "error", err)
		}
		h.w.mu.Lock()
		var live []*nsState
		for _, st := range h.w.ns {
			if !st.deleted {
				live = append(live, st)
			}
		}
		var victim string
		if len(live) > h.opts.Namespaces {
			sort.Slice(live, func(i, j int) bool { return live[i].created.Before(live[j].created) })
			for _, st := range live {
				if !st.busy {
					victim = st.name
					break
				}
			}
		}
		h.w.mu.Unlock()
		if victim != "" {
			if err := h.deleteNamespace(ctx, victim); err != nil {
				h.log.Debug("churn: delete", "error", err)
			}
		}
	}
}

func (h *harness) jitter(d time.Duration) time.Duration {
	h.rngMu.Lock()
	defer h.rngMu.Unlock()
	return time.Duration(float64(d) * (0.5 + h.rng.Float64()))
}

// pickAny returns a live namespace the harness created, for other writers.
func (h *harness) pickAny(rng *rand.Rand) string {
	h.w.mu.Lock()
	defer h.w.mu.Unlock()
	var names []string
	for n, st := range h.w.ns {
		if !st.deleted && time.Since(st.created) > 2*time.Second {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		return ""
	}
	sort.Strings(names)
	return names[rng.IntN(len(names))]
}

// claimServed returns a namespace that is served, idle and ours, marked
// busy, for a namespace fault; "" when none is.
func (h *harness) claimServed(pick uint64) string {
	now := time.Now()
	h.w.mu.Lock()
	var names []string
	for n, st := range h.w.ns {
		if !st.deleted && !st.busy && !st.foreign && !st.untargeted {
			names = append(names, n)
		}
	}
	h.w.mu.Unlock()
	sort.Strings(names)
	var ok []string
	for _, n := range names {
		if served, _ := h.check.served(n, now); served {
			ok = append(ok, n)
		}
	}
	if len(ok) == 0 {
		return ""
	}
	n := ok[pick%uint64(len(ok))]
	h.w.mu.Lock()
	defer h.w.mu.Unlock()
	if st := h.w.ns[n]; st != nil && !st.busy && !st.deleted {
		st.busy = true
		return n
	}
	return ""
}

func (h *harness) release(ns string) {
	h.w.mu.Lock()
	defer h.w.mu.Unlock()
	if st := h.w.ns[ns]; st != nil {
		st.busy = false
	}
}

// inject starts one planned fault; a windowed fault heals itself in the
// background. It reports false for a fault whose resource is busy, or that
// finds no target (no leader to kill): the caller tries it again later.
func (h *harness) inject(ctx context.Context, f plannedFault) bool {
	res := resourceOf(f.Kind)
	h.mu.Lock()
	if res != "" && h.busy[res] {
		h.mu.Unlock()
		return false
	}
	if res != "" {
		h.busy[res] = true
	}
	h.mu.Unlock()
	freeRes := func() {
		if res != "" {
			h.mu.Lock()
			h.busy[res] = false
			h.mu.Unlock()
		}
	}
	rec, heal, err := h.start(ctx, f)
	if err != nil || rec == nil {
		freeRes()
		if err != nil {
			h.log.Info("fault not injected", "kind", f.Kind, "error", err)
		}
		return false
	}
	h.mu.Lock()
	h.injected[f.Kind]++
	h.mu.Unlock()
	if disrupting(f.Kind) {
		h.check.interrupt(rec.Start)
	}
	var (
		unblock func(time.Time)
		limit   time.Time
	)
	if blocking(f.Kind) {
		if resourceOf(f.Kind) == "leader" || f.Kind == KillLeader {
			// Another replica takes the Lease once it expires: the harm is
			// excused until then, not for as long as the fault lasts.
			limit = rec.Start.Add(h.lease + 2*time.Second)
		}
		unblock = h.w.block(rec.Start, limit)
	}
	finish := func() {
		rec.End = time.Now()
		switch {
		case unblock != nil && f.Kind == KillLeader:
			unblock(limit) // the Lease outlives the process it named
		case unblock != nil:
			unblock(rec.End)
		}
		freeRes()
		h.check.watchRepair(f.Kind, rec.Namespace, rec.End)
		h.mu.Lock()
		h.faults = append(h.faults, *rec)
		h.mu.Unlock()
		h.log.Info("fault over", "kind", f.Kind, "namespace", rec.Namespace, "target", rec.Target,
			"lasted", rec.End.Sub(rec.Start).Round(time.Millisecond), "detail", rec.Detail)
	}
	h.log.Info("fault", "kind", f.Kind, "namespace", rec.Namespace, "target", rec.Target, "hold", f.Hold, "detail", rec.Detail)
	if heal == nil {
		finish()
		return true
	}
	h.wg.Add(1)
	go func() {
		defer h.wg.Done()
		heal(ctx)
		finish()
	}()
	return true
}

// start injects f and returns its record and, for a windowed fault, the
// function that waits out the window and heals it.
func (h *harness) start(ctx context.Context, f plannedFault) (*faultRecord, func(context.Context), error) {
	now := time.Now()
	rec := &faultRecord{Kind: f.Kind, Start: now}
	hold := func(ctx context.Context, d time.Duration) {
		select {
		case <-ctx.Done():
		case <-time.After(d):
		}
	}
	switch f.Kind {
	case KillLeader, TermLeader:
		r, _ := h.leader(ctx)
		if r == nil || r.isStopped() {
			return nil, nil, nil
		}
		rec.Target = r.identity
		sig := syscall.SIGKILL
		if f.Kind == TermLeader {
			sig = syscall.SIGTERM
		}
		return rec, nil, r.signal(sig)
	case KillFollower:
		r := h.follower(ctx, f.Pick)
		if r == nil {
			return nil, nil, nil
		}
		rec.Target = r.identity
		return rec, nil, r.signal(syscall.SIGKILL)
	case StopLeader:
		r, _ := h.leader(ctx)
		if r == nil || r.isStopped() {
			return nil, nil, nil
		}
		rec.Target = r.identity
		if err := r.signal(syscall.SIGSTOP); err != nil {
			return nil, nil, err
		}
		return rec, func(ctx context.Context) {
			ctx = context.WithoutCancel(ctx) // a zombie wakes whatever happens
			hold(ctx, f.Hold)
			// Wake it only once another replica holds the Lease (a control
			// plane restart may delay that), so that it wakes a zombie.
			deadline := time.Now().Add(3 * h.lease)
			for time.Now().Before(deadline) {
				if l := h.lease0(ctx); l != "" && l != r.identity {
					rec.Detail = "woke after " + l + " took the Lease"
					break
				}
				hold(ctx, 250*time.Millisecond)
			}
			if rec.Detail == "" {
				rec.Detail = "woke still named in the Lease"
			}
			_ = r.signal(syscall.SIGCONT)
		}, nil
	case PartitionHole, PartitionReset, PartitionLatency:
		r, _ := h.leader(ctx)
		if r == nil || r.isStopped() {
			return nil, nil, nil
		}
		rec.Target = r.identity
		p := h.slots[r.slot].proxy
		mode := map[string]ProxyMode{PartitionHole: Blackhole, PartitionReset: Reset, PartitionLatency: Latency}[f.Kind]
		p.SetMode(mode, f.Value)
		if mode == Latency {
			rec.Detail = f.Value.String()
		}
		return rec, func(ctx context.Context) { hold(ctx, f.Hold); p.SetMode(Pass, 0) }, nil
	case RestartAPIServer, RestartEtcd:
		comp := controlplane.APIServer
		if f.Kind == RestartEtcd {
			comp = controlplane.Etcd
		}
		return rec, func(ctx context.Context) {
			if err := h.plane.Restart(context.WithoutCancel(ctx), comp); err != nil {
				h.log.Error("restart", "component", comp, "error", err)
				rec.Detail = err.Error()
			}
		}, nil
	case ECROutage, ECRThrottle, ECRTimeout, ECRMalformed:
		mode := map[string]fakeecr.Failure{ECROutage: fakeecr.FailureServerError, ECRThrottle: fakeecr.FailureThrottling,
			ECRTimeout: fakeecr.FailureTimeout, ECRMalformed: fakeecr.FailureMalformed}[f.Kind]
		h.ecr.SetFailure(mode)
		return rec, func(ctx context.Context) { hold(ctx, f.Hold); h.ecr.SetFailure(fakeecr.FailureNone) }, nil
	case ECRSlow:
		h.ecr.SetLatency(f.Value)
		rec.Detail = f.Value.String()
		return rec, func(ctx context.Context) { hold(ctx, f.Hold); h.ecr.SetLatency(0) }, nil
	case ECRShortToken, ECRExpiredToken:
		life := 2 * time.Minute
		if f.Kind == ECRExpiredToken {
			life = -time.Minute
		}
		h.ecr.SetLifetime(life)
		return rec, func(ctx context.Context) { hold(ctx, f.Hold); h.ecr.SetLifetime(tokenLifetime) }, nil
	case ECRDateSkew:
		h.ecr.SetClockSkew(f.Value)
		rec.Detail = f.Value.String()
		return rec, func(ctx context.Context) { hold(ctx, f.Hold); h.ecr.SetClockSkew(0) }, nil
	}
	return h.startNamespaceFault(ctx, f, rec)
}

// startNamespaceFault injects a fault scoped to one namespace.
func (h *harness) startNamespaceFault(ctx context.Context, f plannedFault, rec *faultRecord) (*faultRecord, func(context.Context), error) {
	ns := h.claimServed(f.Pick)
	if ns == "" {
		return nil, nil, nil
	}
	rec.Namespace = ns
	secrets := h.client.CoreV1().Secrets(ns)
	hold := func(ctx context.Context, d time.Duration) {
		select {
		case <-ctx.Done():
		case <-time.After(d):
		}
	}
	fail := func(err error) (*faultRecord, func(context.Context), error) {
		h.release(ns)
		return nil, nil, err
	}
	switch f.Kind {
	case SecretDelete:
		h.w.event(ns, evSecretDelete, time.Now())
		err := secrets.Delete(ctx, secretName, metav1.DeleteOptions{})
		h.release(ns)
		if err != nil {
			return nil, nil, err
		}
		return rec, nil, nil
	case SecretEdit:
		h.w.event(ns, evSecretEdit, time.Now())
		patch := fmt.Sprintf(`{"data":{%q:%q}}`, corev1.DockerConfigJsonKey, b64(tamperedConfig(int(f.Pick%1000000))))
		_, err := secrets.Patch(ctx, secretName, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
		h.release(ns)
		if err != nil {
			return nil, nil, err
		}
		return rec, nil, nil
	case EntryRemove:
		h.w.event(ns, evEntryRemoved, time.Now())
		err := h.removeOurEntry(ctx, ns)
		h.release(ns)
		if err != nil {
			return nil, nil, err
		}
		return rec, nil, nil
	case SecretRelabel:
		if f.Pick%3 == 0 {
			// A label that means nothing to us: nothing to repair, no write.
			h.w.event(ns, evRelabel, time.Now())
			patch := fmt.Sprintf(`{"metadata":{"labels":{"chaos/touched":"%d"}}}`, f.Pick%1000)
			_, err := secrets.Patch(ctx, secretName, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
			h.release(ns)
			rec.Detail = "label added"
			if err != nil {
				return nil, nil, err
			}
			return rec, nil, nil
		}
		// The managed-by label removed: the user took the Secret over, and
		// it must not be touched until the label is back.
		patch := fmt.Sprintf(`{"metadata":{"labels":{%q:null}}}`, kube.ManagedByLabel)
		h.w.event(ns, evForeignOn, time.Now())
		out, err := secrets.Patch(ctx, secretName, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
		if err != nil {
			h.w.event(ns, evForeignOff, time.Now())
			return fail(err)
		}
		h.setForeignRV(ns, out.ResourceVersion)
		rec.Detail = "taken over, then handed back"
		return rec, func(ctx context.Context) {
			hold(ctx, f.Hold)
			h.w.event(ns, evForeignOff, time.Now())
			back := fmt.Sprintf(`{"metadata":{"labels":{%q:%q}}}`, kube.ManagedByLabel, kube.ManagedByValue)
			h.heal(ctx, "hand back "+ns, func(ctx context.Context) error {
				_, err := secrets.Patch(ctx, secretName, types.MergePatchType, []byte(back), metav1.PatchOptions{})
				return err
			})
			h.release(ns)
		}, nil
	case ForeignSecret:
		rv, err := h.placeForeign(ctx, ns)
		if err != nil {
			h.w.event(ns, evForeignOff, time.Now())
			return fail(err)
		}
		h.setForeignRV(ns, rv)
		return rec, func(ctx context.Context) {
			hold(ctx, f.Hold)
			h.w.event(ns, evForeignOff, time.Now())
			h.heal(ctx, "remove foreign secret in "+ns, func(ctx context.Context) error {
				if err := secrets.Delete(ctx, secretName, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
					return err
				}
				return nil
			})
			h.release(ns)
		}, nil
	case Untarget:
		h.w.event(ns, evUntarget, time.Now())
		if err := h.annotateIgnore(ctx, ns, true); err != nil {
			h.w.event(ns, evRetarget, time.Now())
			return fail(err)
		}
		return rec, func(ctx context.Context) {
			hold(ctx, h.opts.RepairBudget+f.Hold) // long enough for invariant 6 to be checked
			at := h.heal(ctx, "retarget "+ns, func(ctx context.Context) error { return h.annotateIgnore(ctx, ns, false) })
			h.w.event(ns, evRetarget, at)
			h.release(ns)
		}, nil
	case NamespaceFinal:
		cms := h.client.CoreV1().ConfigMaps(ns)
		_, err := cms.Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "held", Finalizers: []string{"chaos.example.com/hold"}}}, metav1.CreateOptions{})
		if err != nil {
			return fail(err)
		}
		if err := h.deleteNamespace(ctx, ns); err != nil {
			return fail(err)
		}
		rec.Detail = "terminating, held by a finalizer"
		return rec, func(ctx context.Context) {
			hold(ctx, f.Hold)
			patch := `{"metadata":{"finalizers":null}}`
			h.heal(ctx, "release finalizer in "+ns, func(ctx context.Context) error {
				_, err := cms.Patch(ctx, "held", types.MergePatchType, []byte(patch), metav1.PatchOptions{})
				return err
			})
		}, nil
	}
	return fail(fmt.Errorf("unknown fault kind %q", f.Kind))
}

func b64(b []byte) string { return base64.StdEncoding.EncodeToString(b) }

// heal retries fn until it succeeds, for up to healTimeout: the API server
// may be restarting when a fault ends, and a heal that did not happen must
// not be recorded as done. It returns when the attempt that succeeded began.
func (h *harness) heal(ctx context.Context, what string, fn func(context.Context) error) time.Time {
	ctx = context.WithoutCancel(ctx)
	deadline := time.Now().Add(healTimeout)
	for {
		began := time.Now()
		err := fn(ctx)
		if err == nil {
			return began
		}
		if time.Now().After(deadline) {
			h.log.Error("heal failed", "what", what, "error", err)
			return began
		}
		time.Sleep(500 * time.Millisecond)
	}
}

// healTimeout bounds heal: longer than any control plane restart.
const healTimeout = 2 * time.Minute

func (h *harness) setForeignRV(ns, rv string) {
	h.w.mu.Lock()
	defer h.w.mu.Unlock()
	if st := h.w.ns[ns]; st != nil {
		st.foreignRV = rv
	}
}

// placeForeign replaces our Secret with someone else's of the same name.
// The controller may re-create ours in between: then it tries again.
func (h *harness) placeForeign(ctx context.Context, ns string) (string, error) {
	secrets := h.client.CoreV1().Secrets(ns)
	h.w.event(ns, evForeignOn, time.Now())
	var err error
	for range 10 {
		// Each deletion of ours calls for one write: the controller may
		// re-create its Secret before the foreign one lands (409 here).
		h.w.event(ns, evSecretDelete, time.Now())
		_ = secrets.Delete(ctx, secretName, metav1.DeleteOptions{})
		var out *corev1.Secret
		out, err = secrets.Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: secretName, Labels: map[string]string{"owner": "someone-else"}},
			Type:       corev1.SecretTypeOpaque,
			Data:       map[string][]byte{"note": []byte("not yours")},
		}, metav1.CreateOptions{})
		if err == nil {
			return out.ResourceVersion, nil
		}
		if !apierrors.IsAlreadyExists(err) {
			return "", err
		}
	}
	return "", fmt.Errorf("place foreign secret in %s: %w", ns, err)
}

func (h *harness) removeOurEntry(ctx context.Context, ns string) error {
	sas := h.client.CoreV1().ServiceAccounts(ns)
	for range 10 {
		sa, err := sas.Get(ctx, "default", metav1.GetOptions{})
		if err != nil {
			return err
		}
		i := slices.IndexFunc(sa.ImagePullSecrets, func(r corev1.LocalObjectReference) bool { return r.Name == secretName })
		if i < 0 {
			return errors.New("no entry of ours to remove")
		}
		sa.ImagePullSecrets = slices.Delete(sa.ImagePullSecrets, i, i+1)
		if _, err = sas.Update(ctx, sa, metav1.UpdateOptions{}); err == nil || !apierrors.IsConflict(err) {
			return err
		}
	}
	return errors.New("remove our entry: conflicts")
}

func (h *harness) annotateIgnore(ctx context.Context, ns string, ignore bool) error {
	v := `null`
	if ignore {
		v = `"true"`
	}
	patch := fmt.Sprintf(`{"metadata":{"annotations":{%q:%s}}}`, kube.IgnoreAnnotation, v)
	_, err := h.client.CoreV1().Namespaces().Patch(ctx, ns, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
	return err
}

// stopAll stops whatever is still running.
func (h *harness) stopAll() {
	for _, s := range h.slots {
		s.stop(10 * time.Second)
		s.proxy.Close()
	}
	if h.ecr != nil {
		h.ecr.Close()
	}
	if h.plane != nil {
		if err := h.plane.Stop(); err != nil {
			h.log.Info("stop control plane", "error", err)
		}
	}
}
