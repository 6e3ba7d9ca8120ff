// Command bench measures kube-ecr-refresher on a real local control plane and
// reports each result as a ratio to the kube-apiserver's own limit, measured in the same run.
//
// Run it with `make bench`; see docs/benchmarks.md for what each number means.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
	default:
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

// cli is what the flags select beyond Options.
type cli struct {
	opts     Options
	jsonPath string
	keep     bool
}

func parseFlags(args []string, stderr io.Writer) (cli, error) {
	c := cli{opts: DefaultOptions(), jsonPath: "bench-results.json"}
	fs := flag.NewFlagSet("bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), "Usage: bench [flags]\n\n"+
			"Starts a local etcd, kube-apiserver and kube-controller-manager and a local ECR\n"+
			"endpoint for each N, measures the server's own write limit, then runs the\n"+
			"kube-ecr-refresher binary: cold install, steady refresh, new namespaces,\n"+
			"restart, failover and memory. Prints a table and writes JSON.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	sizes := intList{100, 1000}
	env := envFlag{}
	goEnv := runtimeEnvFlag{}
	var large bool
	fs.Var(&sizes, "n", "comma-separated numbers of namespaces, each on a fresh control plane")
	fs.BoolVar(&large, "large", false, "also measure N = 10000 (several minutes; implies -create-service-accounts)")
	fs.StringVar(&c.jsonPath, "json", c.jsonPath, "write the results as JSON to this file (empty: none)")
	fs.Var(env, "set", "controller setting KEY=VALUE (KEY without the KUBE_ECR_REFRESHER_ prefix); repeatable")
	fs.Var(goEnv, "go-env", "Go runtime variable of the controller process, GOGC, GOMEMLIMIT, GOMAXPROCS or GODEBUG=VALUE; repeatable")
	fs.StringVar(&c.opts.ControllerBin, "controller-bin", "", "controller binary to run (default: build it like make build)")
	fs.IntVar(&c.opts.Concurrency, "concurrency", c.opts.Concurrency, "requests in flight for the floor and for creating namespaces")
	fs.BoolVar(&c.opts.CreateServiceAccounts, "create-service-accounts", false,
		"create each namespace's default ServiceAccount instead of waiting for kube-controller-manager (20 requests/s)")
	fs.DurationVar(&c.opts.RefreshAfter, "refresh-after", 0, "when the forced refresh is due after the first token (0: from the floor and KUBE_API_QPS)")
	fs.IntVar(&c.opts.NewNamespaces, "new-namespaces", c.opts.NewNamespaces, "namespaces created while the controller runs")
	fs.Float64Var(&c.opts.NewNamespaceRate, "new-namespace-rate", c.opts.NewNamespaceRate, "new namespaces per second")
	fs.DurationVar(&c.opts.RestartWindow, "restart-window", c.opts.RestartWindow, "how long writes are counted after a restart")
	fs.IntVar(&c.opts.FailoverRuns, "failover-runs", c.opts.FailoverRuns, "failovers after SIGKILL, and after SIGTERM")
	fs.BoolVar(&c.keep, "keep", false, "keep the working directory (controller logs and binary)")
	if err := fs.Parse(args); err != nil {
		return cli{}, err
	}
	if fs.NArg() > 0 {
		return cli{}, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " "))
	}
	c.opts.Sizes = sizes
	if large && !slices.Contains(c.opts.Sizes, 10000) {
		c.opts.Sizes = append(c.opts.Sizes, 10000)
	}
	if large {
		c.opts.CreateServiceAccounts = true
	}
	c.opts.ControllerEnv = env
	c.opts.RuntimeEnv = goEnv
	switch {
	case len(c.opts.Sizes) == 0:
		return cli{}, errors.New("-n: no sizes")
	case c.opts.Concurrency < 1:
		return cli{}, errors.New("-concurrency must be at least 1")
	case c.opts.NewNamespaceRate <= 0:
		return cli{}, errors.New("-new-namespace-rate must be positive")
	case c.opts.FailoverRuns < 0 || c.opts.NewNamespaces < 0:
		return cli{}, errors.New("-failover-runs and -new-namespaces must not be negative")
	}
	return c, nil
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	c, err := parseFlags(args, stderr)
	if err != nil {
		return err
	}
	c.opts.Log = slog.New(slog.NewTextHandler(stderr, nil))
	dir, err := os.MkdirTemp("", "kube-ecr-refresher-bench-")
	if err != nil {
		return fmt.Errorf("create working dir: %w", err)
	}
	c.opts.WorkDir = dir
	defer func() {
		if c.keep {
			fmt.Fprintf(stderr, "kept %s\n", dir)
			return
		}
		_ = os.RemoveAll(dir)
	}()

	rep, runErr := Run(ctx, c.opts)
	rep.Command = "bench " + strings.Join(args, " ")
	if len(rep.Results) > 0 || runErr == nil {
		if err := writeTable(stdout, rep); err != nil {
			return errors.Join(runErr, err)
		}
	}
	if c.jsonPath != "" {
		if err := writeJSON(c.jsonPath, rep); err != nil {
			return errors.Join(runErr, err)
		}
		fmt.Fprintf(stderr, "wrote %s\n", c.jsonPath)
	}
	return runErr
}

func writeJSON(path string, rep *Report) error {
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return fmt.Errorf("encode results: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write results: %w", err)
	}
	return nil
}

// intList is a comma-separated list of positive integers.
type intList []int

func (l *intList) String() string {
	var s []string
	for _, n := range *l {
		s = append(s, strconv.Itoa(n))
	}
	return strings.Join(s, ",")
}

func (l *intList) Set(v string) error {
	var out []int
	for f := range strings.SplitSeq(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return fmt.Errorf("%q is not a positive integer", f)
		}
		out = append(out, n)
	}
	*l = out
	return nil
}

// envFlag collects KEY=VALUE controller settings.
type envFlag map[string]string

func (e envFlag) String() string {
	var s []string
	for k, v := range e {
		s = append(s, k+"="+v)
	}
	slices.Sort(s)
	return strings.Join(s, ",")
}

func (e envFlag) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	k = strings.TrimPrefix(strings.TrimSpace(k), "KUBE_ECR_REFRESHER_")
	if !ok || k == "" {
		return fmt.Errorf("%q: want KEY=VALUE", v)
	}
	if _, known := controllerDefaults()[k]; !known {
		return fmt.Errorf("%q: the controller has no setting %s", v, k)
	}
	e[k] = val
	return nil
}

// runtimeEnvFlag collects Go runtime variables for the controller process.
type runtimeEnvFlag map[string]string

func (e runtimeEnvFlag) String() string { return envFlag(e).String() }

func (e runtimeEnvFlag) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	switch {
	case !ok:
		return fmt.Errorf("%q: want KEY=VALUE", v)
	case k != "GOGC" && k != "GOMEMLIMIT" && k != "GOMAXPROCS" && k != "GODEBUG":
		return fmt.Errorf("%q: only GOGC, GOMEMLIMIT, GOMAXPROCS and GODEBUG are passed on", v)
	}
	e[k] = val
	return nil
}
