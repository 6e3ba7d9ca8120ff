package main

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseSamples(t *testing.T) {
	text := `# HELP x_total Things.
# TYPE x_total counter
x_total{kind="secret",operation="create"} 3
x_total{kind="serviceaccount",operation="update"} 4 1700000000000
y_total 7
z{msg="a \"quoted\", comma",other="b\\c"} 1.5e+00
`
	tests := []struct {
		name  string
		names []string
		want  []sample
	}{
		{
			name:  "Only the named metrics are returned, with their labels",
			names: []string{"x_total"},
			want: []sample{
				{name: "x_total", labels: map[string]string{"kind": "secret", "operation": "create"}, value: 3},
				{name: "x_total", labels: map[string]string{"kind": "serviceaccount", "operation": "update"}, value: 4},
			},
		},
		{
			name:  "A metric without labels has an empty label set",
			names: []string{"y_total"},
			want:  []sample{{name: "y_total", labels: map[string]string{}, value: 7}},
		},
		{
			name:  "Escaped quotes, commas and backslashes in label values are read",
			names: []string{"z"},
			want:  []sample{{name: "z", labels: map[string]string{"msg": `a "quoted", comma`, "other": `b\c`}, value: 1.5}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseSamples(text, tt.names...)
			if err != nil {
				t.Fatalf("parseSamples: %v", err)
			}
			if diff := cmp.Diff(tt.want, got, cmp.AllowUnexported(sample{})); diff != "" {
				t.Errorf("parseSamples (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseSamplesRejectsMalformedLines(t *testing.T) {
	for _, text := range []string{`x{a="b"`, `x{a=b} 1`, `x{a="b"}`, `x notanumber`} {
		if _, err := parseSamples(text, "x"); err == nil {
			t.Errorf("parseSamples(%q) succeeded, want an error", text)
		}
	}
}

func TestParseAPIServerWrites(t *testing.T) {
	text := `apiserver_request_total{code="201",group="",resource="secrets",subresource="",verb="POST"} 10
apiserver_request_total{code="200",group="",resource="secrets",subresource="",verb="PUT"} 5
apiserver_request_total{code="409",group="",resource="serviceaccounts",subresource="",verb="PUT"} 2
apiserver_request_total{code="200",group="",resource="serviceaccounts",subresource="",verb="PATCH"} 1
apiserver_request_total{code="200",group="",resource="secrets",subresource="",verb="DELETE"} 1
apiserver_request_total{code="200",group="",resource="secrets",subresource="",verb="LIST"} 100
apiserver_request_total{code="200",group="",resource="secrets",subresource="",verb="WATCH"} 3
apiserver_request_total{code="201",group="",resource="serviceaccounts",subresource="token",verb="POST"} 50
apiserver_request_total{code="201",group="",resource="namespaces",subresource="",verb="POST"} 50
apiserver_request_total{code="200",group="coordination.k8s.io",resource="leases",subresource="",verb="PUT"} 50
`
	got, err := parseAPIServerWrites(text)
	if err != nil {
		t.Fatal(err)
	}
	if want := int64(10 + 5 + 2 + 1 + 1); got != want {
		t.Errorf("parseAPIServerWrites = %d, want %d: writes to Secrets and ServiceAccounts only, conflicts included", got, want)
	}
}

func TestParseControllerCounters(t *testing.T) {
	text := `kube_ecr_refresher_writes_total{kind="secret",operation="create"} 100
kube_ecr_refresher_writes_total{kind="secret",operation="update"} 0
kube_ecr_refresher_writes_total{kind="serviceaccount",operation="update"} 100
kube_ecr_refresher_refresh_attempts_total{result="error"} 1
kube_ecr_refresher_refresh_attempts_total{result="success"} 2
kube_ecr_refresher_namespace_syncs_total{result="success"} 250
kube_ecr_refresher_namespace_syncs_total{result="skipped"} 4
kube_ecr_refresher_leader 1
go_goroutines 42
`
	got, err := parseControllerCounters(text)
	if err != nil {
		t.Fatal(err)
	}
	want := controllerCounters{Writes: 200, RefreshAttempts: 3, Syncs: 254, Leader: true}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("parseControllerCounters (-want +got):\n%s", diff)
	}
}
