//go:build integration

package chart

import (
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/utils/ptr"
)

// optIn turns the uninstall cleanup on, which is off by default.
var optIn = []string{"--set", "cleanup.onUninstall=true"}

// TestCleanupJob asserts the uninstall hook: a pre-delete Job running the
// controller's image with --cleanup, as the controller's ServiceAccount, with
// the controller's settings but no AWS keys, bounded in time, and unable to
// start without this revision's Helm release record.
func TestCleanupJob(t *testing.T) {
	h := newHelm(t)
	tests := []struct {
		name string
		args []string
		// wantArgs follow --cleanup: the extraArgs.
		wantArgs []string
	}{
		{name: "Keyless credentials", args: []string{"-f", ciFile(t, "irsa")}},
		{name: "Static keys stay out of the Job", args: []string{"-f", ciFile(t, "static-keys")}},
		{name: "The web identity stays out of the Job", args: []string{"-f", ciFile(t, "web-identity")}},
		{name: "Every setting is passed on", args: []string{"-f", ciFile(t, "target-namespaces"), "-f", ciFile(t, "metrics")}},
		{
			name:     "Extra flags are passed on, extra volumes are not",
			args:     []string{"-f", ciFile(t, "extras")},
			wantArgs: []string{"--log-level=debug"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs := h.mustRender(t, append(tt.args, optIn...)...)
			job := objs.job(t)
			d := only(t, "Deployments", objs.deployments)
			controller := objs.container(t)

			if job.Name != "kube-ecr-refresher-cleanup" || job.Namespace != namespace {
				t.Errorf("Job = %s/%s, want %s/kube-ecr-refresher-cleanup", job.Namespace, job.Name, namespace)
			}
			wantAnnotations := map[string]string{
				"helm.sh/hook":               "pre-delete",
				"helm.sh/hook-delete-policy": "before-hook-creation,hook-succeeded",
				// Argo CD renders with helm template and writes no Helm
				// release record: the Job could never start there.
				"argocd.argoproj.io/hook": "Skip",
			}
			if diff := cmp.Diff(wantAnnotations, job.Annotations); diff != "" {
				t.Errorf("Job annotations (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(ptr.To[int32](1), job.Spec.BackoffLimit); diff != "" {
				t.Errorf("backoffLimit (-want +got):\n%s", diff)
			}
			// Helm waits for a hook up to --timeout, 300 s by default: the
			// Job must fail first, with its own reason.
			if diff := cmp.Diff(ptr.To[int64](240), job.Spec.ActiveDeadlineSeconds); diff != "" {
				t.Errorf("activeDeadlineSeconds (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(ptr.To[int32](3600), job.Spec.TTLSecondsAfterFinished); diff != "" {
				t.Errorf("ttlSecondsAfterFinished (-want +got):\n%s", diff)
			}

			pod, ctrlPod := job.Spec.Template.Spec, d.Spec.Template.Spec
			if pod.RestartPolicy != corev1.RestartPolicyNever {
				t.Errorf("restartPolicy = %q, want Never", pod.RestartPolicy)
			}
			if pod.ServiceAccountName != ctrlPod.ServiceAccountName {
				t.Errorf("serviceAccountName = %q, want the controller's %q", pod.ServiceAccountName, ctrlPod.ServiceAccountName)
			}
			if diff := cmp.Diff(ctrlPod.SecurityContext, pod.SecurityContext); diff != "" {
				t.Errorf("pod securityContext differs from the controller's (-controller +job):\n%s", diff)
			}
			c := only(t, "containers", pod.Containers)
			if diff := cmp.Diff(append([]string{"--cleanup"}, tt.wantArgs...), c.Args); diff != "" {
				t.Errorf("args (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantArgs, controller.Args); diff != "" {
				t.Errorf("controller args (-want +got):\n%s", diff)
			}
			if c.Image != controller.Image {
				t.Errorf("image = %q, want the controller's %q", c.Image, controller.Image)
			}
			if diff := cmp.Diff(controller.SecurityContext, c.SecurityContext); diff != "" {
				t.Errorf("container securityContext differs from the controller's (-controller +job):\n%s", diff)
			}
			if diff := cmp.Diff(controller.Resources, c.Resources); diff != "" {
				t.Errorf("resources differ from the controller's (-controller +job):\n%s", diff)
			}
			// The controller's environment minus the AWS credentials:
			// cleanup reads no token, and a Secret deleted before the
			// uninstall must not keep the Pod from starting.
			wantEnv := slices.DeleteFunc(slices.Clone(controller.Env), func(e corev1.EnvVar) bool {
				return slices.Contains([]string{"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY",
					"AWS_ROLE_ARN", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_SESSION_NAME"}, e.Name)
			})
			if diff := cmp.Diff(wantEnv, c.Env); diff != "" {
				t.Errorf("env (-want +got):\n%s", diff)
			}
			// Only the release record: no extraVolumes, whose sources may be
			// gone by the time of the uninstall.
			wantVolumes := []corev1.Volume{{Name: "helm-release", VolumeSource: corev1.VolumeSource{
				Secret: &corev1.SecretVolumeSource{SecretName: releaseRecord, Optional: ptr.To(false)},
			}}}
			if diff := cmp.Diff(wantVolumes, pod.Volumes); diff != "" {
				t.Errorf("volumes (-want +got):\n%s", diff)
			}
			// A volume no container mounts is not set up, and would not
			// keep the Pod from starting.
			wantMounts := []corev1.VolumeMount{{Name: "helm-release", MountPath: "/var/run/kube-ecr-refresher/helm-release", ReadOnly: true}}
			if diff := cmp.Diff(wantMounts, c.VolumeMounts); diff != "" {
				t.Errorf("volumeMounts (-want +got):\n%s", diff)
			}
			// The cleanup Pod must not count for the PodDisruptionBudget nor
			// be an endpoint of the metrics Service.
			if labels.SelectorFromSet(d.Spec.Selector.MatchLabels).Matches(labels.Set(job.Spec.Template.Labels)) {
				t.Errorf("the Deployment's selector %v selects the cleanup Pod's labels %v", d.Spec.Selector.MatchLabels, job.Spec.Template.Labels)
			}
		})
	}

	t.Run("The deadline is configurable", func(t *testing.T) {
		job := h.mustRender(t, append([]string{"--set", "aws.region=eu-west-1", "--set", "cleanup.activeDeadlineSeconds=600"}, optIn...)...).job(t)
		if diff := cmp.Diff(ptr.To[int64](600), job.Spec.ActiveDeadlineSeconds); diff != "" {
			t.Errorf("activeDeadlineSeconds (-want +got):\n%s", diff)
		}
	})
	for _, args := range [][]string{nil, {"--set", "cleanup.onUninstall=false"}} {
		name := "It is off by default"
		if args != nil {
			name = "It can be turned off"
		}
		t.Run(name, func(t *testing.T) {
			objs := h.mustRender(t, append([]string{"--set", "aws.region=eu-west-1"}, args...)...)
			if len(objs.jobs) != 0 {
				t.Errorf("got %d Jobs, want none", len(objs.jobs))
			}
		})
	}
}

// cleans reports whether the controller process of c runs the --cleanup
// mode, which deletes every Secret of ours: KUBE_ECR_REFRESHER_CLEANUP,
// unless a --cleanup flag follows (the last one wins). Whatever does not
// parse as false counts as on.
func cleans(c corev1.Container) bool {
	on := false
	for _, e := range c.Env {
		if e.Name == "KUBE_ECR_REFRESHER_CLEANUP" {
			b, err := strconv.ParseBool(e.Value)
			on = e.ValueFrom != nil || err != nil || b
		}
	}
	for _, arg := range append(slices.Clone(c.Command), c.Args...) {
		name, value, hasValue := strings.Cut(strings.TrimLeft(arg, "-"), "=")
		if !strings.HasPrefix(arg, "-") || name != "cleanup" {
			continue
		}
		b, err := strconv.ParseBool(value)
		on = !hasValue || err != nil || b
	}
	return on
}

// TestNothingRenderedDeletes asserts what makes `helm template | kubectl
// apply`, kustomize and Argo CD safe: without the opt-in no rendering has a
// workload that runs the cleanup, and with it only the pre-delete hook does,
// behind the Helm release record that only Helm writes.
func TestNothingRenderedDeletes(t *testing.T) {
	h := newHelm(t)
	type rendering struct {
		name string
		args []string
		// optedIn: the values turn the cleanup on.
		optedIn bool
	}
	renderings := []rendering{{name: "defaults", args: []string{"--set", "aws.region=eu-west-1"}}}
	for _, f := range ciValues(t) {
		raw, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		var v struct {
			Cleanup struct {
				OnUninstall bool `json:"onUninstall"`
			} `json:"cleanup"`
		}
		if err := yamlUnmarshal(string(raw), &v); err != nil {
			t.Fatal(err)
		}
		name := strings.TrimSuffix(filepath.Base(f), "-values.yaml")
		renderings = append(renderings, rendering{name: name, args: []string{"-f", f}, optedIn: v.Cleanup.OnUninstall})
	}
	for _, r := range renderings {
		for _, set := range []string{"", "false", "true"} {
			name, args, optedIn := r.name+" as is", slices.Clone(r.args), r.optedIn
			if set != "" {
				name = r.name + " with cleanup.onUninstall=" + set
				args = append(args, "--set", "cleanup.onUninstall="+set)
				optedIn = set == "true"
			}
			t.Run(name, func(t *testing.T) {
				objs := h.mustRender(t, args...)
				for _, d := range objs.deployments {
					for _, c := range d.Spec.Template.Spec.Containers {
						if cleans(c) {
							t.Errorf("Deployment %s container %s runs the cleanup", d.Name, c.Name)
						}
					}
				}
				for _, cj := range objs.cronJobs {
					for _, c := range cj.Spec.JobTemplate.Spec.Template.Spec.Containers {
						if cleans(c) {
							t.Errorf("CronJob %s container %s runs the cleanup", cj.Name, c.Name)
						}
					}
				}
				var cleaners []string
				for _, j := range objs.jobs {
					for _, c := range j.Spec.Template.Spec.Containers {
						if cleans(c) {
							cleaners = append(cleaners, j.Name)
						}
					}
					if j.Annotations["helm.sh/hook"] != "pre-delete" {
						t.Errorf("Job %s is no pre-delete hook: kubectl, kustomize and Argo CD would run it at once", j.Name)
					}
					if !needsRecord(j.Spec.Template.Spec, releaseRecord) {
						t.Errorf("Job %s starts without the Helm release record %s", j.Name, releaseRecord)
					}
				}
				var want []string
				if optedIn {
					want = []string{"kube-ecr-refresher-cleanup"}
				}
				if diff := cmp.Diff(want, cleaners); diff != "" {
					t.Errorf("Jobs that run the cleanup, opted in: %t (-want +got):\n%s", optedIn, diff)
				}
			})
		}
	}
}

// releaseRecord is the Secret in which Helm's default storage keeps revision
// 1 of the release, the one helm template renders.
const releaseRecord = "sh.helm.release.v1." + release + ".v1"

// needsRecord reports whether a Pod cannot start without the Secret name: a
// volume of it, not optional, that a container mounts (the kubelet sets up no
// other volume).
func needsRecord(pod corev1.PodSpec, name string) bool {
	for _, v := range pod.Volumes {
		if v.Secret == nil || v.Secret.SecretName != name || (v.Secret.Optional != nil && *v.Secret.Optional) {
			continue
		}
		for _, c := range pod.Containers {
			for _, m := range c.VolumeMounts {
				if m.Name == v.Name {
					return true
				}
			}
		}
	}
	return false
}
