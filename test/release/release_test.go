//go:build integration

// Package release checks what a release is made of: the workflow lints, and
// the version lives in one place.
package release

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/yaml"
)

func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	return root
}

// tool builds (or finds in the cache) a tool pinned in hack/tools.
func tool(t *testing.T, name string) string {
	t.Helper()
	cmd := exec.Command(filepath.Join(repoRoot(t), "hack", "tools", "build.sh"), name)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("build %s: %v\n%s", name, err, stderr.String())
	}
	return strings.TrimSpace(string(out))
}

// The workflows pass actionlint, and actionlint finds what is wrong in a
// broken one (so a pass means something).
func TestWorkflowsLint(t *testing.T) {
	lint := tool(t, "actionlint")
	workflows, err := filepath.Glob(filepath.Join(repoRoot(t), ".github", "workflows", "*.yml"))
	if err != nil || len(workflows) == 0 {
		t.Fatalf("no workflows: %v", err)
	}
	cmd := exec.Command(lint, append([]string{"-no-color"}, workflows...)...)
	cmd.Dir = repoRoot(t)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Errorf("actionlint: %v\n%s", err, out)
	}

	broken := filepath.Join(t.TempDir(), "broken.yml")
	if err := os.WriteFile(broken, []byte("on: push\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    steps:\n      - run: echo ${{ github.nope }}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(lint, "-no-color", broken).CombinedOutput(); err == nil || !strings.Contains(string(out), "nope") {
		t.Errorf("actionlint passed a broken workflow: %v\n%s", err, out)
	}
}

// VERSION is the one place the version lives: the chart's version and
// appVersion (which the image tag defaults to) are the same.
func TestChartVersionIsVERSION(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(repoRoot(t), "VERSION"))
	if err != nil {
		t.Fatal(err)
	}
	version := strings.TrimSpace(string(raw))
	chartRaw, err := os.ReadFile(filepath.Join(repoRoot(t), "deploy", "helm", "kube-ecr-refresher", "Chart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var chart struct {
		Version    string `json:"version"`
		AppVersion string `json:"appVersion"`
	}
	if err := yaml.Unmarshal(chartRaw, &chart); err != nil {
		t.Fatal(err)
	}
	if chart.Version != version || chart.AppVersion != version {
		t.Errorf("Chart.yaml version %q, appVersion %q; VERSION %q: make them equal (make chart packages with VERSION)",
			chart.Version, chart.AppVersion, version)
	}
}

// The chart's README is helm-docs' rendering of the chart as it is: run
// make chart-docs after changing values.yaml or Chart.yaml.
func TestChartREADMEIsGenerated(t *testing.T) {
	helmDocs := tool(t, "helm-docs")
	src := filepath.Join(repoRoot(t), "deploy", "helm", "kube-ecr-refresher")
	committed, err := os.ReadFile(filepath.Join(src, "README.md"))
	if err != nil {
		t.Fatalf("the chart has no README.md (make chart-docs): %v", err)
	}
	root := t.TempDir()
	dst := filepath.Join(root, "kube-ecr-refresher")
	if out, err := exec.Command("cp", "-r", src, dst).CombinedOutput(); err != nil {
		t.Fatalf("copy chart: %v\n%s", err, out)
	}
	if err := os.Remove(filepath.Join(dst, "README.md")); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command(helmDocs, "--chart-search-root", root, "--log-level", "warning").CombinedOutput(); err != nil {
		t.Fatalf("helm-docs: %v\n%s", err, out)
	}
	generated, err := os.ReadFile(filepath.Join(dst, "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(committed, generated) {
		t.Errorf("deploy/helm/kube-ecr-refresher/README.md is not what helm-docs makes of the chart: run make chart-docs")
	}
}

// The chart's default memory follows the sizing table in docs/benchmarks.md
// (from make bench): its limit leaves 50 % headroom over the peak measured
// at 10 000 namespaces, its request covers the peak at 1 000.
func TestChartResourcesFollowTheSizingTable(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join(repoRoot(t), "docs", "benchmarks.md"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?s)<!-- sizing:start -->(.*?)<!-- sizing:end -->`).FindSubmatch(doc)
	if m == nil {
		t.Fatal("docs/benchmarks.md has no <!-- sizing:start --> table")
	}
	peak := map[int]float64{} // namespaces -> peak RSS MiB
	for _, line := range strings.Split(string(m[1]), "\n") {
		cells := strings.Split(strings.Trim(strings.TrimSpace(line), "|"), "|")
		if len(cells) < 2 {
			continue
		}
		n, err1 := strconv.Atoi(strings.ReplaceAll(strings.TrimSpace(cells[0]), " ", ""))
		mib, err2 := strconv.ParseFloat(strings.TrimSpace(cells[1]), 64)
		if err1 == nil && err2 == nil {
			peak[n] = mib
		}
	}
	if peak[1000] == 0 || peak[10000] == 0 {
		t.Fatalf("sizing table lacks the rows for 1000 and 10000 namespaces: %v", peak)
	}
	raw, err := os.ReadFile(filepath.Join(repoRoot(t), "deploy", "helm", "kube-ecr-refresher", "values.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var values struct {
		Resources struct {
			Requests map[string]string `json:"requests"`
			Limits   map[string]string `json:"limits"`
		} `json:"resources"`
	}
	if err := yaml.Unmarshal(raw, &values); err != nil {
		t.Fatal(err)
	}
	mebi := func(q string) float64 {
		v, err := resource.ParseQuantity(q)
		if err != nil {
			t.Fatalf("quantity %q: %v", q, err)
		}
		return float64(v.Value()) / (1 << 20)
	}
	if limit := mebi(values.Resources.Limits["memory"]); limit < 1.5*peak[10000] {
		t.Errorf("chart memory limit %.0f MiB is below 1.5 x the %.1f MiB measured at 10 000 namespaces", limit, peak[10000])
	}
	if request := mebi(values.Resources.Requests["memory"]); request < peak[1000] {
		t.Errorf("chart memory request %.0f MiB is below the %.1f MiB measured at 1 000 namespaces", request, peak[1000])
	}
}
