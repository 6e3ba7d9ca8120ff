//go:build integration

package chart

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"

	"github.com/kube-ecr-refresher/kube-ecr-refresher/internal/config"
)

// renderUnstructured renders the chart and decodes every object generically,
// for assertions that hold for all of them.
func renderUnstructured(t *testing.T, h *helmRunner, args ...string) []*unstructured.Unstructured {
	t.Helper()
	out, err := h.template(t, args...)
	if err != nil {
		t.Fatal(err)
	}
	var objs []*unstructured.Unstructured
	for _, doc := range splitDocuments(out) {
		u := &unstructured.Unstructured{}
		if err := yamlUnmarshal(doc, &u.Object); err != nil {
			t.Fatal(err)
		}
		objs = append(objs, u)
	}
	return objs
}

// podTemplateLabels returns the labels of an object's Pod template, if it
// has one.
func podTemplateLabels(u *unstructured.Unstructured) (map[string]string, bool) {
	path := []string{"spec", "template", "metadata", "labels"}
	if u.GetKind() == "CronJob" {
		path = []string{"spec", "jobTemplate", "spec", "template", "metadata", "labels"}
	}
	l, found, err := unstructured.NestedStringMap(u.Object, path...)
	return l, found && err == nil
}

// TestCommonLabels asserts that commonLabels reach every object the chart
// renders and every Pod, and serviceAccount.labels the ServiceAccount only.
func TestCommonLabels(t *testing.T) {
	h := newHelm(t)
	static := []string{"--set", "aws.accessKeyId=AKIAIOSFODNN7EXAMPLE", "--set", "aws.secretAccessKey=x"}
	tests := []struct {
		name string
		args []string
		// wantKinds must all be among the rendered objects, so that the
		// assertion covers them.
		wantKinds []string
	}{
		{
			name: "Deployment, its budget, metrics objects, static keys and the cleanup hook",
			args: append([]string{"-f", ciFile(t, "extras"), "--set", "metrics.prometheusRule.enabled=true"}, static...),
			wantKinds: []string{"ClusterRole", "ClusterRoleBinding", "Deployment", "Job", "PodDisruptionBudget", "PrometheusRule",
				"Role", "RoleBinding", "Secret", "Service", "ServiceAccount", "ServiceMonitor"},
		},
		{
			name: "CronJob",
			args: append([]string{"-f", ciFile(t, "cronjob"), "--set", "commonLabels.team=platform",
				"--set-string", "serviceAccount.labels.example\\.com/audited=true", "--set", "aws.existingSecret="}, static...),
			wantKinds: []string{"ClusterRole", "ClusterRoleBinding", "CronJob", "Role", "RoleBinding", "Secret", "ServiceAccount"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs := renderUnstructured(t, h, tt.args...)
			var kinds []string
			for _, u := range objs {
				what := u.GetKind() + "/" + u.GetName()
				if !slices.Contains(kinds, u.GetKind()) {
					kinds = append(kinds, u.GetKind())
				}
				if got := u.GetLabels()["team"]; got != "platform" {
					t.Errorf("%s: label team = %q, want platform", what, got)
				}
				_, audited := u.GetLabels()["example.com/audited"]
				if want := u.GetKind() == "ServiceAccount"; audited != want {
					t.Errorf("%s: has the ServiceAccount's label: %t, want %t", what, audited, want)
				}
				if pod, ok := podTemplateLabels(u); ok && pod["team"] != "platform" {
					t.Errorf("%s: Pod label team = %q, want platform", what, pod["team"])
				}
			}
			slices.Sort(kinds)
			if diff := cmp.Diff(tt.wantKinds, kinds); diff != "" {
				t.Errorf("kinds rendered (-want +got):\n%s", diff)
			}
		})
	}
}

// TestExtraArgs asserts that extraArgs follow the mode flag of every
// workload, and that exactly the flags of the settings the chart renders
// itself or scopes RBAC rules by are refused, in every spelling the flag
// package accepts.
func TestExtraArgs(t *testing.T) {
	h := newHelm(t)
	region := []string{"--set", "aws.region=eu-west-1"}
	extra := []string{"--log-level=debug", "--workers", "4"}
	set := []string{"--set-json", `extraArgs=["--log-level=debug","--workers","4"]`}

	t.Run("They follow each workload's mode", func(t *testing.T) {
		objs := h.mustRender(t, slices.Concat(region, set, optIn)...)
		if diff := cmp.Diff(extra, objs.container(t).Args); diff != "" {
			t.Errorf("Deployment args (-want +got):\n%s", diff)
		}
		job := only(t, "containers", objs.job(t).Spec.Template.Spec.Containers)
		if diff := cmp.Diff(append([]string{"--cleanup"}, extra...), job.Args); diff != "" {
			t.Errorf("cleanup Job args (-want +got):\n%s", diff)
		}
		cj := only(t, "CronJobs", h.mustRender(t, slices.Concat(region, set, []string{"--set", "cronJob.enabled=true"})...).cronJobs)
		c := only(t, "containers", cj.Spec.JobTemplate.Spec.Template.Spec.Containers)
		if diff := cmp.Diff(append([]string{"--once"}, extra...), c.Args); diff != "" {
			t.Errorf("CronJob args (-want +got):\n%s", diff)
		}
	})

	t.Run("None by default", func(t *testing.T) {
		if args := h.mustRender(t, region...).container(t).Args; args != nil {
			t.Errorf("args = %q, want none", args)
		}
	})

	// The settings whose flags the chart refuses, each with the reason.
	chartOwned := map[string]string{
		"CLEANUP":                  "a mode: the uninstall hook's, behind cleanup.onUninstall",
		"ONCE":                     "a mode: the CronJob's, cronJob.enabled",
		"LEADER_ELECT":             "always on (TestAlwaysElected)",
		"LEASE_NAME":               "the Role's rights on Leases are scoped to it (config.leaseName)",
		"LEASE_NAMESPACE":          "the release namespace, where the Role is",
		"LEADER_ELECTION_IDENTITY": "the Pod name",
		"HEALTH_ADDR":              "the probes' port (health.port)",
		"METRICS_ADDR":             "the metrics port (metrics.port)",
		"EVENTS":                   "adds the RBAC rule (events.enabled)",
		"SECRET_NAME":              "the ClusterRole's rights on Secrets are scoped to it (config.secretName)",
		"SERVICE_ACCOUNTS":         "the ClusterRole's rights on ServiceAccounts are scoped to them (config.serviceAccounts)",
		"KUBECONFIG":               "in-cluster configuration",
	}
	tags := envTags(t)
	for tag := range chartOwned {
		if !slices.Contains(tags, tag) {
			t.Errorf("chartOwned lists %s, which config.Config no longer reads", tag)
		}
	}
	for _, tag := range tags {
		flag := config.FlagName(tag)
		_, owned := chartOwned[tag]
		spellings := [][]string{{"--" + flag + "=x"}}
		if owned {
			spellings = append(spellings, []string{"--" + flag}, []string{"-" + flag}, []string{"--" + flag, "x"})
		}
		for _, args := range spellings {
			name := strings.Join(args, " ") + " is accepted"
			if owned {
				name = strings.Join(args, " ") + " is refused"
			}
			t.Run(name, func(t *testing.T) {
				b, err := json.Marshal(args)
				if err != nil {
					t.Fatal(err)
				}
				out, err := h.template(t, append(region, "--set-json", "extraArgs="+string(b))...)
				switch {
				case owned && err == nil:
					t.Errorf("rendered, want an error naming --%s:\n%s", flag, out)
				case owned && !strings.Contains(err.Error(), "extraArgs must not set --"+flag+":"):
					t.Errorf("error does not name --%s:\n%v", flag, err)
				case !owned && err != nil:
					t.Error(err)
				}
			})
		}
	}
}

// TestExtraVolumes asserts that extraVolumes and extraVolumeMounts reach the
// controller's Pod, as a Deployment or a CronJob.
func TestExtraVolumes(t *testing.T) {
	h := newHelm(t)
	wantVolumes := []corev1.Volume{{Name: "tmp", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{SizeLimit: ptr.To(resource.MustParse("16Mi"))}}}}
	wantMounts := []corev1.VolumeMount{{Name: "tmp", MountPath: "/tmp"}}
	tests := []struct {
		name string
		args []string
	}{
		{name: "Deployment", args: []string{"-f", ciFile(t, "extras")}},
		{name: "CronJob", args: []string{"-f", ciFile(t, "extras"), "--set", "cronJob.enabled=true", "--set", "metrics.serviceMonitor.enabled=false"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs := h.mustRender(t, tt.args...)
			var pod corev1.PodSpec
			if len(objs.cronJobs) > 0 {
				pod = only(t, "CronJobs", objs.cronJobs).Spec.JobTemplate.Spec.Template.Spec
			} else {
				pod = only(t, "Deployments", objs.deployments).Spec.Template.Spec
			}
			if diff := cmp.Diff(wantVolumes, pod.Volumes); diff != "" {
				t.Errorf("volumes (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(wantMounts, only(t, "containers", pod.Containers).VolumeMounts); diff != "" {
				t.Errorf("volumeMounts (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("None by default", func(t *testing.T) {
		objs := h.mustRender(t, "--set", "aws.region=eu-west-1")
		pod := only(t, "Deployments", objs.deployments).Spec.Template.Spec
		if pod.Volumes != nil || pod.Containers[0].VolumeMounts != nil {
			t.Errorf("volumes %v, mounts %v, want none", pod.Volumes, pod.Containers[0].VolumeMounts)
		}
	})
}
