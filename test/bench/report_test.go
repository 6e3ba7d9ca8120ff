package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestDistribution(t *testing.T) {
	var ds []time.Duration
	for i := 1; i <= 200; i++ {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	tests := []struct {
		name string
		in   []time.Duration
		want Dist
	}{
		{name: "Nearest-rank percentiles of 200 values", in: ds, want: Dist{P50: 0.1, P95: 0.19, P99: 0.198, Max: 0.2}},
		{name: "One value is every percentile", in: []time.Duration{time.Second}, want: Dist{P50: 1, P95: 1, P99: 1, Max: 1}},
		{name: "No values give zeros", want: Dist{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.want, distribution(tt.in)); diff != "" {
				t.Errorf("distribution (-want +got):\n%s", diff)
			}
		})
	}
}

// goodResult meets every goal at n.
func goodResult(n int) Result {
	return Result{
		N:             n,
		Floor:         Floor{CreateSeconds: 1, UpdateSeconds: 1},
		Install:       Install{Ratio: 1.2, ECRCalls: 1},
		Refresh:       Refresh{Measured: true, Ratio: 1.1, ECRCalls: 1},
		NewNamespaces: Latency{Count: 200, Served: Dist{P99: 0.2}},
		Restart:       Restart{Leader: true},
		Failover: Failover{
			LeaseDuration: "15s",
			Kill:          []FailoverRun{{SecretSeconds: 15.5}},
			Term:          []FailoverRun{{SecretSeconds: 1.5}},
		},
		Memory: Memory{PeakRSSBytes: 40 << 20},
	}
}

func TestEvaluateTargets(t *testing.T) {
	statuses := func(ts []Target) map[string]string {
		out := map[string]string{}
		for _, t := range ts {
			out[t.Name] = t.Status
		}
		return out
	}
	allPass := map[string]string{
		"Cold install": statusPass, "Steady refresh": statusPass, "New-namespace latency": statusPass,
		"Failover after SIGKILL": statusPass, "Failover after SIGTERM": statusPass, "Writes on restart": statusPass,
		"ECR calls": statusPass, "Peak RSS": statusPass,
	}
	with := func(changes map[string]string) map[string]string {
		out := map[string]string{}
		for k, v := range allPass {
			out[k] = v
		}
		for k, v := range changes {
			out[k] = v
		}
		return out
	}
	tests := []struct {
		name    string
		results []Result
		change  func(rs []Result)
		want    map[string]string
	}{
		{
			name:    "A run meeting every goal passes every target",
			results: []Result{goodResult(1000), goodResult(10000)},
			want:    allPass,
		},
		{
			name:    "Without N = 1000 and N = 10000 those targets are not measured",
			results: []Result{goodResult(100)},
			want:    with(map[string]string{"Cold install": statusNone, "Peak RSS": statusNone}),
		},
		{
			name:    "A slow install at N = 1000 misses; other sizes do not count",
			results: []Result{goodResult(100), goodResult(1000), goodResult(10000)},
			change:  func(rs []Result) { rs[0].Install.Ratio = 9; rs[1].Install.Ratio = 1.6 },
			want:    with(map[string]string{"Cold install": statusMiss}),
		},
		{
			name:    "One slow refresh at any size misses",
			results: []Result{goodResult(1000), goodResult(10000)},
			change:  func(rs []Result) { rs[1].Refresh.Ratio = 1.51 },
			want:    with(map[string]string{"Steady refresh": statusMiss}),
		},
		{
			name:    "A failover after SIGKILL beyond lease + 1 s misses",
			results: []Result{goodResult(1000), goodResult(10000)},
			change:  func(rs []Result) { rs[0].Failover.Kill = append(rs[0].Failover.Kill, FailoverRun{SecretSeconds: 16.2}) },
			want:    with(map[string]string{"Failover after SIGKILL": statusMiss}),
		},
		{
			name:    "A failover after SIGTERM beyond 2 s misses",
			results: []Result{goodResult(1000), goodResult(10000)},
			change:  func(rs []Result) { rs[1].Failover.Term[0].SecretSeconds = 2.1 },
			want:    with(map[string]string{"Failover after SIGTERM": statusMiss}),
		},
		{
			name:    "One write on restart misses",
			results: []Result{goodResult(1000), goodResult(10000)},
			change:  func(rs []Result) { rs[0].Restart.APIServerWrites = 1 },
			want:    with(map[string]string{"Writes on restart": statusMiss}),
		},
		{
			name:    "A restarted controller that never led proves nothing and misses",
			results: []Result{goodResult(1000), goodResult(10000)},
			change:  func(rs []Result) { rs[0].Restart.Leader = false },
			want:    with(map[string]string{"Writes on restart": statusMiss}),
		},
		{
			name:    "Two ECR calls for one refresh miss",
			results: []Result{goodResult(1000), goodResult(10000)},
			change:  func(rs []Result) { rs[1].Refresh.ECRCalls = 2 },
			want:    with(map[string]string{"ECR calls": statusMiss}),
		},
		{
			name:    "Memory above 64 MiB at N = 10000 misses",
			results: []Result{goodResult(1000), goodResult(10000)},
			change:  func(rs []Result) { rs[1].Memory.PeakRSSBytes = 65 << 20 },
			want:    with(map[string]string{"Peak RSS": statusMiss}),
		},
		{
			name:    "A p99 of exactly 0.5 s misses",
			results: []Result{goodResult(1000), goodResult(10000)},
			change:  func(rs []Result) { rs[0].NewNamespaces.Served.P99 = 0.5 },
			want:    with(map[string]string{"New-namespace latency": statusMiss}),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.change != nil {
				tt.change(tt.results)
			}
			got := statuses(evaluateTargets(&Report{Results: tt.results}))
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("target statuses (-want +got):\n%s", diff)
			}
		})
	}
}

func TestWriteTable(t *testing.T) {
	rep := &Report{
		Controller: map[string]string{"WORKERS": "8"},
		Changed:    []string{"MIN_REFRESH_INTERVAL"},
		Results:    []Result{goodResult(100), goodResult(1000)},
	}
	rep.Targets = evaluateTargets(rep)
	var b bytes.Buffer
	if err := writeTable(&b, rep); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{"N = 100", "N = 1000", "WORKERS=8", "changed from the product defaults: MIN_REFRESH_INTERVAL",
		"1.20× floor(2N)", "Cold install", "pass"} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
}
