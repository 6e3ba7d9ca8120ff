// Command chaos soaks kube-ecr-refresher in faults: three replicas of the
// real binary against a real control plane and the local ECR endpoint,
// with a seeded schedule of process kills, partitions, control plane
// restarts, ECR failures and hostile writers, while checkers hold the
// controller to README's promises. Run it with `make chaos`; see
// docs/reliability.md.
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
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run returns 0 when the run found no violation, 1 when it found one, 2
// when it could not be carried out.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	opts := DefaultOptions()
	fs := flag.NewFlagSet("chaos", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var (
		seed     string
		jsonPath string
		workDir  string
		verbose  bool
	)
	fs.DurationVar(&opts.Duration, "duration", opts.Duration, "how long faults are injected (setup and settling come on top)")
	fs.StringVar(&seed, "seed", "", "seed of the fault schedule (default: from the clock, printed)")
	fs.DurationVar(&opts.Interval, "interval", opts.Interval, "mean time between two faults")
	fs.IntVar(&opts.Namespaces, "namespaces", opts.Namespaces, "target namespaces kept alive by the churn")
	fs.IntVar(&opts.Writers, "writers", opts.Writers, "other controllers editing default ServiceAccounts")
	fs.IntVar(&opts.EditsPerMinute, "edits-per-minute", opts.EditsPerMinute, "edits per minute of all other writers together")
	fs.DurationVar(&opts.RepairBudget, "repair-budget", opts.RepairBudget, "longest a target namespace may stay unserved outside blocking faults")
	fs.StringVar(&jsonPath, "json", "bin/chaos-report.json", "write the report as JSON here (empty: none)")
	fs.StringVar(&workDir, "workdir", "", "keep the control plane, binary and replica logs here (default: a temp dir, removed unless the run fails)")
	fs.BoolVar(&verbose, "v", false, "log every fault as it is injected and healed")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	if seed == "" {
		opts.Seed = uint64(time.Now().UnixNano())
	} else {
		v, err := strconv.ParseUint(seed, 10, 64)
		if err != nil {
			fmt.Fprintf(stderr, "chaos: -seed %q: want an unsigned integer\n", seed)
			return 2
		}
		opts.Seed = v
	}
	keep := workDir != ""
	if workDir == "" {
		d, err := os.MkdirTemp("", "chaos-")
		if err != nil {
			fmt.Fprintln(stderr, "chaos:", err)
			return 2
		}
		workDir = d
	}
	opts.WorkDir = workDir
	level := slog.LevelWarn
	if verbose {
		level = slog.LevelInfo
	}
	opts.Log = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	fmt.Fprintf(stdout, "chaos: seed %d (replay with CHAOS_SEED=%d), %s of faults, work dir %s\n", opts.Seed, opts.Seed, opts.Duration, workDir)

	rep, err := Run(ctx, opts)
	if err != nil {
		fmt.Fprintf(stderr, "chaos: %v (logs in %s)\n", err, workDir)
		return 2
	}
	if err := writeTable(stdout, rep); err != nil {
		fmt.Fprintln(stderr, "chaos:", err)
	}
	if jsonPath != "" {
		if err := writeJSON(jsonPath, rep); err != nil {
			fmt.Fprintln(stderr, "chaos:", err)
			return 2
		}
		fmt.Fprintf(stdout, "report written to %s\n", jsonPath)
	}
	if rep.Failed() {
		fmt.Fprintf(stdout, "FAIL: violations found; replica logs and the audit log are in %s\n", workDir)
		return 1
	}
	if !keep {
		_ = os.RemoveAll(workDir)
	}
	fmt.Fprintln(stdout, "PASS: no invariant violated")
	return 0
}

func writeJSON(path string, rep *Report) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}
