package config

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestMarkdown(t *testing.T) {
	md := Markdown()
	if !strings.HasSuffix(md, "\n") {
		t.Errorf("Markdown() does not end with a newline")
	}
	lines := strings.Split(strings.TrimSuffix(md, "\n"), "\n")
	ss := settings()
	if len(lines) != 2+len(ss) {
		t.Fatalf("Markdown() has %d lines, want a header, a separator and %d rows:\n%s", len(lines), len(ss), md)
	}
	if diff := cmp.Diff([]string{
		"| Variable | Flag | Default | Description |",
		"|---|---|---|---|",
	}, lines[:2]); diff != "" {
		t.Errorf("Markdown() header mismatch (-want +got):\n%s", diff)
	}
	for i, s := range ss {
		row := lines[2+i]
		cells := splitRow(row)
		def := ""
		if s.def != "" {
			def = "`" + s.def + "`"
		}
		want := []string{"`" + s.env() + "`", "`--" + s.flag() + "`", def, s.desc}
		if diff := cmp.Diff(want, cells); diff != "" {
			t.Errorf("Markdown() row %d mismatch (-want +got):\n%s", i, diff)
		}
	}
}

func TestMarkdownRowsOfKnownSettings(t *testing.T) {
	md := Markdown()
	for _, want := range []string{
		"| `KUBE_ECR_REFRESHER_TARGET_NAMESPACES` | `--target-namespaces` |  | comma-separated namespaces or glob patterns (team-*) to serve; empty serves all namespaces |\n",
		"| `KUBE_ECR_REFRESHER_KUBE_API_QPS` | `--kube-api-qps` | `1000` | Kubernetes API client queries per second (the API server's priority and fairness still applies) |\n",
		"| `KUBE_ECR_REFRESHER_HEALTH_ADDR` | `--health-addr` | `:8081` |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("Markdown() lacks %q", want)
		}
	}
}

func TestMarkdownCellEscapesPipes(t *testing.T) {
	if got, want := markdownCell("a | b\nc"), `a \| b c`; got != want {
		t.Errorf("markdownCell() = %q, want %q", got, want)
	}
}

// splitRow returns the cells of a Markdown table row, unescaped.
func splitRow(row string) []string {
	row = strings.TrimSuffix(strings.TrimPrefix(row, "| "), " |")
	row = strings.ReplaceAll(row, `\|`, "\x00")
	cells := strings.Split(row, " | ")
	for i, c := range cells {
		cells[i] = strings.ReplaceAll(c, "\x00", "|")
	}
	return cells
}
