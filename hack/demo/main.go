// Command demo runs kube-ecr-refresher end to end on this machine for `make demo`:
// a local control plane and ECR endpoint, two leader-elected replicas, a narrated tour.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kube-ecr-refresher/kube-ecr-refresher/internal/kube"
	"github.com/kube-ecr-refresher/kube-ecr-refresher/test/controlplane"
	"github.com/kube-ecr-refresher/kube-ecr-refresher/test/fakeecr"
)

// What the demo runs and names.
const (
	controllerPackage = "github.com/kube-ecr-refresher/kube-ecr-refresher/cmd/kube-ecr-refresher"
	secretName        = "ecr-pull-secret"    // the controller's default SECRET_NAME
	leaseName         = "kube-ecr-refresher" // the controller's default LEASE_NAME
	leaseNamespace    = metav1.NamespaceDefault
	keptPullSecret    = "team-registry" // the entry demo-b's ServiceAccount has before the controller starts
)

// Timings.
const (
	binDirNoteAfter = 3 * time.Second  // when to explain that the first run builds the control plane
	leaderTimeout   = 60 * time.Second // replicas started → a leader holds the Lease
	readyTimeout    = 90 * time.Second // leader → every namespace served or left alone
	pollInterval    = 200 * time.Millisecond
)

// options are the demo's flags.
type options struct {
	// exitAfterReady cleans up and returns as soon as the summary is printed.
	exitAfterReady bool
	// keep leaves the working directory (logs, kubeconfig) in place.
	keep bool
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	// After the first Ctrl-C, a second one quits at once (the kernel still
	// kills the replicas and the control plane; the temp dir stays).
	context.AfterFunc(ctx, stop)
	opts, err := parseFlags(os.Args[1:], os.Stderr)
	if err == nil {
		err = run(ctx, opts, os.Stdout)
	}
	stop()
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	default:
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func parseFlags(args []string, stderr io.Writer) (options, error) {
	fs := flag.NewFlagSet("demo", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "Usage: go run ./hack/demo [flags]\n\n"+
			"Starts a local kube-apiserver, etcd and kube-controller-manager, a local ECR\n"+
			"endpoint and two kube-ecr-refresher replicas with leader election, creates a\n"+
			"few namespaces, shows what the leader wrote, and runs until Ctrl-C. Everything\n"+
			"listens on 127.0.0.1 and nothing reaches AWS.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	var opts options
	fs.BoolVar(&opts.exitAfterReady, "exit-after-ready", false, "clean up and exit once the summary is printed (for tests)")
	fs.BoolVar(&opts.keep, "keep", false, "keep the working directory (logs, kubeconfig) after exit")
	if err := fs.Parse(args); err != nil {
		return options{}, err
	}
	if fs.NArg() > 0 {
		return options{}, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	return opts, nil
}

// run is the whole demo. It returns when ctx ends or, with exitAfterReady,
// once the summary is printed; either way after stopping everything it
// started. An interruption (ctx cancelled) is not an error.
func run(ctx context.Context, opts options, stdout io.Writer) (err error) {
	say := &narrator{w: stdout}
	dir, err := os.MkdirTemp("", "kube-ecr-refresher-demo-")
	if err != nil {
		return fmt.Errorf("create working dir: %w", err)
	}
	say.line("kube-ecr-refresher demo; working dir: %s", dir)

	var undo cleanups
	defer func() {
		say.step("cleaning up: stopping the replicas, the ECR endpoint and the control plane")
		cleanupErr := undo.run()
		if opts.keep {
			say.line("    kept %s (remove it with: rm -rf %s)", dir, dir)
		} else if rmErr := os.RemoveAll(dir); rmErr != nil {
			cleanupErr = errors.Join(cleanupErr, fmt.Errorf("remove working dir: %w", rmErr))
		}
		if cleanupErr != nil {
			say.line("cleanup finished with errors: %v", cleanupErr)
		} else {
			say.line("cleaned up")
		}
		if ctx.Err() != nil && errors.Is(err, context.Canceled) {
			err = nil // Ctrl-C is how the demo ends
		}
		err = errors.Join(err, cleanupErr)
	}()

	d := &demo{opts: opts, say: say, dir: dir, undo: &undo}
	return d.run(ctx)
}

// demo holds what run started, for the steps and for the summary.
type demo struct {
	opts   options
	say    *narrator
	dir    string
	undo   *cleanups
	binDir string
	plane  *controlplane.ControlPlane
	ecr    *fakeecr.Server
	watch  *watcher
	reps   []*replica
}

func (d *demo) run(ctx context.Context) error {
	// The controller builds while the control plane starts.
	buildCtx, cancelBuild := context.WithCancel(ctx)
	built := make(chan struct{})
	var build buildResult
	go func() {
		defer close(built)
		build = buildController(buildCtx, filepath.Join(d.dir, "kube-ecr-refresher"))
	}()
	d.undo.push(func() error { cancelBuild(); <-built; return nil })

	if err := d.startControlPlane(ctx); err != nil {
		return err
	}
	if err := d.startECR(); err != nil {
		return err
	}
	select {
	case <-built:
	case <-ctx.Done():
		return ctx.Err()
	}
	if build.err != nil {
		return build.err
	}
	bin := build.path
	d.say.step("built kube-ecr-refresher in %s", build.took.Round(100*time.Millisecond))

	client := d.plane.Client()
	d.say.step("namespaces that exist before the controller starts:")
	if err := setUpPreexisting(ctx, client); err != nil {
		return err
	}
	d.say.line("    demo-b  its default ServiceAccount already lists imagePullSecrets %q (to be kept)", keptPullSecret)
	d.say.line("    demo-c  holds a Secret %q that kube-ecr-refresher did not write (to be left alone)", secretName)

	d.watch = newWatcher(client, secretName, leaseNamespace, leaseName, d.say)
	d.undo.push(func() error { d.watch.stop(); return nil })
	if err := d.watch.start(ctx); err != nil {
		return err
	}

	if err := d.startReplicas(bin); err != nil {
		return err
	}
	d.say.step("waiting for a replica to win the Lease %s/%s", leaseNamespace, leaseName)
	if err := d.waitUntil(ctx, leaderTimeout, "a leader", func() (bool, string) {
		return d.watch.leader() != "", "no holder yet"
	}); err != nil {
		return err
	}

	d.say.step("creating namespace demo-a while the controller runs")
	if _, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "demo-a"}}, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("create namespace demo-a: %w", err)
	}
	if err := d.waitUntil(ctx, readyTimeout, "every namespace served and demo-c left alone", func() (bool, string) {
		return d.watch.settled([]string{"demo-a"}, []string{"demo-c"})
	}); err != nil {
		return err
	}

	if err := d.summarize(ctx); err != nil {
		return err
	}
	if d.opts.exitAfterReady {
		return nil
	}
	d.say.line("")
	d.say.line("Running; changes are printed below. Press Ctrl-C to stop and clean up.")
	<-ctx.Done()
	return ctx.Err()
}

func (d *demo) startControlPlane(ctx context.Context) error {
	d.say.step("finding the control plane binaries")
	found := make(chan buildResult, 1)
	go func() {
		dir, err := controlplane.BinDir()
		found <- buildResult{path: dir, err: err}
	}()
	note := time.NewTimer(binDirNoteAfter)
	defer note.Stop()
	var bins buildResult
wait:
	for {
		select {
		case bins = <-found:
			break wait
		case <-note.C:
			d.say.line("    building etcd, kube-apiserver, kube-controller-manager and kubectl from source;")
			d.say.line("    the first run on a machine takes about 15 minutes on 2 cores, later runs reuse the cache")
		case <-ctx.Done():
			// The build goes on and fills the cache for the next run.
			return ctx.Err()
		}
	}
	if bins.err != nil {
		return fmt.Errorf("find control plane binaries: %w", bins.err)
	}
	d.binDir = bins.path
	d.say.line("    %s", d.binDir)

	d.say.step("starting etcd, kube-apiserver and kube-controller-manager")
	logFile, err := os.Create(filepath.Join(d.dir, "controlplane.log"))
	if err != nil {
		return fmt.Errorf("create control plane log: %w", err)
	}
	d.undo.push(func() error { return logFile.Close() })
	began := time.Now()
	plane, err := controlplane.Start(ctx, controlplane.Options{
		BinDir: d.binDir,
		Dir:    filepath.Join(d.dir, "controlplane"),
		Log:    slog.New(slog.NewTextHandler(logFile, nil)),
	})
	if err != nil {
		return err
	}
	d.plane = plane
	d.undo.push(plane.Stop)
	d.say.line("    %s is ready (%s); component logs in %s", plane.URL(), time.Since(began).Round(100*time.Millisecond), plane.Dir())
	return nil
}

func (d *demo) startECR() error {
	logFile, err := os.Create(filepath.Join(d.dir, "ecr.log"))
	if err != nil {
		return fmt.Errorf("create ecr log: %w", err)
	}
	d.undo.push(func() error { return logFile.Close() })
	srv, err := fakeecr.Start("127.0.0.1:0", fakeecr.WithLogger(slog.New(slog.NewTextHandler(logFile, nil))))
	if err != nil {
		return fmt.Errorf("start ecr endpoint: %w", err)
	}
	d.ecr = srv
	d.undo.push(func() error { srv.Close(); return nil })
	d.say.step("local ECR endpoint at %s (tokens valid %s; log %s)", srv.URL, strings.TrimSuffix(fakeecr.DefaultLifetime.String(), "0m0s"), logFile.Name())
	return nil
}

func (d *demo) startReplicas(bin string) error {
	d.say.step("starting two replicas with leader election")
	d.undo.push(func() error {
		d.watch.stop() // no narration of the leadership change this causes
		return stopReplicas(d.reps, d.say)
	})
	for _, name := range []string{"replica-1", "replica-2"} {
		r, err := startReplica(name, bin, filepath.Join(d.dir, name+".log"), replicaEnv(name, d.dir, d.ecr.URL, d.plane.AdminKubeconfig()), d.say)
		if err != nil {
			return err
		}
		d.reps = append(d.reps, r)
		d.watch.addReplica(name, r.pid())
		d.say.line("    %s: pid %d, log %s", name, r.pid(), r.logPath)
	}
	return nil
}

// replicaEnv is a replica's whole environment: nothing of the user's that
// could reach AWS or another cluster, static dummy keys, the local endpoint.
func replicaEnv(identity, home, ecrURL, kubeconfig string) []string {
	return []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + home,
		"AWS_REGION=us-east-1",
		"AWS_ACCESS_KEY_ID=AKIDDEMO",
		"AWS_SECRET_ACCESS_KEY=demo-secret-not-real",
		"AWS_EC2_METADATA_DISABLED=true",
		"AWS_ENDPOINT_URL_ECR=" + ecrURL,
		"AWS_CONFIG_FILE=/dev/null",
		"AWS_SHARED_CREDENTIALS_FILE=/dev/null",
		"KUBE_ECR_REFRESHER_KUBECONFIG=" + kubeconfig,
		"KUBE_ECR_REFRESHER_LEASE_NAMESPACE=" + leaseNamespace,
		"KUBE_ECR_REFRESHER_LEADER_ELECTION_IDENTITY=" + identity,
		"KUBE_ECR_REFRESHER_HEALTH_ADDR=127.0.0.1:0",
		"KUBE_ECR_REFRESHER_LOG_FORMAT=text",
		"KUBE_ECR_REFRESHER_EVENTS=true",
	}
}

// waitUntil polls cond until it holds, ctx ends or timeout passes; it gives
// up early when every replica has exited.
func (d *demo) waitUntil(ctx context.Context, timeout time.Duration, what string, cond func() (bool, string)) error {
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(pollInterval)
	defer tick.Stop()
	for {
		ok, detail := cond()
		if ok {
			return nil
		}
		if allExited(d.reps) {
			return fmt.Errorf("wait for %s: every replica exited; see %s", what, logPaths(d.reps))
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("wait for %s: timed out after %s (last: %s); see %s", what, timeout, detail, logPaths(d.reps))
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-tick.C:
		}
	}
}

// summarize prints the leader, what was written where, and how to look around.
func (d *demo) summarize(ctx context.Context) error {
	d.say.line("")
	leader := d.watch.leader()
	d.say.line("Leader: %s holds the Lease %s/%s; the other replica stands by.", d.watch.describe(leader), leaseNamespace, leaseName)
	d.say.line("The local ECR endpoint answered %d GetAuthorizationToken call(s).", d.ecr.Calls())
	d.say.line("")
	var table strings.Builder
	if err := writeTable(ctx, d.plane.Client(), secretName, &table); err != nil {
		return err
	}
	d.say.block(table.String())

	d.say.line("")
	d.say.line("Look around from another terminal:")
	d.say.line("  export KUBECONFIG=%s", d.plane.AdminKubeconfig())
	if _, err := os.Stat(filepath.Join(d.binDir, "kubectl")); err == nil {
		d.say.line("  export PATH=%s:$PATH    # kubectl of the same version as the server", d.binDir)
	}
	d.say.line("  kubectl get secrets -A -l %s=%s", kube.ManagedByLabel, kube.ManagedByValue)
	d.say.line("  kubectl -n %s get lease %s -o yaml", leaseNamespace, leaseName)
	d.say.line("  kubectl get events -A --field-selector reason=%s", kube.ReasonSecretNotOurs)
	d.say.line("Try:")
	var try strings.Builder
	tw := tabwriter.NewWriter(&try, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "  kubectl create namespace demo-d\t# served within a second\n")
	fmt.Fprintf(tw, "  kubectl -n demo-a delete secret %s\t# written again at once\n", secretName)
	if r := d.replicaNamed(leader); r != nil {
		fmt.Fprintf(tw, "  kill %d\t# stop the leader; the other replica takes over\n", r.pid())
	}
	_ = tw.Flush()
	d.say.block(try.String())
	d.say.line("Logs: %s", logPaths(d.reps))
	return nil
}

func (d *demo) replicaNamed(name string) *replica {
	for _, r := range d.reps {
		if r.name == name {
			return r
		}
	}
	return nil
}

// buildResult is the outcome of a background step that yields a path.
type buildResult struct {
	path string
	took time.Duration
	err  error
}

// buildController builds the controller into out with the go command
// (the user's environment: it needs the module and build caches).
func buildController(ctx context.Context, out string) buildResult {
	began := time.Now()
	cmd := exec.CommandContext(ctx, "go", "build", "-o", out, controllerPackage)
	output, err := cmd.CombinedOutput()
	if err != nil {
		return buildResult{err: fmt.Errorf("build %s: %w\n%s", controllerPackage, err, output)}
	}
	return buildResult{path: out, took: time.Since(began)}
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
