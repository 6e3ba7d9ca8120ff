//go:build integration

package chart

import (
	"path/filepath"
	"testing"
)

// TestCIValues lints the chart strictly and renders it with every
// ci/*-values.yaml, decoding each object strictly into its API type; each
// renders one workload, a Deployment or a CronJob.
func TestCIValues(t *testing.T) {
	h := newHelm(t)
	for _, values := range ciValues(t) {
		t.Run(filepath.Base(values), func(t *testing.T) {
			if _, err := h.run("lint", "--strict", chartDir(t), "--namespace", namespace, "-f", values); err != nil {
				t.Fatal(err)
			}
			objs := h.mustRender(t, "-f", values)
			if n := len(objs.deployments) + len(objs.cronJobs); n != 1 {
				t.Errorf("got %d Deployments and %d CronJobs, want one workload", len(objs.deployments), len(objs.cronJobs))
			}
		})
	}
}
