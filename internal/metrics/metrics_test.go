package metrics

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	testingclock "k8s.io/utils/clock/testing"

	"github.com/kube-ecr-refresher/kube-ecr-refresher/internal/refresher"
	"github.com/kube-ecr-refresher/kube-ecr-refresher/internal/registry"
)

// The controller reports through *Metrics.
var _ refresher.Observer = (*Metrics)(nil)

const password = "s3cr3t-password-value"

var (
	fetchedAt = time.Unix(1_800_000_000, 0)
	expiresAt = fetchedAt.Add(12 * time.Hour) // 1800043200
)

func newMetrics(t *testing.T) (*Metrics, *prometheus.Registry) {
	t.Helper()
	reg := prometheus.NewRegistry()
	m, err := New(reg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	m.clock = testingclock.NewFakeClock(fetchedAt)
	return m, reg
}

func token(hosts ...string) registry.Credentials {
	tok := registry.Credentials{FetchedAt: fetchedAt, ExpiresAt: expiresAt}
	for _, h := range hosts {
		tok.Auths = append(tok.Auths, registry.Auth{Host: h, Username: "AWS", Password: password})
	}
	return tok
}

const (
	hostA = "111111111111.dkr.ecr.us-east-1.amazonaws.com"
	hostB = "222222222222.dkr.ecr.eu-west-1.amazonaws.com"
	hostC = "333333333333.dkr.ecr.ap-south-1.amazonaws.com"
)

const (
	helpExpiry = `# HELP kube_ecr_refresher_token_expiry_timestamp_seconds Unix time at which the ECR token written by this replica expires, per registry host. Present only while this replica leads.
# TYPE kube_ecr_refresher_token_expiry_timestamp_seconds gauge
`
	helpLastRefresh = `# HELP kube_ecr_refresher_last_successful_refresh_timestamp_seconds Unix time at which this replica last fetched an ECR token successfully; 0 if it never did.
# TYPE kube_ecr_refresher_last_successful_refresh_timestamp_seconds gauge
`
	helpAttempts = `# HELP kube_ecr_refresher_refresh_attempts_total ECR token refresh attempts, by result (success or error).
# TYPE kube_ecr_refresher_refresh_attempts_total counter
`
	helpSyncs = `# HELP kube_ecr_refresher_namespace_syncs_total Namespace syncs, by result (success, error, skipped or cleaned).
# TYPE kube_ecr_refresher_namespace_syncs_total counter
`
	helpWrites = `# HELP kube_ecr_refresher_writes_total Writes made to the Kubernetes API (or, in dry-run, that would be made), by kind (secret or serviceaccount) and operation (create, update or delete).
# TYPE kube_ecr_refresher_writes_total counter
`
	helpLeader = `# HELP kube_ecr_refresher_leader 1 if this replica is the leader, 0 otherwise.
# TYPE kube_ecr_refresher_leader gauge
`
)

func TestObserver(t *testing.T) {
	tests := []struct {
		name  string
		calls func(m *Metrics)
		// want is the exposition of the metrics it names, and only those.
		want string
	}{
		{
			name:  "A new Metrics has every known label at zero, no leader and no token",
			calls: func(*Metrics) {},
			want: helpExpiry + helpLastRefresh + `kube_ecr_refresher_last_successful_refresh_timestamp_seconds 0
` + helpAttempts + `kube_ecr_refresher_refresh_attempts_total{result="error"} 0
kube_ecr_refresher_refresh_attempts_total{result="success"} 0
` + helpSyncs + `kube_ecr_refresher_namespace_syncs_total{result="cleaned"} 0
kube_ecr_refresher_namespace_syncs_total{result="error"} 0
kube_ecr_refresher_namespace_syncs_total{result="skipped"} 0
kube_ecr_refresher_namespace_syncs_total{result="success"} 0
` + helpWrites + `kube_ecr_refresher_writes_total{kind="secret",operation="create"} 0
kube_ecr_refresher_writes_total{kind="secret",operation="delete"} 0
kube_ecr_refresher_writes_total{kind="secret",operation="update"} 0
kube_ecr_refresher_writes_total{kind="serviceaccount",operation="create"} 0
kube_ecr_refresher_writes_total{kind="serviceaccount",operation="delete"} 0
kube_ecr_refresher_writes_total{kind="serviceaccount",operation="update"} 0
` + helpLeader + `kube_ecr_refresher_leader 0
`,
		},
		{
			// Every refresher constant lands on a pre-initialised series: a
			// renamed constant would add a series and fail the comparison.
			name: "The refresher's results, kinds and operations are the pre-initialised labels",
			calls: func(m *Metrics) {
				m.RefreshAttempt(nil, time.Second)
				m.RefreshAttempt(errors.New("boom"), time.Second)
				m.RefreshAttempt(errors.New("boom"), time.Second)
				for _, r := range []string{refresher.SyncOK, refresher.SyncError, refresher.SyncSkipped, refresher.SyncCleaned} {
					m.NamespaceSynced("team-a", r)
				}
				m.NamespaceSynced("team-b", refresher.SyncOK)
				for _, kind := range []string{refresher.KindSecret, refresher.KindServiceAccount} {
					for _, op := range []string{refresher.OpCreate, refresher.OpUpdate, refresher.OpDelete} {
						m.Wrote(kind, op, "team-a")
					}
				}
				m.Wrote(refresher.KindSecret, refresher.OpCreate, "team-b")
			},
			want: helpAttempts + `kube_ecr_refresher_refresh_attempts_total{result="error"} 2
kube_ecr_refresher_refresh_attempts_total{result="success"} 1
` + helpSyncs + `kube_ecr_refresher_namespace_syncs_total{result="cleaned"} 1
kube_ecr_refresher_namespace_syncs_total{result="error"} 1
kube_ecr_refresher_namespace_syncs_total{result="skipped"} 1
kube_ecr_refresher_namespace_syncs_total{result="success"} 2
` + helpWrites + `kube_ecr_refresher_writes_total{kind="secret",operation="create"} 2
kube_ecr_refresher_writes_total{kind="secret",operation="delete"} 1
kube_ecr_refresher_writes_total{kind="secret",operation="update"} 1
kube_ecr_refresher_writes_total{kind="serviceaccount",operation="create"} 1
kube_ecr_refresher_writes_total{kind="serviceaccount",operation="delete"} 1
kube_ecr_refresher_writes_total{kind="serviceaccount",operation="update"} 1
`,
		},
		{
			name: "A token sets the expiry of each of its registries and the last refresh",
			calls: func(m *Metrics) {
				m.Leading(true)
				m.TokenFetched(token(hostA, hostB))
			},
			want: helpExpiry + `kube_ecr_refresher_token_expiry_timestamp_seconds{registry="` + hostA + `"} 1800043200
kube_ecr_refresher_token_expiry_timestamp_seconds{registry="` + hostB + `"} 1800043200
` + helpLastRefresh + `kube_ecr_refresher_last_successful_refresh_timestamp_seconds 1800000000
` + helpLeader + `kube_ecr_refresher_leader 1
`,
		},
		{
			name: "A registry the next token no longer includes loses its series",
			calls: func(m *Metrics) {
				m.Leading(true)
				m.TokenFetched(token(hostA, hostB))
				next := token(hostA, hostC)
				next.FetchedAt = fetchedAt.Add(6 * time.Hour)
				next.ExpiresAt = expiresAt.Add(6 * time.Hour)
				m.TokenFetched(next)
			},
			want: helpExpiry + `kube_ecr_refresher_token_expiry_timestamp_seconds{registry="` + hostA + `"} 1800064800
kube_ecr_refresher_token_expiry_timestamp_seconds{registry="` + hostC + `"} 1800064800
` + helpLastRefresh + `kube_ecr_refresher_last_successful_refresh_timestamp_seconds 1800021600
`,
		},
		{
			name: "Losing leadership deletes the token expiry and keeps the last refresh",
			calls: func(m *Metrics) {
				m.Leading(true)
				m.TokenFetched(token(hostA))
				m.Leading(false)
			},
			want: helpExpiry + helpLastRefresh + `kube_ecr_refresher_last_successful_refresh_timestamp_seconds 1800000000
` + helpLeader + `kube_ecr_refresher_leader 0
`,
		},
		{
			name: "Leading again after a loss reports the new token only",
			calls: func(m *Metrics) {
				m.Leading(true)
				m.TokenFetched(token(hostA, hostB))
				m.Leading(false)
				m.Leading(true)
				m.TokenFetched(token(hostB))
			},
			want: helpExpiry + `kube_ecr_refresher_token_expiry_timestamp_seconds{registry="` + hostB + `"} 1800043200
` + helpLeader + `kube_ecr_refresher_leader 1
`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, reg := newMetrics(t)
			tt.calls(m)
			var names []string
			for _, line := range strings.Split(tt.want, "\n") {
				if name, ok := strings.CutPrefix(line, "# TYPE "); ok {
					names = append(names, strings.Fields(name)[0])
				}
			}
			if err := testutil.GatherAndCompare(reg, strings.NewReader(tt.want), names...); err != nil {
				t.Error(err)
			}
		})
	}
}

func TestRefreshAttemptRecordsDuration(t *testing.T) {
	m, _ := newMetrics(t)
	m.RefreshAttempt(nil, 300*time.Millisecond)
	m.RefreshAttempt(errors.New("boom"), 2*time.Second)

	want := `# HELP kube_ecr_refresher_refresh_duration_seconds Time taken by one ECR token refresh attempt, fetch and decoding included.
# TYPE kube_ecr_refresher_refresh_duration_seconds histogram
kube_ecr_refresher_refresh_duration_seconds_bucket{le="0.01"} 0
kube_ecr_refresher_refresh_duration_seconds_bucket{le="0.025"} 0
kube_ecr_refresher_refresh_duration_seconds_bucket{le="0.05"} 0
kube_ecr_refresher_refresh_duration_seconds_bucket{le="0.1"} 0
kube_ecr_refresher_refresh_duration_seconds_bucket{le="0.25"} 0
kube_ecr_refresher_refresh_duration_seconds_bucket{le="0.5"} 1
kube_ecr_refresher_refresh_duration_seconds_bucket{le="1"} 1
kube_ecr_refresher_refresh_duration_seconds_bucket{le="2.5"} 2
kube_ecr_refresher_refresh_duration_seconds_bucket{le="5"} 2
kube_ecr_refresher_refresh_duration_seconds_bucket{le="10"} 2
kube_ecr_refresher_refresh_duration_seconds_bucket{le="30"} 2
kube_ecr_refresher_refresh_duration_seconds_bucket{le="+Inf"} 2
kube_ecr_refresher_refresh_duration_seconds_sum 2.3
kube_ecr_refresher_refresh_duration_seconds_count 2
`
	if err := testutil.CollectAndCompare(m.refreshDuration, strings.NewReader(want)); err != nil {
		t.Error(err)
	}
}

func TestBuildInfo(t *testing.T) {
	m, _ := newMetrics(t)
	m.SetBuildInfo("v0.1.0")
	m.SetBuildInfo("v0.2.0") // the last call wins; no stale version stays behind
	if got := testutil.CollectAndCount(m.buildInfo); got != 1 {
		t.Errorf("build_info series = %d, want 1", got)
	}
	if got := testutil.ToFloat64(m.buildInfo.WithLabelValues("v0.2.0", runtime.Version())); got != 1 {
		t.Errorf("build_info{version=v0.2.0} = %v, want 1", got)
	}
}

func TestNewRejectsARegistryThatAlreadyHasTheMetrics(t *testing.T) {
	reg := prometheus.NewRegistry()
	if _, err := New(reg); err != nil {
		t.Fatalf("first New: %v", err)
	}
	_, err := New(reg)
	var already prometheus.AlreadyRegisteredError
	if !errors.As(err, &already) {
		t.Errorf("second New: error %v, want an AlreadyRegisteredError", err)
	}
}

func TestLeaderGauge(t *testing.T) {
	tests := []struct {
		name    string
		leading []bool
		want    float64
	}{
		{name: "A replica that never led reports 0", leading: nil, want: 0},
		{name: "A replica that leads reports 1", leading: []bool{true}, want: 1},
		{name: "A replica that lost leadership reports 0", leading: []bool{true, false}, want: 0},
		{name: "A replica that leads again reports 1", leading: []bool{true, false, true}, want: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, _ := newMetrics(t)
			for _, l := range tt.leading {
				m.Leading(l)
			}
			if got := testutil.ToFloat64(m.leader); got != tt.want {
				t.Errorf("leader = %v, want %v", got, tt.want)
			}
		})
	}
}

// exercise makes every metric have at least one series.
func exercise(t *testing.T, m *Metrics) {
	t.Helper()
	m.SetBuildInfo("v0.1.0")
	m.Leading(true)
	m.RefreshAttempt(nil, time.Second)
	m.TokenFetched(token(hostA, hostB))
	m.NamespaceSynced("team-a", refresher.SyncOK)
	m.Wrote(refresher.KindSecret, refresher.OpCreate, "team-a")
	m.ClockSkew(-13 * time.Hour)
	m.ExpiredTokenFetched()
	m.RegistryFailed("registries 123456789012 in eu-west-1")
	q := newQueue(t, m, testingclock.NewFakeClock(fetchedAt))
	q.Add("team-a")
	ns, _ := q.Get()
	q.Done(ns)
	q.AddRateLimited("team-a")
	q.ShutDown()
}

func TestMetricsPassLint(t *testing.T) {
	tests := []struct {
		name     string
		registry func() *prometheus.Registry
	}{
		{name: "Our metrics alone pass promlint", registry: prometheus.NewRegistry},
		{name: "Our metrics with the Go and process collectors pass promlint", registry: NewRegistry},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reg := tt.registry()
			m, err := New(reg)
			if err != nil {
				t.Fatalf("New: %v", err)
			}
			exercise(t, m)
			problems, err := testutil.GatherAndLint(reg)
			if err != nil {
				t.Fatalf("lint: %v", err)
			}
			for _, p := range problems {
				t.Errorf("promlint: %s: %s", p.Metric, p.Text)
			}
		})
	}
}

func TestEachCollectorPassesLint(t *testing.T) {
	m, _ := newMetrics(t)
	exercise(t, m)
	for _, c := range m.collectors() {
		problems, err := testutil.CollectAndLint(c)
		if err != nil {
			t.Fatalf("lint: %v", err)
		}
		for _, p := range problems {
			t.Errorf("promlint: %s: %s", p.Metric, p.Text)
		}
	}
}

// TestDocsListEveryMetric keeps docs/metrics.md in step with the code.
func TestDocsListEveryMetric(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "metrics.md"))
	if err != nil {
		t.Fatalf("read docs: %v", err)
	}
	reg := prometheus.NewRegistry()
	m, err := New(reg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	exercise(t, m)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatalf("gather: %v", err)
	}
	if len(mfs) != len(m.collectors()) {
		t.Errorf("gathered %d metric families, want one per collector (%d)", len(mfs), len(m.collectors()))
	}
	for _, mf := range mfs {
		if !strings.Contains(string(doc), "`"+mf.GetName()+"`") {
			t.Errorf("docs/metrics.md does not list `%s`", mf.GetName())
		}
	}
}

func TestNoSecretInAnySeries(t *testing.T) {
	reg := NewRegistry()
	m, err := New(reg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	exercise(t, m)
	rec := httptest.NewRecorder()
	Handler(reg).ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/metrics", nil))
	out := rec.Body.String()
	if strings.Contains(out, password) {
		t.Errorf("the exposition contains the password:\n%s", out)
	}
	if !strings.Contains(out, hostA) {
		t.Errorf("the exposition lacks registry %s; the check above proves nothing", hostA)
	}
}
