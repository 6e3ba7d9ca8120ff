package chart

import (
	"path/filepath"
	"testing"
)

// TestCIValues lints the chart strictly and renders it with every
// ci/*-values.yaml, decoding each object strictly into its API type.
func TestCIValues(t *testing.T) {
	h := newHelm(t)
	for _, values := range ciValues(t) {
		t.Run(filepath.Base(values), func(t *testing.T) {
			if _, err := h.run("lint", "--strict", chartDir(t), "--namespace", namespace, "-f", values); err != nil {
				t.Fatal(err)
			}
			objs := h.mustRender(t, "-f", values)
			if len(objs.deployments) != 1 {
				t.Errorf("got %d Deployments, want 1", len(objs.deployments))
			}
		})
	}
}
