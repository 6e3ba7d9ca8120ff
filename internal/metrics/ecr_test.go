package metrics

import (
	"context"
	"errors"
	"testing"
	"time"

	awsecr "github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/kube-ecr-refresher/kube-ecr-refresher/internal/ecr"
)

// The wrapper is an ecr.API, and so is what it wraps.
var (
	_ ecr.API = (*instrumentedECR)(nil)
	_ ecr.API = (*awsecr.Client)(nil)
)

// fakeECR answers with out and err after advancing clock by took, and records
// how many option functions it was passed.
type fakeECR struct {
	clock  *testingclock.FakeClock
	took   time.Duration
	out    *awsecr.GetAuthorizationTokenOutput
	err    error
	optFns int
}

func (f *fakeECR) GetAuthorizationToken(_ context.Context, _ *awsecr.GetAuthorizationTokenInput, optFns ...func(*awsecr.Options)) (*awsecr.GetAuthorizationTokenOutput, error) {
	f.optFns += len(optFns)
	f.clock.Step(f.took)
	return f.out, f.err
}

// observed is the count and sum of one histogram series.
type observed struct {
	Count uint64
	Sum   float64
}

// histograms returns the count and sum of every series of the histogram
// family name, keyed by its label values joined with ",".
func histograms(t *testing.T, g prometheus.Gatherer, name string) map[string]observed {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	got := map[string]observed{}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			got[labelValues(m)] = observed{Count: m.GetHistogram().GetSampleCount(), Sum: m.GetHistogram().GetSampleSum()}
		}
	}
	return got
}

func labelValues(m *dto.Metric) string {
	var s string
	for i, l := range m.GetLabel() {
		if i > 0 {
			s += ","
		}
		s += l.GetName() + "=" + l.GetValue()
	}
	return s
}

func TestInstrumentECR(t *testing.T) {
	const (
		success = "operation=GetAuthorizationToken,result=success"
		failure = "operation=GetAuthorizationToken,result=error"
	)
	denied := errors.New("access denied")
	answer := &awsecr.GetAuthorizationTokenOutput{}
	tests := []struct {
		name  string
		calls []fakeECR
		want  map[string]observed
	}{
		{
			name: "No request leaves both series at zero",
			want: map[string]observed{success: {}, failure: {}},
		},
		{
			name:  "A successful request is recorded as success with its duration",
			calls: []fakeECR{{took: 250 * time.Millisecond, out: answer}},
			want:  map[string]observed{success: {Count: 1, Sum: 0.25}, failure: {}},
		},
		{
			name:  "A failed request is recorded as error with its duration",
			calls: []fakeECR{{took: 2 * time.Second, err: denied}},
			want:  map[string]observed{success: {}, failure: {Count: 1, Sum: 2}},
		},
		{
			name: "Successes and failures are recorded apart",
			calls: []fakeECR{
				{took: time.Second, err: denied},
				{took: 500 * time.Millisecond, out: answer},
				{took: 250 * time.Millisecond, out: answer},
			},
			want: map[string]observed{success: {Count: 2, Sum: 0.75}, failure: {Count: 1, Sum: 1}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, reg := newMetrics(t)
			clk := testingclock.NewFakeClock(fetchedAt)
			m.clock = clk
			for _, c := range tt.calls {
				fake := c
				fake.clock = clk
				api := m.InstrumentECR(&fake)
				in := &awsecr.GetAuthorizationTokenInput{}
				out, err := api.GetAuthorizationToken(t.Context(), in, func(*awsecr.Options) {}, func(*awsecr.Options) {})
				if out != c.out || !errors.Is(err, c.err) {
					t.Errorf("GetAuthorizationToken = %v, %v; want the wrapped API's %v, %v", out, err, c.out, c.err)
				}
				if fake.optFns != 2 {
					t.Errorf("wrapped API got %d option functions, want 2", fake.optFns)
				}
			}
			got := histograms(t, reg, "kube_ecr_refresher_ecr_request_duration_seconds")
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("ecr_request_duration_seconds (-want +got):\n%s", diff)
			}
		})
	}
}
