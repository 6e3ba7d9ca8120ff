package metrics

import (
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"k8s.io/client-go/util/workqueue"
	testingclock "k8s.io/utils/clock/testing"
)

const queueName = "namespaces"

// newQueue creates a queue the way the controller does, with m's provider;
// retries wait an hour so that none comes back during a test.
func newQueue(t *testing.T, m *Metrics, clk *testingclock.FakeClock) workqueue.TypedRateLimitingInterface[string] {
	t.Helper()
	q := workqueue.NewTypedRateLimitingQueueWithConfig(
		workqueue.NewTypedItemExponentialFailureRateLimiter[string](time.Hour, time.Hour),
		workqueue.TypedRateLimitingQueueConfig[string]{Name: queueName, Clock: clk, MetricsProvider: m.WorkqueueProvider()},
	)
	t.Cleanup(q.ShutDown)
	return q
}

// workqueueValues returns the gauges and counters of queue name.
func workqueueValues(m *Metrics) map[string]float64 {
	w := &m.wq
	return map[string]float64{
		"depth":          testutil.ToFloat64(w.depth.WithLabelValues(queueName)),
		"adds":           testutil.ToFloat64(w.adds.WithLabelValues(queueName)),
		"retries":        testutil.ToFloat64(w.retries.WithLabelValues(queueName)),
		"unfinished":     testutil.ToFloat64(w.unfinished.WithLabelValues(queueName)),
		"longestRunning": testutil.ToFloat64(w.longestRunning.WithLabelValues(queueName)),
	}
}

// TestWorkqueueProviderSurvivesRecreation follows the controller across two
// terms as leader: one queue per term, both named "namespaces".
func TestWorkqueueProviderSurvivesRecreation(t *testing.T) {
	m, reg := newMetrics(t)
	clk := testingclock.NewFakeClock(fetchedAt)

	// First term: two adds, one item worked on for 2s then retried, one left
	// in the queue when the term ends.
	m.Leading(true)
	q1 := newQueue(t, m, clk)
	q1.Add("team-a")
	q1.Add("team-b")
	ns, _ := q1.Get()
	clk.Step(2 * time.Second)
	q1.Done(ns)
	q1.AddRateLimited(ns)
	q1.ShutDown()

	got := workqueueValues(m)
	// The queue's own loop sets these two every 500ms of its clock, at a
	// moment this test does not control; they are checked after the term.
	delete(got, "unfinished")
	delete(got, "longestRunning")
	if diff := cmp.Diff(map[string]float64{"depth": 1, "adds": 2, "retries": 1}, got); diff != "" {
		t.Errorf("after the first queue (-want +got):\n%s", diff)
	}
	wantDurations := map[string]observed{"name=" + queueName: {Count: 1, Sum: 2}}
	if diff := cmp.Diff(wantDurations, histograms(t, reg, "workqueue_work_duration_seconds")); diff != "" {
		t.Errorf("work duration (-want +got):\n%s", diff)
	}
	wantLatency := map[string]observed{"name=" + queueName: {Count: 1, Sum: 0}}
	if diff := cmp.Diff(wantLatency, histograms(t, reg, "workqueue_queue_duration_seconds")); diff != "" {
		t.Errorf("queue duration (-want +got):\n%s", diff)
	}

	m.Leading(false)
	want := map[string]float64{"depth": 0, "adds": 2, "retries": 1, "unfinished": 0, "longestRunning": 0}
	if diff := cmp.Diff(want, workqueueValues(m)); diff != "" {
		t.Errorf("after losing leadership (-want +got):\n%s", diff)
	}

	// Second term: a new queue of the same name reuses the series.
	m.Leading(true)
	q2 := newQueue(t, m, clk)
	q2.Add("team-c")
	want = map[string]float64{"depth": 1, "adds": 3, "retries": 1}
	got = workqueueValues(m)
	delete(got, "unfinished")
	delete(got, "longestRunning")
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("after the second queue (-want +got):\n%s", diff)
	}
	if n := testutil.CollectAndCount(m.wq.depth); n != 1 {
		t.Errorf("workqueue_depth has %d series, want 1", n)
	}
}

func TestWorkqueueGaugesStartAtZeroForANewQueue(t *testing.T) {
	tests := []struct {
		name  string
		gauge func(p workqueue.MetricsProvider) workqueue.SettableGaugeMetric
		vec   func(m *Metrics) *prometheus.GaugeVec
	}{
		{
			name: "Depth starts at zero",
			gauge: func(p workqueue.MetricsProvider) workqueue.SettableGaugeMetric {
				return p.NewDepthMetric(queueName).(prometheus.Gauge)
			},
			vec: func(m *Metrics) *prometheus.GaugeVec { return m.wq.depth },
		},
		{
			name: "Unfinished work starts at zero",
			gauge: func(p workqueue.MetricsProvider) workqueue.SettableGaugeMetric {
				return p.NewUnfinishedWorkSecondsMetric(queueName)
			},
			vec: func(m *Metrics) *prometheus.GaugeVec { return m.wq.unfinished },
		},
		{
			name: "Longest running processor starts at zero",
			gauge: func(p workqueue.MetricsProvider) workqueue.SettableGaugeMetric {
				return p.NewLongestRunningProcessorSecondsMetric(queueName)
			},
			vec: func(m *Metrics) *prometheus.GaugeVec { return m.wq.longestRunning },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, _ := newMetrics(t)
			tt.gauge(m.WorkqueueProvider()).Set(42) // left over by a previous queue
			tt.gauge(m.WorkqueueProvider())         // the next queue of that name
			if got := testutil.ToFloat64(tt.vec(m).WithLabelValues(queueName)); got != 0 {
				t.Errorf("gauge = %v, want 0", got)
			}
		})
	}
}

func TestWorkqueueMetricNames(t *testing.T) {
	m, reg := newMetrics(t)
	newQueue(t, m, testingclock.NewFakeClock(fetchedAt)).AddRateLimited("team-a")
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	var got []string
	for _, mf := range mfs {
		if strings.HasPrefix(mf.GetName(), "workqueue_") {
			got = append(got, mf.GetName()+" "+mf.GetType().String())
		}
	}
	want := []string{
		"workqueue_adds_total COUNTER",
		"workqueue_depth GAUGE",
		"workqueue_longest_running_processor_seconds GAUGE",
		"workqueue_queue_duration_seconds HISTOGRAM",
		"workqueue_retries_total COUNTER",
		"workqueue_unfinished_work_seconds GAUGE",
		"workqueue_work_duration_seconds HISTOGRAM",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("workqueue metrics (-want +got):\n%s", diff)
	}
}
