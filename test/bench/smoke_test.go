//go:build integration

package main

import (
	"bytes"
	"log/slog"
	"testing"
	"time"
)

// TestBenchSmoke runs the whole benchmark at N = 20 with short timings, so
// that `make bench` keeps working; it checks what is exact (write and ECR
// call counts), not how fast anything was.
func TestBenchSmoke(t *testing.T) {
	opts := DefaultOptions()
	opts.Sizes = []int{20}
	opts.WorkDir = t.TempDir()
	// Long enough that a loaded 2-core CI machine finishes the install
	// (and its settle and scrape) before the token is due.
	opts.RefreshAfter = 10 * time.Second
	opts.NewNamespaces = 10
	opts.RestartWindow = 3 * time.Second
	opts.FailoverRuns = 1
	opts.Settle = time.Second
	opts.ControllerEnv = map[string]string{"LEASE_DURATION": "6s", "RENEW_DEADLINE": "4s", "RETRY_PERIOD": "1s"}
	var logs bytes.Buffer
	opts.Log = slog.New(slog.NewTextHandler(&logs, nil))

	rep, err := Run(t.Context(), opts)
	var table bytes.Buffer
	if rep != nil {
		_ = writeTable(&table, rep)
	}
	t.Logf("table:\n%s", table.String())
	if err != nil {
		t.Fatalf("Run: %v\nlogs:\n%s", err, logs.String())
	}
	if len(rep.Results) != 1 {
		t.Fatalf("%d results, want 1", len(rep.Results))
	}
	r := rep.Results[0]

	if r.Floor.CreateSeconds <= 0 || r.Floor.UpdateSeconds <= 0 || r.Install.Seconds <= 0 {
		t.Errorf("floor %+v, install %+v: want positive times", r.Floor, r.Install)
	}
	// Every namespace, the bench's and the four system ones: a Secret and a
	// ServiceAccount entry each, and nothing else wrote to either kind.
	if r.Install.ControllerWrites < 2*20 || r.Install.APIServerWrites != r.Install.ControllerWrites {
		t.Errorf("install writes: controller %d, apiserver %d; want equal and at least 40", r.Install.ControllerWrites, r.Install.APIServerWrites)
	}
	if r.Install.ECRCalls != 1 {
		t.Errorf("install made %d ECR calls, want 1", r.Install.ECRCalls)
	}
	if !r.Refresh.Measured {
		t.Fatalf("refresh not measured: %s", r.Refresh.Note)
	}
	if r.Refresh.ECRCalls != 1 || r.Refresh.ControllerWrites < 20 || r.Refresh.APIServerWrites != r.Refresh.ControllerWrites {
		t.Errorf("refresh: %d ECR calls, writes controller %d, apiserver %d; want 1 call and one Secret update per namespace",
			r.Refresh.ECRCalls, r.Refresh.ControllerWrites, r.Refresh.APIServerWrites)
	}
	if r.NewNamespaces.Count != 10 || r.NewNamespaces.Served.Max <= 0 {
		t.Errorf("new namespaces: %+v", r.NewNamespaces)
	}
	if !r.Restart.Leader || r.Restart.Syncs < 20 || r.Restart.ControllerWrites != 0 || r.Restart.APIServerWrites != 0 {
		t.Errorf("restart: %+v; want a leader that synced every namespace and wrote nothing", r.Restart)
	}
	if len(r.Failover.Kill) != 1 || len(r.Failover.Term) != 1 || r.Failover.Kill[0].SecretSeconds <= 0 || r.Failover.Term[0].SecretSeconds <= 0 {
		t.Errorf("failover: %+v", r.Failover)
	}
	if r.Memory.PeakRSSBytes <= 0 || r.Memory.MaxRSSAnyBytes < r.Memory.PeakRSSBytes {
		t.Errorf("memory: %+v; want a peak, and the largest peak at least the install controller's", r.Memory)
	}
	if len(rep.Targets) == 0 {
		t.Error("no targets evaluated")
	}
}
