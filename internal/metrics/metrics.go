// Package metrics owns the Prometheus side: the controller's metrics, the ECR
// and workqueue instrumentation that feed them, and the /metrics handler.
//
// Every metric lives on the registry given to New; nothing is global. No label
// ever carries a token, a password or a namespace name.
package metrics

import (
	"fmt"
	"net/http"
	"runtime"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"k8s.io/utils/clock"

	"github.com/kube-ecr-refresher/kube-ecr-refresher/internal/registry"
)

const namespace = "kube_ecr_refresher"

const (
	resultSuccess = "success"
	resultError   = "error"
)

// durationBuckets cover one ECR round trip or one refresh attempt: 10ms to 30s.
func durationBuckets() []float64 {
	return []float64{0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}
}

// Metrics holds the controller's metrics. It implements refresher.Observer;
// its methods are safe for concurrent use.
type Metrics struct {
	clock clock.PassiveClock

	tokenExpiry     *prometheus.GaugeVec
	lastRefresh     prometheus.Gauge
	refreshAttempts *prometheus.CounterVec
	refreshDuration prometheus.Histogram
	namespaceSyncs  *prometheus.CounterVec
	writes          *prometheus.CounterVec
	ecrDuration     *prometheus.HistogramVec
	leader          prometheus.Gauge
	clockSkew       prometheus.Gauge
	expiredTokens   prometheus.Counter
	registryFails   *prometheus.CounterVec
	buildInfo       *prometheus.GaugeVec

	wq workqueueMetrics

	mu    sync.Mutex
	hosts map[string]struct{} // registries with a token_expiry series
}

// New creates the metrics and registers them on reg.
func New(reg prometheus.Registerer) (*Metrics, error) {
	m := &Metrics{
		clock: clock.RealClock{},
		tokenExpiry: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace,
			Name:      "token_expiry_timestamp_seconds",
			Help:      "Unix time at which the ECR token written by this replica expires, per registry host. Present only while this replica leads.",
		}, []string{"registry"}),
		lastRefresh: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace,
			Name:      "last_successful_refresh_timestamp_seconds",
			Help:      "Unix time at which this replica last fetched an ECR token successfully; 0 if it never did.",
		}),
		refreshAttempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "refresh_attempts_total",
			Help:      "ECR token refresh attempts, by result (success or error).",
		}, []string{"result"}),
		refreshDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Namespace: namespace,
			Name:      "refresh_duration_seconds",
			Help:      "Time taken by one ECR token refresh attempt, fetch and decoding included.",
			Buckets:   durationBuckets(),
		}),
		namespaceSyncs: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "namespace_syncs_total",
			Help:      "Namespace syncs, by result (success, error, skipped or cleaned).",
		}, []string{"result"}),
		writes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "writes_total",
			Help:      "Writes made to the Kubernetes API (or, in dry-run, that would be made), by kind (secret or serviceaccount) and operation (create, update or delete).",
		}, []string{"kind", "operation"}),
		ecrDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: namespace,
			Name:      "ecr_request_duration_seconds",
			Help:      "Duration of ECR API requests, by operation and result (success or error).",
			Buckets:   durationBuckets(),
		}, []string{"operation", "result"}),
		leader: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace,
			Name:      "leader",
			Help:      "1 if this replica is the leader, 0 otherwise.",
		}),
		clockSkew: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: namespace,
			Name:      "ecr_clock_skew_seconds",
			Help:      "This machine's clock minus ECR's, from the Date header of the last token answer; token lifetimes are measured on ECR's clock.",
		}),
		expiredTokens: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "expired_tokens_total",
			Help:      "ECR tokens that were already expired by ECR's own clock when fetched.",
		}),
		registryFails: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: namespace,
			Name:      "registry_refresh_failures_total",
			Help:      "Token fetches in which this registry's ECR call failed while others succeeded; its last good credentials are kept until they expire.",
		}, []string{"registry"}),
		buildInfo: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: namespace,
			Name:      "build_info",
			Help:      "Always 1; labelled with the version of kube-ecr-refresher and of Go it was built with.",
		}, []string{"version", "goversion"}),
		wq:    newWorkqueueMetrics(),
		hosts: map[string]struct{}{},
	}
	// Label values known in advance start at 0, so that rate() and increase()
	// see a series before the first event. They are internal/refresher's
	// (a test checks it), which this package does not import.
	for _, r := range []string{resultSuccess, resultError} {
		m.refreshAttempts.WithLabelValues(r)
		m.ecrDuration.WithLabelValues(opGetAuthorizationToken, r)
	}
	for _, r := range []string{"success", "error", "skipped", "cleaned"} {
		m.namespaceSyncs.WithLabelValues(r)
	}
	for _, kind := range []string{"secret", "serviceaccount"} {
		for _, op := range []string{"create", "update", "delete"} {
			m.writes.WithLabelValues(kind, op)
		}
	}

	for _, c := range m.collectors() {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	return m, nil
}

func (m *Metrics) collectors() []prometheus.Collector {
	return append([]prometheus.Collector{
		m.tokenExpiry, m.lastRefresh, m.refreshAttempts, m.refreshDuration,
		m.namespaceSyncs, m.writes, m.ecrDuration, m.leader, m.clockSkew, m.expiredTokens, m.registryFails, m.buildInfo,
	}, m.wq.collectors()...)
}

// SetBuildInfo sets build_info for version and the running Go version.
func (m *Metrics) SetBuildInfo(version string) {
	m.buildInfo.Reset()
	m.buildInfo.WithLabelValues(version, runtime.Version()).Set(1)
}

// RefreshAttempt counts one token fetch and records its duration.
func (m *Metrics) RefreshAttempt(err error, duration time.Duration) {
	m.refreshAttempts.WithLabelValues(result(err)).Inc()
	m.refreshDuration.Observe(duration.Seconds())
}

// TokenFetched records the expiry of tok per registry host, deleting the
// series of hosts it no longer includes, and the time it was fetched.
func (m *Metrics) TokenFetched(tok registry.Credentials) {
	m.mu.Lock()
	defer m.mu.Unlock()
	seen := make(map[string]struct{}, len(tok.Auths))
	for _, a := range tok.Auths {
		seen[a.Host] = struct{}{}
		m.tokenExpiry.WithLabelValues(a.Host).Set(unixSeconds(tok.ExpiresAt))
	}
	for h := range m.hosts {
		if _, ok := seen[h]; !ok {
			m.tokenExpiry.DeleteLabelValues(h)
		}
	}
	m.hosts = seen
	m.lastRefresh.Set(unixSeconds(tok.FetchedAt))
}

// ClockSkew records this machine's clock minus ECR's.
func (m *Metrics) ClockSkew(d time.Duration) { m.clockSkew.Set(d.Seconds()) }

// ExpiredTokenFetched counts a token already expired by ECR's own clock.
func (m *Metrics) ExpiredTokenFetched() { m.expiredTokens.Inc() }

// RegistryFailed counts a failed call of one registry group.
func (m *Metrics) RegistryFailed(registry string) { m.registryFails.WithLabelValues(registry).Inc() }

// NamespaceSynced counts one namespace sync by result; the namespace itself
// is not a label.
func (m *Metrics) NamespaceSynced(_, result string) {
	m.namespaceSyncs.WithLabelValues(result).Inc()
}

// Wrote counts one write by kind and operation; the namespace is not a label.
func (m *Metrics) Wrote(kind, op, _ string) {
	m.writes.WithLabelValues(kind, op).Inc()
}

// Leading sets the leader gauge. On losing leadership the token expiry
// series are deleted, since only the leader's token is the one in the
// cluster, and the workqueue gauges are zeroed, since a follower has no queue.
func (m *Metrics) Leading(leading bool) {
	if leading {
		m.leader.Set(1)
		return
	}
	m.leader.Set(0)
	m.mu.Lock()
	m.tokenExpiry.Reset()
	m.hosts = map[string]struct{}{}
	m.mu.Unlock()
	m.wq.idle()
}

// NewRegistry returns a registry with the Go runtime and process collectors.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	// Cannot fail: the registry is new and the two collectors do not overlap.
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return reg
}

// Handler serves the metrics of reg in the Prometheus exposition formats. It
// also counts its own scrapes and errors on reg (promhttp_metric_handler_*).
func Handler(reg *prometheus.Registry) http.Handler {
	return promhttp.InstrumentMetricHandler(reg, promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
}

func result(err error) string {
	if err != nil {
		return resultError
	}
	return resultSuccess
}

func unixSeconds(t time.Time) float64 {
	return float64(t.UnixNano()) / float64(time.Second)
}
