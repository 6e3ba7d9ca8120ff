//go:build integration

package main

import (
	"bytes"
	"log/slog"
	"testing"
	"time"
)

// TestChaos60s is the short soak `make test` runs: one minute of faults
// with a fixed seed, every kind in the schedule, and no invariant violated.
// `make chaos` runs the same harness for longer (docs/reliability.md).
func TestChaos60s(t *testing.T) {
	opts := DefaultOptions()
	opts.Duration = 60 * time.Second
	opts.Seed = 20261203
	opts.Interval = 2 * time.Second
	opts.WorkDir = t.TempDir()
	var logs bytes.Buffer
	opts.Log = slog.New(slog.NewTextHandler(&logs, nil))

	rep, err := Run(t.Context(), opts)
	if err != nil {
		t.Fatalf("Run: %v\nharness log:\n%s", err, logs.String())
	}
	var table bytes.Buffer
	_ = writeTable(&table, rep)
	t.Logf("report:\n%s", table.String())
	if rep.Failed() {
		t.Errorf("invariants violated: %v\nharness log:\n%s", rep.Violations, logs.String())
	}
	// A minute holds one round of the schedule; the four leader faults take
	// 10-25 s each and never overlap, so not all of them fit.
	leaderFaults := 0
	for _, f := range rep.Faults {
		if resourceOf(f.Kind) == "leader" {
			leaderFaults += f.Injected
			continue
		}
		if f.Injected == 0 {
			t.Errorf("no %s fault injected", f.Kind)
		}
	}
	if leaderFaults < 2 {
		t.Errorf("%d leader faults (stop, partitions) injected, want at least 2", leaderFaults)
	}
	if rep.ECR.Tokens == 0 || rep.Writes.SecretWrites == 0 || rep.OtherWriters.Edits == 0 {
		t.Errorf("nothing happened: %d tokens, %d Secret writes, %d other edits", rep.ECR.Tokens, rep.Writes.SecretWrites, rep.OtherWriters.Edits)
	}
}
