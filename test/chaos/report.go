package main

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is what a run found; it is printed as a table and written as JSON.
type Report struct {
	Seed            uint64            `json:"seed"`
	Commit          string            `json:"commit"`
	Started         time.Time         `json:"started"`
	DurationSeconds float64           `json:"duration_seconds"`
	Options         reportOptions     `json:"options"`
	Settings        map[string]string `json:"controller_settings"`
	Faults          []FaultStats      `json:"faults"`
	Violations      map[string]int    `json:"violations"`
	Examples        []Violation       `json:"violation_examples"`
	NoLeaderSeconds float64           `json:"no_leader_seconds"`
	// Unserved spans of target namespaces (invariant 1): how many, the
	// longest, and the longest part of one outside blocking faults.
	Gaps                int        `json:"unserved_spans"`
	MaxGapSeconds       float64    `json:"unserved_max_seconds"`
	MaxUnexcusedSeconds float64    `json:"unserved_max_outside_blocking_seconds"`
	Writes              writeStats `json:"writes"`
	ECR                 ecrStats   `json:"ecr"`
	OtherWriters        struct {
		Edits  int64 `json:"edits"`
		Failed int64 `json:"failed"`
	} `json:"other_writers"`
	Namespaces int             `json:"namespaces_created"`
	Replicas   []ReplicaReport `json:"replicas"`
}

type reportOptions struct {
	Interval       string `json:"interval"`
	Namespaces     int    `json:"namespaces"`
	Writers        int    `json:"writers"`
	EditsPerMinute int    `json:"edits_per_minute"`
	RepairBudget   string `json:"repair_budget"`
	Replicas       int    `json:"replicas"`
}

// FaultStats is one fault kind's line of the report.
type FaultStats struct {
	Kind     string `json:"kind"`
	Injected int    `json:"injected"`
	Skipped  int    `json:"skipped"`
	Repaired int    `json:"repaired"`
	// Overlapped: another fault that takes the leader or the token away
	// began before this one's repair completed; not in the percentiles.
	Overlapped int `json:"overlapped"`
	// ECRCalls the endpoint answered while faults of this kind lasted
	// (ECR faults only): how often the fault met a real call.
	ECRCalls   int     `json:"ecr_calls_during"`
	Unrepaired int     `json:"unrepaired"`
	P50        float64 `json:"repair_p50_seconds"`
	P99        float64 `json:"repair_p99_seconds"`
	Max        float64 `json:"repair_max_seconds"`
}

// ReplicaReport is one replica slot's line of the report.
type ReplicaReport struct {
	Slot         int   `json:"slot"`
	Processes    int   `json:"processes"`
	Restarts     int   `json:"restarts"`
	PeakRSSBytes int64 `json:"peak_rss_bytes"`
}

// Failed reports whether any invariant was violated.
func (r *Report) Failed() bool {
	for _, n := range r.Violations {
		if n > 0 {
			return true
		}
	}
	return false
}

func (h *harness) report(phaseEnd time.Time) (*Report, error) {
	b, err := os.ReadFile(h.plane.AuditLog())
	if err != nil {
		return nil, fmt.Errorf("read audit log: %w", err)
	}
	writes, err := parseAudit(bytes.NewReader(b))
	if err != nil {
		return nil, fmt.Errorf("parse audit log: %w", err)
	}
	fraction := 0.5
	if v, err := strconv.ParseFloat(h.env["REFRESH_REMAINING_FRACTION"], 64); err == nil {
		fraction = v
	}
	minInterval, err := time.ParseDuration(h.env["MIN_REFRESH_INTERVAL"])
	if err != nil {
		minInterval = time.Minute
	}
	for _, v := range checkOneWriter(writes, h.env["LEASE_NAME"]) {
		h.w.violate(v)
	}
	for _, v := range checkWriteStorm(writes, h.w, fraction) {
		h.w.violate(v)
	}
	answers := h.ecr.Answers()
	paused := map[string][]window{}
	h.mu.Lock()
	for _, f := range h.faults {
		if f.Kind == StopLeader {
			paused[accessKeyFor(f.Target)] = append(paused[accessKeyFor(f.Target)], window{from: f.Start, to: f.End})
		}
	}
	h.mu.Unlock()
	for _, v := range checkECRStorm(answers, fraction, minInterval, paused) {
		h.w.violate(v)
	}

	rep := &Report{
		Seed: h.opts.Seed, Commit: h.commit, Started: h.started,
		DurationSeconds: phaseEnd.Sub(h.started).Seconds(),
		Options: reportOptions{Interval: h.opts.Interval.String(), Namespaces: h.opts.Namespaces, Writers: h.opts.Writers,
			EditsPerMinute: h.opts.EditsPerMinute, RepairBudget: h.opts.RepairBudget.String(), Replicas: h.opts.Replicas},
		Settings:   h.env,
		Violations: map[string]int{},
		Writes:     countWrites(writes),
		ECR:        countECR(answers),
	}
	repairs, open := h.check.repairTimes()
	overlapped := h.check.overlaps()
	during := map[string]int{}
	h.mu.Lock()
	for _, f := range h.faults {
		if !strings.HasPrefix(f.Kind, "ecr-") {
			continue
		}
		for _, a := range answers {
			if !a.Time.Before(f.Start) && !a.Time.After(f.End) {
				during[f.Kind]++
			}
		}
	}
	h.mu.Unlock()
	h.mu.Lock()
	for _, k := range Kinds {
		fs := FaultStats{Kind: k, Injected: h.injected[k], Skipped: h.skipped[k], Unrepaired: open[k], Overlapped: overlapped[k], ECRCalls: during[k]}
		ds := repairs[k]
		slices.Sort(ds)
		fs.Repaired = len(ds)
		if len(ds) > 0 {
			fs.P50, fs.P99, fs.Max = quantile(ds, 0.5).Seconds(), quantile(ds, 0.99).Seconds(), ds[len(ds)-1].Seconds()
		}
		rep.Faults = append(rep.Faults, fs)
	}
	rep.NoLeaderSeconds = h.noLeader.Seconds()
	rep.Namespaces = h.seq
	h.mu.Unlock()
	h.w.mu.Lock()
	rep.Gaps, rep.MaxGapSeconds, rep.MaxUnexcusedSeconds = h.w.gaps, h.w.maxGap.Seconds(), h.w.maxUnexcused.Seconds()
	for _, inv := range Invariants {
		rep.Violations[inv] = h.w.vcount[inv]
		rep.Examples = append(rep.Examples, h.w.violations[inv]...)
	}
	h.w.mu.Unlock()
	rep.OtherWriters.Edits = h.ledger.edits.Load()
	rep.OtherWriters.Failed = h.ledger.failed.Load()
	for _, s := range h.slots {
		rs := s.replicas()
		rr := ReplicaReport{Slot: s.index, Processes: len(rs), Restarts: max(len(rs)-1, 0)}
		for _, r := range rs {
			rr.PeakRSSBytes = max(rr.PeakRSSBytes, r.peak())
		}
		rep.Replicas = append(rep.Replicas, rr)
	}
	return rep, nil
}

// quantile of sorted durations (nearest rank).
func quantile(sorted []time.Duration, q float64) time.Duration {
	i := int(float64(len(sorted))*q+0.5) - 1
	return sorted[min(max(i, 0), len(sorted)-1)]
}

func gitDescribe() string {
	cmd := exec.Command("git", "describe", "--always", "--dirty")
	cmd.Dir = repoRoot()
	out, err := cmd.Output()
	if err != nil {
		return "unknown"
	}
	return strings.TrimSpace(string(out))
}

// writeTable prints the report for people.
func writeTable(w io.Writer, r *Report) error {
	fmt.Fprintf(w, "chaos run: seed %d, commit %s, %s of faults (interval %s, %d namespaces, %d other writers at %d edits/min, repair budget %s)\n\n",
		r.Seed, r.Commit, (time.Duration(r.DurationSeconds) * time.Second).Round(time.Second), r.Options.Interval,
		r.Options.Namespaces, r.Options.Writers, r.Options.EditsPerMinute, r.Options.RepairBudget)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "fault\tinjected\tnot injected\tECR calls during\trepaired\toverlapped\tunrepaired\trepair p50 s\tp99 s\tmax s\t")
	for _, f := range r.Faults {
		calls := "-"
		if strings.HasPrefix(f.Kind, "ecr-") {
			calls = strconv.Itoa(f.ECRCalls)
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%s\t%d\t%d\t%d\t%.2f\t%.2f\t%.2f\t\n", f.Kind, f.Injected, f.Skipped, calls, f.Repaired, f.Overlapped, f.Unrepaired, f.P50, f.P99, f.Max)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "invariant\tviolations\t")
	for _, inv := range Invariants {
		fmt.Fprintf(tw, "%s\t%d\t\n", inv, r.Violations[inv])
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(w, "\ntime without a leader: %.1f s\n", r.NoLeaderSeconds)
	fmt.Fprintf(w, "unserved spans: %d, longest %.1f s, longest outside blocking faults %.1f s (budget %s)\n",
		r.Gaps, r.MaxGapSeconds, r.MaxUnexcusedSeconds, r.Options.RepairBudget)
	fmt.Fprintf(w, "controller writes: %d Secret, %d ServiceAccount, %d failed; %d Lease writes\n",
		r.Writes.SecretWrites, r.Writes.ServiceAccountWrites, r.Writes.Failed, r.Writes.LeaseWrites)
	fmt.Fprintf(w, "ECR calls: %d (%d failed); tokens %d (%d short-lived, %d already expired)\n",
		r.ECR.Calls, r.ECR.Failed, r.ECR.Tokens, r.ECR.ShortTokens, r.ECR.ExpiredTokens)
	fmt.Fprintf(w, "other writers: %d edits (%d failed); namespaces created: %d\n", r.OtherWriters.Edits, r.OtherWriters.Failed, r.Namespaces)
	for _, rr := range r.Replicas {
		fmt.Fprintf(w, "replica %d: %d processes (%d restarts), peak RSS %.1f MiB\n", rr.Slot, rr.Processes, rr.Restarts, float64(rr.PeakRSSBytes)/(1<<20))
	}
	if len(r.Examples) > 0 {
		fmt.Fprintln(w, "\nviolations:")
		for _, v := range r.Examples {
			fmt.Fprintf(w, "  %s %s %s %s\n", v.Invariant, v.Time.Format(time.RFC3339Nano), v.Namespace, v.Detail)
		}
	}
	return nil
}
