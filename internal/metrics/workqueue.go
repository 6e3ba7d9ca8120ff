package metrics

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"k8s.io/client-go/util/workqueue"
)

// workqueueMetrics are client-go's workqueue metrics under their
// conventional names (those of k8s.io/component-base and controller-runtime),
// one series per queue name.
type workqueueMetrics struct {
	depth          *prometheus.GaugeVec
	adds           *prometheus.CounterVec
	latency        *prometheus.HistogramVec
	workDuration   *prometheus.HistogramVec
	unfinished     *prometheus.GaugeVec
	longestRunning *prometheus.GaugeVec
	retries        *prometheus.CounterVec

	mu    sync.Mutex
	names map[string]struct{} // queues created so far
}

func newWorkqueueMetrics() workqueueMetrics {
	const subsystem = "workqueue"
	// 1ns to 1000s, as controller-runtime's.
	buckets := prometheus.ExponentialBuckets(1e-9, 10, 13)
	labels := []string{"name"}
	return workqueueMetrics{
		depth: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Subsystem: subsystem, Name: "depth",
			Help: "Current depth of the workqueue.",
		}, labels),
		adds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Subsystem: subsystem, Name: "adds_total",
			Help: "Adds handled by the workqueue.",
		}, labels),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Subsystem: subsystem, Name: "queue_duration_seconds",
			Help:    "How long an item stays in the workqueue before being requested.",
			Buckets: buckets,
		}, labels),
		workDuration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Subsystem: subsystem, Name: "work_duration_seconds",
			Help:    "How long processing an item from the workqueue takes.",
			Buckets: buckets,
		}, labels),
		unfinished: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Subsystem: subsystem, Name: "unfinished_work_seconds",
			Help: "Seconds of work in progress not yet observed by work_duration; large values suggest stuck workers.",
		}, labels),
		longestRunning: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Subsystem: subsystem, Name: "longest_running_processor_seconds",
			Help: "How long the longest running worker of the workqueue has been running.",
		}, labels),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Subsystem: subsystem, Name: "retries_total",
			Help: "Retries handled by the workqueue.",
		}, labels),
		names: map[string]struct{}{},
	}
}

func (w *workqueueMetrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{w.depth, w.adds, w.latency, w.workDuration, w.unfinished, w.longestRunning, w.retries}
}

// idle zeroes the gauges of every queue: none is running.
func (w *workqueueMetrics) idle() {
	w.mu.Lock()
	defer w.mu.Unlock()
	for name := range w.names {
		w.depth.WithLabelValues(name).Set(0)
		w.unfinished.WithLabelValues(name).Set(0)
		w.longestRunning.WithLabelValues(name).Set(0)
	}
}

// WorkqueueProvider returns the provider to pass in a workqueue's config
// (MetricsProvider); it does not touch client-go's global provider.
//
// A queue may be created again under the same name (the controller creates
// one each time it becomes the leader): it reuses the same series, counters
// and histograms carry on, and gauges start again from 0. At most one queue
// of a given name may be running at a time.
func (m *Metrics) WorkqueueProvider() workqueue.MetricsProvider {
	return workqueueProvider{&m.wq}
}

type workqueueProvider struct{ w *workqueueMetrics }

// gauge returns the gauge of queue name in vec, set to 0: client-go asks for
// it once, when it creates a queue, which starts empty.
func (p workqueueProvider) gauge(vec *prometheus.GaugeVec, name string) prometheus.Gauge {
	p.w.mu.Lock()
	p.w.names[name] = struct{}{}
	p.w.mu.Unlock()
	g := vec.WithLabelValues(name)
	g.Set(0)
	return g
}

func (p workqueueProvider) NewDepthMetric(name string) workqueue.GaugeMetric {
	return p.gauge(p.w.depth, name)
}

func (p workqueueProvider) NewAddsMetric(name string) workqueue.CounterMetric {
	return p.w.adds.WithLabelValues(name)
}

func (p workqueueProvider) NewLatencyMetric(name string) workqueue.HistogramMetric {
	return p.w.latency.WithLabelValues(name)
}

func (p workqueueProvider) NewWorkDurationMetric(name string) workqueue.HistogramMetric {
	return p.w.workDuration.WithLabelValues(name)
}

func (p workqueueProvider) NewUnfinishedWorkSecondsMetric(name string) workqueue.SettableGaugeMetric {
	return p.gauge(p.w.unfinished, name)
}

func (p workqueueProvider) NewLongestRunningProcessorSecondsMetric(name string) workqueue.SettableGaugeMetric {
	return p.gauge(p.w.longestRunning, name)
}

func (p workqueueProvider) NewRetriesMetric(name string) workqueue.CounterMetric {
	return p.w.retries.WithLabelValues(name)
}
