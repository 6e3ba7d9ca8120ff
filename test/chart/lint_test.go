//go:build integration

package chart

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/yaml"
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

// TestLintAsDependency lints, strictly, a parent chart that has this one as
// a dependency (file://, so no network) with the values a parent gives it:
// a global block, which Helm hands to every subchart, and the enabled key of
// its condition. It renders the parent with the dependency on and off.
func TestLintAsDependency(t *testing.T) {
	h := newHelm(t)
	version := chartMetadata(t).Version
	tests := []struct {
		name   string
		values string
		// wantKinds are the parent's rendered objects, "Kind/name".
		wantKinds    []string
		wantReplicas int32
	}{
		{
			name: "Enabled, with a global block",
			values: `global:
  imageRegistry: registry.example
  imagePullSecrets: [{name: regcred}]
kube-ecr-refresher:
  enabled: true
  aws:
    region: eu-west-1
`,
			wantKinds: []string{
				"PodDisruptionBudget/platform-kube-ecr-refresher", "ServiceAccount/platform-kube-ecr-refresher",
				"ClusterRole/platform-kube-ecr-refresher", "ClusterRoleBinding/platform-kube-ecr-refresher",
				"Role/platform-kube-ecr-refresher", "RoleBinding/platform-kube-ecr-refresher",
				"Deployment/platform-kube-ecr-refresher",
			},
			wantReplicas: 2,
		},
		{
			name: "Enabled with no replica yet",
			values: `global: {}
kube-ecr-refresher:
  enabled: true
  replicaCount: 0
  aws:
    region: eu-west-1
`,
			wantKinds: []string{
				"ServiceAccount/platform-kube-ecr-refresher",
				"ClusterRole/platform-kube-ecr-refresher", "ClusterRoleBinding/platform-kube-ecr-refresher",
				"Role/platform-kube-ecr-refresher", "RoleBinding/platform-kube-ecr-refresher",
				"Deployment/platform-kube-ecr-refresher",
			},
			wantReplicas: 0,
		},
		{
			name: "Disabled",
			values: `global:
  imageRegistry: registry.example
kube-ecr-refresher:
  enabled: false
`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			parent := filepath.Join(t.TempDir(), "platform")
			if err := os.MkdirAll(parent, 0o755); err != nil {
				t.Fatal(err)
			}
			chartYAML := fmt.Sprintf(`apiVersion: v2
name: platform
description: A parent chart that bundles kube-ecr-refresher.
type: application
version: 1.0.0
icon: https://example.com/icon.svg
dependencies:
  - name: kube-ecr-refresher
    version: %q
    repository: file://%s
    condition: kube-ecr-refresher.enabled
`, version, chartDir(t))
			for name, content := range map[string]string{"Chart.yaml": chartYAML, "values.yaml": tt.values} {
				if err := os.WriteFile(filepath.Join(parent, name), []byte(content), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := h.run("dependency", "build", parent); err != nil {
				t.Fatal(err)
			}
			if _, err := h.run("lint", "--strict", parent, "--namespace", namespace); err != nil {
				t.Fatal(err)
			}
			out, err := h.run("template", "platform", parent, "--namespace", namespace)
			if err != nil {
				t.Fatal(err)
			}
			objs, err := decode(out)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.wantKinds, objs.kinds); diff != "" {
				t.Errorf("objects (-want +got):\n%s", diff)
			}
			for _, d := range objs.deployments {
				if diff := cmp.Diff(&tt.wantReplicas, d.Spec.Replicas); diff != "" {
					t.Errorf("replicas (-want +got):\n%s", diff)
				}
			}
		})
	}
}

// chartMetadata reads the chart's Chart.yaml.
func chartMetadata(t *testing.T) chartYAML {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(chartDir(t), "Chart.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var c chartYAML
	if err := yaml.UnmarshalStrict(raw, &c); err != nil {
		t.Fatalf("decode Chart.yaml: %v", err)
	}
	return c
}

// chartYAML is Chart.yaml (apiVersion v2), strictly: a misspelt field fails.
type chartYAML struct {
	APIVersion  string   `json:"apiVersion"`
	Name        string   `json:"name"`
	Description string   `json:"description"`
	Type        string   `json:"type"`
	Version     string   `json:"version"`
	AppVersion  string   `json:"appVersion"`
	KubeVersion string   `json:"kubeVersion"`
	Home        string   `json:"home"`
	Icon        string   `json:"icon"`
	Sources     []string `json:"sources"`
	Keywords    []string `json:"keywords"`
	Maintainers []struct {
		Name  string `json:"name"`
		Email string `json:"email,omitempty"`
		URL   string `json:"url,omitempty"`
	} `json:"maintainers"`
	Annotations map[string]string `json:"annotations"`
}

// TestChartMetadata asserts what Artifact Hub and `helm search` show: an
// https icon, maintainers, the license of LICENSE, links, and the image the
// chart deploys by default.
func TestChartMetadata(t *testing.T) {
	h := newHelm(t)
	c := chartMetadata(t)
	const project = "https://github.com/kube-ecr-refresher/kube-ecr-refresher"
	if c.Home != project {
		t.Errorf("home = %q, want %q", c.Home, project)
	}
	if c.Icon != "https://raw.githubusercontent.com/kube-ecr-refresher/kube-ecr-refresher/main/docs/icon.svg" {
		t.Errorf("icon = %q, want the project's docs/icon.svg over https", c.Icon)
	}
	if len(c.Maintainers) != 1 || c.Maintainers[0].Name != "kube-ecr-refresher maintainers" || c.Maintainers[0].URL != project {
		t.Errorf("maintainers = %+v, want kube-ecr-refresher maintainers at %s", c.Maintainers, project)
	}

	license, err := os.ReadFile(filepath.Join(repoRoot(t), "LICENSE"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(license), "Apache License") || !strings.Contains(string(license), "Version 2.0") {
		t.Errorf("LICENSE is no Apache License 2.0; fix artifacthub.io/license")
	}
	if got := c.Annotations["artifacthub.io/license"]; got != "Apache-2.0" {
		t.Errorf("artifacthub.io/license = %q, want the SPDX ID of LICENSE, Apache-2.0", got)
	}

	var links []struct {
		Name string `json:"name"`
		URL  string `json:"url"`
	}
	if err := yaml.UnmarshalStrict([]byte(c.Annotations["artifacthub.io/links"]), &links); err != nil {
		t.Fatalf("artifacthub.io/links: %v", err)
	}
	if len(links) == 0 {
		t.Errorf("artifacthub.io/links is empty")
	}
	for _, l := range links {
		if l.Name == "" || !strings.HasPrefix(l.URL, project) {
			t.Errorf("artifacthub.io/links: %+v, want a name and a URL of the project", l)
		}
	}

	var images []struct {
		Name      string   `json:"name"`
		Image     string   `json:"image"`
		Platforms []string `json:"platforms,omitempty"`
	}
	if err := yaml.UnmarshalStrict([]byte(c.Annotations["artifacthub.io/images"]), &images); err != nil {
		t.Fatalf("artifacthub.io/images: %v", err)
	}
	img := h.mustRender(t, "--set", "aws.region=eu-west-1").container(t).Image
	if len(images) != 1 || images[0].Image != img {
		t.Errorf("artifacthub.io/images = %+v, want the image the chart deploys, %s", images, img)
	}
}
