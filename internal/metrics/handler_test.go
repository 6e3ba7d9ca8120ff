package metrics

import (
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

func TestHandlerServesTextFormat(t *testing.T) {
	reg := NewRegistry()
	m, err := New(reg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	m.SetBuildInfo("v1.2.3")
	srv := httptest.NewServer(Handler(reg)) // 127.0.0.1
	t.Cleanup(srv.Close)

	tests := []struct {
		name   string
		accept string
	}{
		{name: "A scraper that sends no Accept header gets text", accept: ""},
		{name: "A scraper that asks for text gets text", accept: "text/plain;version=0.0.4;q=1,*/*;q=0.1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL, nil)
			if err != nil {
				t.Fatal(err)
			}
			if tt.accept != "" {
				req.Header.Set("Accept", tt.accept)
			}
			resp, err := srv.Client().Do(req)
			if err != nil {
				t.Fatalf("GET: %v", err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Errorf("status = %d, want 200", resp.StatusCode)
			}
			if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain; version=0.0.4") {
				t.Errorf("Content-Type = %q, want text/plain; version=0.0.4", ct)
			}
		})
	}

	// The body parses as text and carries our metrics, the runtime's and the
	// handler's own.
	want := `# HELP kube_ecr_refresher_build_info Always 1; labelled with the version of kube-ecr-refresher and of Go it was built with.
# TYPE kube_ecr_refresher_build_info gauge
kube_ecr_refresher_build_info{goversion="` + runtime.Version() + `",version="v1.2.3"} 1
`
	if err := testutil.ScrapeAndCompare(srv.URL, strings.NewReader(want), "kube_ecr_refresher_build_info"); err != nil {
		t.Error(err)
	}
	for _, name := range []string{"go_goroutines", "process_start_time_seconds", "promhttp_metric_handler_requests_total"} {
		if n, err := testutil.GatherAndCount(reg, name); err != nil || n == 0 {
			t.Errorf("%s: %d series, error %v; want some", name, n, err)
		}
	}
}
