package main

import "time"

// Report is one run of the benchmark: what ran where, and the results at
// each number of namespaces. It is written as JSON with -json.
type Report struct {
	StartedAt time.Time `json:"started_at"`
	Command   string    `json:"command"`
	Machine   Machine   `json:"machine"`
	// ControllerSource says what was measured: `git describe --always
	// --dirty` of the tree the binary was built from, or the binary given.
	ControllerSource string `json:"controller_source"`
	// Controller holds the effective value of each controller setting that
	// matters to the results; Changed names those the bench run set away
	// from the product's defaults.
	Controller map[string]string `json:"controller"`
	Changed    []string          `json:"changed"`
	Results    []Result          `json:"results"`
	Targets    []Target          `json:"targets"`
	// Error is set when the run stopped early; Results holds what completed.
	Error string `json:"error,omitempty"`
}

// Machine describes where the run happened.
type Machine struct {
	CPUs      int    `json:"cpus"`
	CPUModel  string `json:"cpu_model"`
	GoVersion string `json:"go_version"`
	Kernel    string `json:"kernel"`
	// LoadAverage is /proc/loadavg's 1-minute value when the run started.
	LoadAverage string `json:"load_average"`
}

// Result is everything measured at one number of namespaces, on a fresh
// control plane.
type Result struct {
	N             int      `json:"n"`
	Setup         Setup    `json:"setup"`
	Floor         Floor    `json:"floor"`
	Install       Install  `json:"cold_install"`
	Refresh       Refresh  `json:"steady_refresh"`
	NewNamespaces Latency  `json:"new_namespaces"`
	Restart       Restart  `json:"restart"`
	Failover      Failover `json:"failover"`
	Memory        Memory   `json:"memory"`
	Errors        []string `json:"errors,omitempty"`
}

// Setup is what was done before any clock started.
type Setup struct {
	ControlPlaneSeconds float64 `json:"control_plane_seconds"`
	NamespacesSeconds   float64 `json:"namespaces_seconds"`
	// ServiceAccountsBy is who created the default ServiceAccounts of the N
	// namespaces: kube-controller-manager, or the bench (-create-service-accounts).
	ServiceAccountsBy      string  `json:"service_accounts_by"`
	ServiceAccountsSeconds float64 `json:"service_accounts_seconds"`
}

// Floor is the kube-apiserver's own limit: N Secret creates, then N updates,
// by a direct client without rate limit at Concurrency requests in flight.
type Floor struct {
	Concurrency   int     `json:"concurrency"`
	CreateSeconds float64 `json:"create_seconds"`
	UpdateSeconds float64 `json:"update_seconds"`
	// CPU is the control plane's; ClientSeconds is the bench process's own
	// CPU time meanwhile (the floor's client and the bench's watches).
	CPU           CPU     `json:"cpu_seconds"`
	ClientSeconds float64 `json:"client_cpu_seconds"`
}

// WritesSeconds is the floor for 2N writes: N creates plus N updates.
func (f Floor) WritesSeconds() float64 { return f.CreateSeconds + f.UpdateSeconds }

// CPU is CPU time (user + system) used during a phase, in seconds.
type CPU struct {
	Controller float64 `json:"controller"`
	APIServer  float64 `json:"kube_apiserver"`
	Etcd       float64 `json:"etcd"`
}

// Install is the cold install: N namespaces exist, the controller starts.
type Install struct {
	// Seconds runs from the controller's exec to the moment the last
	// namespace had a valid Secret and a default ServiceAccount listing it.
	Seconds float64 `json:"seconds"`
	// FirstWriteSeconds runs from exec to the first Secret seen.
	FirstWriteSeconds float64 `json:"first_write_seconds"`
	// Ratio is Seconds over the floor for 2N writes.
	Ratio float64 `json:"ratio_to_floor"`
	// ControllerWrites is kube_ecr_refresher_writes_total; APIServerWrites
	// counts write requests to Secrets and ServiceAccounts from the
	// kube-apiserver's apiserver_request_total (conflicts included).
	ControllerWrites int64 `json:"controller_writes"`
	APIServerWrites  int64 `json:"apiserver_writes"`
	ECRCalls         int64 `json:"ecr_calls"`
	CPU              CPU   `json:"cpu_seconds"`
}

// Refresh is a forced token refresh with every namespace already served.
type Refresh struct {
	// Measured is false when the refresh could not be measured; Note says why.
	Measured bool   `json:"measured"`
	Note     string `json:"note,omitempty"`
	// AfterSeconds is when, after the first token, the second was due.
	AfterSeconds float64 `json:"after_seconds"`
	// Seconds runs from the second ECR call to the moment the last Secret
	// carried the new token.
	Seconds float64 `json:"seconds"`
	// Ratio is Seconds over the floor for N updates.
	Ratio            float64 `json:"ratio_to_floor"`
	ControllerWrites int64   `json:"controller_writes"`
	APIServerWrites  int64   `json:"apiserver_writes"`
	ECRCalls         int64   `json:"ecr_calls"`
	CPU              CPU     `json:"cpu_seconds"`
}

// Latency is the new-namespace latency: namespaces created at a steady rate
// while the controller runs, each timed from its create call until its
// Secret and ServiceAccount entry were both seen.
type Latency struct {
	Count         int     `json:"count"`
	RatePerSecond float64 `json:"rate_per_second"`
	Served        Dist    `json:"served_seconds"`
	// Secret is create → Secret seen; ServiceAccount is create → the default
	// ServiceAccount seen at all (kube-controller-manager's part, which the
	// controller must wait for).
	Secret         Dist `json:"secret_seconds"`
	ServiceAccount Dist `json:"serviceaccount_created_seconds"`
}

// Dist summarizes a set of durations, in seconds.
type Dist struct {
	P50 float64 `json:"p50"`
	P95 float64 `json:"p95"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// Restart is a SIGTERM and restart with every Secret fresh.
type Restart struct {
	WindowSeconds float64 `json:"window_seconds"`
	// StopSeconds is how long the old process took to exit after SIGTERM.
	StopSeconds      float64 `json:"stop_seconds"`
	ControllerWrites int64   `json:"controller_writes"`
	APIServerWrites  int64   `json:"apiserver_writes"`
	// Syncs and Leader show that the restarted controller did lead and look
	// at every namespace within the window.
	Syncs  int64 `json:"namespace_syncs"`
	Leader bool  `json:"leader"`
}

// Failover is leader loss with two replicas.
type Failover struct {
	LeaseDuration string        `json:"lease_duration"`
	RenewDeadline string        `json:"renew_deadline"`
	RetryPeriod   string        `json:"retry_period"`
	Kill          []FailoverRun `json:"sigkill"`
	Term          []FailoverRun `json:"sigterm"`
}

// FailoverRun times one leader loss from the signal.
type FailoverRun struct {
	// LeaseSeconds: until the Lease named another holder.
	LeaseSeconds float64 `json:"lease_seconds"`
	// SecretSeconds: until the new leader's Secret in the namespace created
	// right after the signal was seen.
	SecretSeconds float64 `json:"secret_seconds"`
	// ServedSeconds: until that namespace's ServiceAccount listed it too.
	ServedSeconds float64 `json:"served_seconds"`
	// ExitSeconds: until the old leader's process exited.
	ExitSeconds float64 `json:"exit_seconds"`
}

// Memory is the controller's resident memory.
type Memory struct {
	// PeakRSSBytes is VmHWM of the controller that did the install, the
	// refresh and the new namespaces, read just before it was stopped.
	PeakRSSBytes int64 `json:"peak_rss_bytes"`
	// RSSBytes is its VmRSS at the same moment; RSSFileBytes the part of
	// it that maps files (the binary), the rest is anonymous memory.
	RSSBytes     int64 `json:"rss_bytes"`
	RSSFileBytes int64 `json:"rss_file_bytes"`
	// RestartPeakRSSBytes is VmHWM of the restarted controller at the end
	// of the restart window: caches full, every namespace checked, no writes.
	RestartPeakRSSBytes int64 `json:"restart_peak_rss_bytes"`
	// MaxRSSAnyBytes is the largest VmHWM of any controller process in this
	// N (the restarted and failover replicas included), each read before it
	// was stopped or signalled.
	MaxRSSAnyBytes int64 `json:"max_rss_any_process_bytes"`
}

// Target is one goal of issue 6 and whether this run met it.
type Target struct {
	Name   string `json:"name"`
	Goal   string `json:"goal"`
	Value  string `json:"value"`
	Status string `json:"status"` // pass, miss or not measured
}
