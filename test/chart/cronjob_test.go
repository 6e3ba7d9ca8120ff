//go:build integration

package chart

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/utils/ptr"
)

// TestCronJob asserts the CronJob that replaces the Deployment: one pass per
// run with --once, never two at a time, and the Deployment's Pod settings.
func TestCronJob(t *testing.T) {
	h := newHelm(t)
	tests := []struct {
		name string
		args []string
		// want is the CronJob spec without its Pod template.
		want batchv1.CronJobSpec
	}{
		{
			name: "Defaults run every four hours",
			args: []string{"--set", "aws.region=eu-west-1", "--set", "cronJob.enabled=true"},
			want: batchv1.CronJobSpec{
				Schedule:                   "0 */4 * * *",
				ConcurrencyPolicy:          batchv1.ForbidConcurrent,
				SuccessfulJobsHistoryLimit: ptr.To[int32](1),
				FailedJobsHistoryLimit:     ptr.To[int32](3),
				JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{
					BackoffLimit: ptr.To[int32](2), ActiveDeadlineSeconds: ptr.To[int64](600),
				}},
			},
		},
		{
			name: "Every setting is configurable",
			args: []string{"-f", ciFile(t, "cronjob")},
			want: batchv1.CronJobSpec{
				Schedule:                   "15 */4 * * *",
				ConcurrencyPolicy:          batchv1.ForbidConcurrent,
				SuccessfulJobsHistoryLimit: ptr.To[int32](2),
				FailedJobsHistoryLimit:     ptr.To[int32](5),
				JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{
					BackoffLimit: ptr.To[int32](1), ActiveDeadlineSeconds: ptr.To[int64](300),
				}},
			},
		},
		{
			name: "The web identity's token and variables are the Deployment's",
			args: []string{"-f", ciFile(t, "web-identity"), "--set", "cronJob.enabled=true"},
			want: batchv1.CronJobSpec{
				Schedule:                   "0 */4 * * *",
				ConcurrencyPolicy:          batchv1.ForbidConcurrent,
				SuccessfulJobsHistoryLimit: ptr.To[int32](1),
				FailedJobsHistoryLimit:     ptr.To[int32](3),
				JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{
					BackoffLimit: ptr.To[int32](2), ActiveDeadlineSeconds: ptr.To[int64](600),
				}},
			},
		},
		{
			name: "Extra flags, volumes and labels are the Deployment's",
			args: []string{"-f", ciFile(t, "extras"), "--set", "cronJob.enabled=true", "--set", "metrics.serviceMonitor.enabled=false"},
			want: batchv1.CronJobSpec{
				Schedule:                   "0 */4 * * *",
				ConcurrencyPolicy:          batchv1.ForbidConcurrent,
				SuccessfulJobsHistoryLimit: ptr.To[int32](1),
				FailedJobsHistoryLimit:     ptr.To[int32](3),
				JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{
					BackoffLimit: ptr.To[int32](2), ActiveDeadlineSeconds: ptr.To[int64](600),
				}},
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs := h.mustRender(t, tt.args...)
			if len(objs.deployments)+len(objs.pdbs) != 0 {
				t.Errorf("got %d Deployments and %d PodDisruptionBudgets, want none", len(objs.deployments), len(objs.pdbs))
			}
			cj := only(t, "CronJobs", objs.cronJobs)
			got := cj.Spec.DeepCopy()
			got.JobTemplate.Labels = nil
			got.JobTemplate.Spec.Template = corev1.PodTemplateSpec{}
			if diff := cmp.Diff(tt.want, *got); diff != "" {
				t.Errorf("CronJob spec (-want +got):\n%s", diff)
			}

			// The same Pod as the Deployment's with the same values, but
			// one pass: --once, no restarts in place, no probes, no ports.
			ref := h.mustRender(t, append(tt.args, "--set", "cronJob.enabled=false")...)
			d := only(t, "Deployments", ref.deployments)
			wantPod := d.Spec.Template.Spec.DeepCopy()
			wantPod.RestartPolicy = corev1.RestartPolicyNever
			wantPod.TopologySpreadConstraints = nil
			c := &wantPod.Containers[0]
			c.Args = append([]string{"--once"}, c.Args...)
			c.Ports, c.LivenessProbe, c.ReadinessProbe = nil, nil, nil
			if diff := cmp.Diff(*wantPod, cj.Spec.JobTemplate.Spec.Template.Spec); diff != "" {
				t.Errorf("Pod spec (-want +got):\n%s", diff)
			}
		})
	}
}
