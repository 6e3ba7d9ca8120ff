//go:build integration

package chart

import (
	"slices"
	"testing"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/utils/ptr"
)

// TestCleanupJob asserts the uninstall hook: a pre-delete Job running the
// controller's image with --cleanup, as the controller's ServiceAccount, with
// the controller's settings but no AWS keys, and bounded in time.
func TestCleanupJob(t *testing.T) {
	h := newHelm(t)
	tests := []struct {
		name string
		args []string
	}{
		{name: "Keyless credentials", args: []string{"-f", ciFile(t, "irsa")}},
		{name: "Static keys stay out of the Job", args: []string{"-f", ciFile(t, "static-keys")}},
		{name: "Every setting is passed on", args: []string{"-f", ciFile(t, "target-namespaces"), "-f", ciFile(t, "metrics")}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs := h.mustRender(t, tt.args...)
			job := objs.job(t)
			d := only(t, "Deployments", objs.deployments)
			controller := objs.container(t)

			if job.Name != "kube-ecr-refresher-cleanup" || job.Namespace != namespace {
				t.Errorf("Job = %s/%s, want %s/kube-ecr-refresher-cleanup", job.Namespace, job.Name, namespace)
			}
			wantAnnotations := map[string]string{
				"helm.sh/hook":               "pre-delete",
				"helm.sh/hook-delete-policy": "before-hook-creation,hook-succeeded",
			}
			if diff := cmp.Diff(wantAnnotations, job.Annotations); diff != "" {
				t.Errorf("Job annotations (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(ptr.To[int32](1), job.Spec.BackoffLimit); diff != "" {
				t.Errorf("backoffLimit (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(ptr.To[int64](300), job.Spec.ActiveDeadlineSeconds); diff != "" {
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
			if diff := cmp.Diff([]string{"--cleanup"}, c.Args); diff != "" {
				t.Errorf("args (-want +got):\n%s", diff)
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
			// The controller's environment minus the AWS keys: cleanup
			// reads no token, and a Secret deleted before the uninstall
			// must not keep the Pod from starting.
			wantEnv := slices.DeleteFunc(slices.Clone(controller.Env), func(e corev1.EnvVar) bool {
				return e.Name == "AWS_ACCESS_KEY_ID" || e.Name == "AWS_SECRET_ACCESS_KEY"
			})
			if diff := cmp.Diff(wantEnv, c.Env); diff != "" {
				t.Errorf("env (-want +got):\n%s", diff)
			}
			// The cleanup Pod must not count for the PodDisruptionBudget nor
			// be an endpoint of the metrics Service.
			if labels.SelectorFromSet(d.Spec.Selector.MatchLabels).Matches(labels.Set(job.Spec.Template.Labels)) {
				t.Errorf("the Deployment's selector %v selects the cleanup Pod's labels %v", d.Spec.Selector.MatchLabels, job.Spec.Template.Labels)
			}
		})
	}

	t.Run("It can be turned off", func(t *testing.T) {
		objs := h.mustRender(t, "--set", "aws.region=eu-west-1", "--set", "cleanup.onUninstall=false")
		if len(objs.jobs) != 0 {
			t.Errorf("got %d Jobs, want none", len(objs.jobs))
		}
	})
}
