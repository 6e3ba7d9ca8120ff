package main

import (
	"fmt"
	"io"
	"math"
	"os"
	"reflect"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/kube-ecr-refresher/kube-ecr-refresher/internal/config"
)

// Goals of issue 6.
const (
	goalInstallRatio = 1.5
	goalRefreshRatio = 1.5
	goalNewNSP99     = 0.5 // seconds
	goalTermFailover = 2.0 // seconds
	goalFailoverInc  = 1.0 // seconds beyond the lease duration after SIGKILL
	goalRSSBytes     = 64 << 20
	installGoalN     = 1000
	rssGoalN         = 10000
)

// Target statuses.
const (
	statusPass = "pass"
	statusMiss = "miss"
	statusNone = "not measured"
)

func reflectConfig() reflect.Type { return reflect.TypeFor[config.Config]() }

func describeMachine() Machine {
	m := Machine{CPUs: runtime.NumCPU(), GoVersion: runtime.Version()}
	if b, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		for line := range strings.Lines(string(b)) {
			if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = "Linux " + strings.TrimSpace(string(b))
	}
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		if f := strings.Fields(string(b)); len(f) > 0 {
			m.LoadAverage = f[0]
		}
	}
	return m
}

// distribution summarizes durations with nearest-rank percentiles.
func distribution(ds []time.Duration) Dist {
	if len(ds) == 0 {
		return Dist{}
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	pct := func(p float64) float64 {
		i := int(math.Ceil(p/100*float64(len(s)))) - 1
		return s[max(i, 0)].Seconds()
	}
	return Dist{P50: pct(50), P95: pct(95), P99: pct(99), Max: s[len(s)-1].Seconds()}
}

// evaluateTargets checks the report against the goals of issue 6.
func evaluateTargets(rep *Report) []Target {
	res := rep.Results
	var out []Target
	status := func(measured, ok bool) string {
		switch {
		case !measured:
			return statusNone
		case ok:
			return statusPass
		default:
			return statusMiss
		}
	}

	// Cold install, at N = 1000 (else the largest N measured).
	t := Target{Name: "Cold install", Goal: fmt.Sprintf("≤ %.1f × floor for 2N writes at N = %d", goalInstallRatio, installGoalN)}
	if i := slices.IndexFunc(res, func(r Result) bool { return r.N == installGoalN }); i >= 0 {
		t.Value = fmt.Sprintf("%.2f×", res[i].Install.Ratio)
		t.Status = status(true, res[i].Install.Ratio <= goalInstallRatio)
	} else if len(res) > 0 {
		r := res[len(res)-1]
		t.Value = fmt.Sprintf("%.2f× at N = %d", r.Install.Ratio, r.N)
		t.Status = statusNone
	} else {
		t.Status = statusNone
	}
	out = append(out, t)

	t = Target{Name: "Steady refresh", Goal: fmt.Sprintf("≤ %.1f × floor for N updates", goalRefreshRatio)}
	var vals []string
	ok, measured := true, false
	for _, r := range res {
		if !r.Refresh.Measured {
			vals = append(vals, fmt.Sprintf("not measured (N = %d)", r.N))
			continue
		}
		measured = true
		ok = ok && r.Refresh.Ratio <= goalRefreshRatio
		vals = append(vals, fmt.Sprintf("%.2f× (N = %d)", r.Refresh.Ratio, r.N))
	}
	t.Value, t.Status = strings.Join(vals, ", "), status(measured, ok)
	out = append(out, t)

	t = Target{Name: "New-namespace latency", Goal: fmt.Sprintf("p99 < %.1f s", goalNewNSP99)}
	vals, ok, measured = nil, true, false
	for _, r := range res {
		if r.NewNamespaces.Count == 0 {
			continue
		}
		measured = true
		ok = ok && r.NewNamespaces.Served.P99 < goalNewNSP99
		vals = append(vals, fmt.Sprintf("%.3f s (N = %d)", r.NewNamespaces.Served.P99, r.N))
	}
	t.Value, t.Status = strings.Join(vals, ", "), status(measured, ok)
	out = append(out, t)

	worst := func(runs func(Result) []FailoverRun) (float64, bool) {
		w, found := 0.0, false
		for _, r := range res {
			for _, run := range runs(r) {
				w, found = max(w, run.SecretSeconds), true
			}
		}
		return w, found
	}
	lease := 0.0
	if len(res) > 0 {
		if d, err := time.ParseDuration(res[0].Failover.LeaseDuration); err == nil {
			lease = d.Seconds()
		}
	}
	w, found := worst(func(r Result) []FailoverRun { return r.Failover.Kill })
	out = append(out, Target{
		Name:   "Failover after SIGKILL",
		Goal:   fmt.Sprintf("≤ lease duration + %.0f s (%.0f s)", goalFailoverInc, lease+goalFailoverInc),
		Value:  fmt.Sprintf("worst %.2f s", w),
		Status: status(found, w <= lease+goalFailoverInc),
	})
	w, found = worst(func(r Result) []FailoverRun { return r.Failover.Term })
	out = append(out, Target{
		Name:   "Failover after SIGTERM",
		Goal:   fmt.Sprintf("≤ %.0f s", goalTermFailover),
		Value:  fmt.Sprintf("worst %.2f s", w),
		Status: status(found, w <= goalTermFailover),
	})

	t = Target{Name: "Writes on restart", Goal: "0"}
	vals, ok = nil, true
	for _, r := range res {
		ok = ok && r.Restart.APIServerWrites == 0 && r.Restart.ControllerWrites == 0 && r.Restart.Leader
		vals = append(vals, fmt.Sprintf("%d (N = %d)", r.Restart.APIServerWrites, r.N))
	}
	t.Value, t.Status = strings.Join(vals, ", "), status(len(res) > 0, ok)
	out = append(out, t)

	t = Target{Name: "ECR calls", Goal: "1 per registry per refresh"}
	vals, ok = nil, true
	for _, r := range res {
		ok = ok && r.Install.ECRCalls == 1 && (!r.Refresh.Measured || r.Refresh.ECRCalls == 1)
		vals = append(vals, fmt.Sprintf("%d + %d (N = %d)", r.Install.ECRCalls, r.Refresh.ECRCalls, r.N))
	}
	t.Value, t.Status = strings.Join(vals, ", "), status(len(res) > 0, ok)
	out = append(out, t)

	t = Target{Name: "Peak RSS", Goal: fmt.Sprintf("≤ %d MiB at N = %d", goalRSSBytes>>20, rssGoalN), Status: statusNone}
	if i := slices.IndexFunc(res, func(r Result) bool { return r.N == rssGoalN }); i >= 0 {
		t.Value = mib(res[i].Memory.PeakRSSBytes)
		t.Status = status(true, res[i].Memory.PeakRSSBytes <= goalRSSBytes)
	} else if len(res) > 0 {
		r := res[len(res)-1]
		t.Value = fmt.Sprintf("%s at N = %d", mib(r.Memory.PeakRSSBytes), r.N)
	}
	out = append(out, t)
	return out
}

func mib(b int64) string { return fmt.Sprintf("%.1f MiB", float64(b)/(1<<20)) }

// writeTable prints the report for people: one column per N, then the targets.
func writeTable(w io.Writer, rep *Report) error {
	fmt.Fprintf(w, "kube-ecr-refresher benchmark, %s\n", rep.StartedAt.Format(time.RFC3339))
	fmt.Fprintf(w, "machine: %d CPUs (%s), %s, %s, load %s\n", rep.Machine.CPUs, rep.Machine.CPUModel, rep.Machine.GoVersion, rep.Machine.Kernel, rep.Machine.LoadAverage)
	var set []string
	for _, k := range reportedSettings() {
		set = append(set, k+"="+rep.Controller[k])
	}
	fmt.Fprintf(w, "controller: %s\n", rep.ControllerSource)
	fmt.Fprintf(w, "settings: %s\n", strings.Join(set, " "))
	if len(rep.Changed) > 0 {
		fmt.Fprintf(w, "changed from the product defaults: %s\n", strings.Join(rep.Changed, ", "))
	}
	fmt.Fprintln(w)

	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	row := func(label string, cell func(r Result) string) {
		fmt.Fprint(tw, label)
		for _, r := range rep.Results {
			fmt.Fprint(tw, "\t"+cell(r))
		}
		fmt.Fprintln(tw, "\t")
	}
	head := func(label string) { row(label, func(Result) string { return "" }) }
	s := func(v float64) string { return fmt.Sprintf("%.2f s", v) }
	ms := func(v float64) string { return fmt.Sprintf("%.0f ms", v*1000) }
	cpu := func(c CPU) string { return fmt.Sprintf("%.1f / %.1f / %.1f", c.Controller, c.APIServer, c.Etcd) }
	yes := func(b bool) string {
		if b {
			return "yes"
		}
		return "no"
	}
	runs := func(rs []FailoverRun, f func(FailoverRun) float64) string {
		if len(rs) == 0 {
			return "-"
		}
		var v []string
		for _, r := range rs {
			v = append(v, fmt.Sprintf("%.1f", f(r)))
		}
		return strings.Join(v, ", ") + " s"
	}

	row("", func(r Result) string { return fmt.Sprintf("N = %d", r.N) })
	head("Setup (no clock)")
	row("  control plane start", func(r Result) string { return s(r.Setup.ControlPlaneSeconds) })
	row("  N namespaces / + default SAs", func(r Result) string {
		return fmt.Sprintf("%s / %s (%s)", s(r.Setup.NamespacesSeconds), s(r.Setup.ServiceAccountsSeconds), r.Setup.ServiceAccountsBy)
	})
	head("Floor: direct client, no rate limit")
	row("  N Secret creates", func(r Result) string {
		return fmt.Sprintf("%s (%d in flight)", s(r.Floor.CreateSeconds), r.Floor.Concurrency)
	})
	row("  N Secret updates", func(r Result) string { return s(r.Floor.UpdateSeconds) })
	row("  2N writes", func(r Result) string { return s(r.Floor.WritesSeconds()) })
	row("  CPU s: client / apiserver / etcd", func(r Result) string {
		return fmt.Sprintf("%.1f / %.1f / %.1f", r.Floor.ClientSeconds, r.Floor.CPU.APIServer, r.Floor.CPU.Etcd)
	})
	head("Cold install")
	row("  exec → all served", func(r Result) string {
		return fmt.Sprintf("%s = %.2f× floor(2N)", s(r.Install.Seconds), r.Install.Ratio)
	})
	row("  exec → first Secret", func(r Result) string { return s(r.Install.FirstWriteSeconds) })
	row("  writes: controller / apiserver", func(r Result) string {
		return fmt.Sprintf("%d / %d", r.Install.ControllerWrites, r.Install.APIServerWrites)
	})
	row("  ECR calls", func(r Result) string { return fmt.Sprint(r.Install.ECRCalls) })
	row("  CPU s: controller / apiserver / etcd", func(r Result) string { return cpu(r.Install.CPU) })
	head("Steady refresh")
	row("  due after install's token", func(r Result) string { return s(r.Refresh.AfterSeconds) })
	row("  2nd ECR call → all refreshed", func(r Result) string {
		if !r.Refresh.Measured {
			return "not measured: " + r.Refresh.Note
		}
		return fmt.Sprintf("%s = %.2f× floor(N updates)", s(r.Refresh.Seconds), r.Refresh.Ratio)
	})
	row("  writes: controller / apiserver", func(r Result) string {
		return fmt.Sprintf("%d / %d", r.Refresh.ControllerWrites, r.Refresh.APIServerWrites)
	})
	row("  ECR calls", func(r Result) string { return fmt.Sprint(r.Refresh.ECRCalls) })
	row("  CPU s: controller / apiserver / etcd", func(r Result) string { return cpu(r.Refresh.CPU) })
	head("New namespaces while running")
	row("  created", func(r Result) string {
		return fmt.Sprintf("%d at %.1f/s", r.NewNamespaces.Count, r.NewNamespaces.RatePerSecond)
	})
	dist := func(d Dist) string {
		return fmt.Sprintf("%s / %s / %s / %s", ms(d.P50), ms(d.P95), ms(d.P99), ms(d.Max))
	}
	row("  served p50 / p95 / p99 / max", func(r Result) string { return dist(r.NewNamespaces.Served) })
	row("  Secret p50 / p95 / p99 / max", func(r Result) string { return dist(r.NewNamespaces.Secret) })
	row("  default SA exists (KCM) p50 / ... / max", func(r Result) string { return dist(r.NewNamespaces.ServiceAccount) })
	head("Restart with fresh Secrets")
	row("  old process exit after SIGTERM", func(r Result) string { return s(r.Restart.StopSeconds) })
	row("  writes in first window: ctrl / apiserver", func(r Result) string {
		return fmt.Sprintf("%d / %d (%.0f s)", r.Restart.ControllerWrites, r.Restart.APIServerWrites, r.Restart.WindowSeconds)
	})
	row("  namespaces synced / leader", func(r Result) string {
		return fmt.Sprintf("%d / %s", r.Restart.Syncs, yes(r.Restart.Leader))
	})
	head("Failover, two replicas")
	row("  lease / renew deadline / retry", func(r Result) string {
		return r.Failover.LeaseDuration + " / " + r.Failover.RenewDeadline + " / " + r.Failover.RetryPeriod
	})
	row("  SIGKILL → new Secret", func(r Result) string {
		return runs(r.Failover.Kill, func(f FailoverRun) float64 { return f.SecretSeconds })
	})
	row("  SIGKILL → Lease moved", func(r Result) string {
		return runs(r.Failover.Kill, func(f FailoverRun) float64 { return f.LeaseSeconds })
	})
	row("  SIGTERM → new Secret", func(r Result) string {
		return runs(r.Failover.Term, func(f FailoverRun) float64 { return f.SecretSeconds })
	})
	row("  SIGTERM → Lease moved", func(r Result) string {
		return runs(r.Failover.Term, func(f FailoverRun) float64 { return f.LeaseSeconds })
	})
	row("  SIGTERM → old process exited", func(r Result) string {
		return runs(r.Failover.Term, func(f FailoverRun) float64 { return f.ExitSeconds })
	})
	head("Memory")
	row("  peak RSS (VmHWM), install controller", func(r Result) string { return mib(r.Memory.PeakRSSBytes) })
	row("  RSS then: all (files mapped)", func(r Result) string {
		return fmt.Sprintf("%s (%s)", mib(r.Memory.RSSBytes), mib(r.Memory.RSSFileBytes))
	})
	row("  peak RSS, restarted (no writes)", func(r Result) string { return mib(r.Memory.RestartPeakRSSBytes) })
	row("  largest peak of any replica", func(r Result) string { return mib(r.Memory.MaxRSSAnyBytes) })
	if err := tw.Flush(); err != nil {
		return err
	}

	fmt.Fprintln(w)
	tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "Target\tGoal\tThis run\tStatus\t")
	for _, t := range rep.Targets {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t\n", t.Name, t.Goal, t.Value, t.Status)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if rep.Error != "" {
		fmt.Fprintf(w, "\nstopped early: %s\n", rep.Error)
	}
	return nil
}
