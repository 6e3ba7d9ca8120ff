//go:build integration

package chart

import (
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/utils/ptr"
)

// elects reports whether the controller process of c runs with leader
// election, and why not: the last KUBE_ECR_REFRESHER_LEADER_ELECT wins (as
// in the kubelet), and no flag may override it.
func elects(c corev1.Container) (bool, string) {
	for _, arg := range append(append([]string{}, c.Command...), c.Args...) {
		if strings.HasPrefix(strings.TrimLeft(arg, "-"), "leader-elect") {
			return false, "flag " + arg
		}
	}
	value, set := "", false
	for _, e := range c.Env {
		if e.Name == "KUBE_ECR_REFRESHER_LEADER_ELECT" {
			value, set = e.Value, true
			if e.ValueFrom != nil {
				return false, "KUBE_ECR_REFRESHER_LEADER_ELECT from " + e.ValueFrom.String()
			}
		}
	}
	if !set {
		// The controller's default is on, but the chart states it.
		return false, "KUBE_ECR_REFRESHER_LEADER_ELECT not rendered"
	}
	on, err := strconv.ParseBool(value)
	if err != nil || !on {
		return false, "KUBE_ECR_REFRESHER_LEADER_ELECT=" + value
	}
	return true, ""
}

// writersDuringRollout is the most Pods of d that may run at once during a
// rollout, and so write at once without leader election.
func writersDuringRollout(d appsv1.Deployment) int {
	replicas := 1
	if d.Spec.Replicas != nil {
		replicas = int(*d.Spec.Replicas)
	}
	if d.Spec.Strategy.Type == appsv1.RecreateDeploymentStrategyType {
		return replicas
	}
	surge := intstr.FromString("25%") // the API default
	if ru := d.Spec.Strategy.RollingUpdate; ru != nil && ru.MaxSurge != nil {
		surge = *ru.MaxSurge
	}
	extra, err := intstr.GetScaledValueFromIntOrPercent(&surge, replicas, true)
	if err != nil {
		return 1 << 30
	}
	return replicas + extra
}

// TestAlwaysElected asserts that no rendering of the chart yields a workload
// that writes without leader election: not the Deployment with any replica
// count (a rollout surges one more Pod), not the CronJob's passes, not the
// uninstall hook, which takes the Lease to stop the others. Values that try
// to turn it off must fail to render.
func TestAlwaysElected(t *testing.T) {
	h := newHelm(t)
	variants := []struct {
		name string
		args []string
		// wantErr: this variant must not render.
		wantErr bool
	}{
		{name: "as is"},
		{name: "with a leftover config.leaderElect=true", args: []string{"--set", "config.leaderElect=true"}},
		{name: "without RBAC or cleanup", args: []string{"--set", "rbac.create=false", "--set", "cleanup.onUninstall=false"}},
		{name: "with the uninstall cleanup", args: []string{"--set", "cleanup.onUninstall=true"}},
		{name: "with config.leaderElect=false", args: []string{"--set", "config.leaderElect=false"}, wantErr: true},
		{name: "with leader election off through extraEnv", args: []string{"--set-json", `extraEnv=[{"name":"KUBE_ECR_REFRESHER_LEADER_ELECT","value":"false"}]`}, wantErr: true},
	}
	rendered := 0
	for _, values := range ciValues(t) {
		for _, replicas := range []int{1, 2, 3} {
			for _, v := range variants {
				name := strings.TrimSuffix(filepath.Base(values), "-values.yaml") + " with " + strconv.Itoa(replicas) + " replicas " + v.name
				t.Run(name, func(t *testing.T) {
					args := append([]string{"-f", values, "--set", "replicaCount=" + strconv.Itoa(replicas)}, v.args...)
					out, err := h.template(t, args...)
					if v.wantErr {
						if err == nil {
							t.Fatalf("rendered, want an error")
						}
						return
					}
					if err != nil {
						t.Fatal(err)
					}
					objs, err := decode(out)
					if err != nil {
						t.Fatal(err)
					}
					rendered++
					for _, d := range objs.deployments {
						c := only(t, "containers", d.Spec.Template.Spec.Containers)
						if ok, why := elects(c); !ok {
							t.Errorf("Deployment %s: up to %d Pods write at once during a rollout, without leader election (%s)", d.Name, writersDuringRollout(d), why)
						}
						if diff := cmp.Diff(wantStrategy, d.Spec.Strategy); diff != "" {
							t.Errorf("Deployment %s strategy (-want +got):\n%s", d.Name, diff)
						}
					}
					for _, cj := range objs.cronJobs {
						if ok, why := elects(only(t, "containers", cj.Spec.JobTemplate.Spec.Template.Spec.Containers)); !ok {
							t.Errorf("CronJob %s: a pass runs without leader election (%s)", cj.Name, why)
						}
					}
					for _, j := range objs.jobs {
						if ok, why := elects(only(t, "containers", j.Spec.Template.Spec.Containers)); !ok {
							t.Errorf("Job %s: the cleanup does not take the Lease (%s)", j.Name, why)
						}
					}
				})
			}
		}
	}
	if rendered == 0 {
		t.Errorf("no values rendered")
	}
}

// wantStrategy starts a new Pod before an old one stops: with leader
// election the new one stands by until the old leader releases the Lease.
var wantStrategy = appsv1.DeploymentStrategy{
	Type: appsv1.RollingUpdateDeploymentStrategyType,
	RollingUpdate: &appsv1.RollingUpdateDeployment{
		MaxSurge:       ptr.To(intstr.FromInt32(1)),
		MaxUnavailable: ptr.To(intstr.FromInt32(0)),
	},
}

// TestWritersDuringRollout checks the arithmetic TestAlwaysElected reports.
func TestWritersDuringRollout(t *testing.T) {
	d := func(replicas int32, s appsv1.DeploymentStrategy) appsv1.Deployment {
		return appsv1.Deployment{Spec: appsv1.DeploymentSpec{Replicas: ptr.To(replicas), Strategy: s}}
	}
	tests := []struct {
		name string
		d    appsv1.Deployment
		want int
	}{
		{name: "The API default surges 25%, rounded up", d: d(1, appsv1.DeploymentStrategy{}), want: 2},
		{name: "The chart's strategy surges one Pod", d: d(2, wantStrategy), want: 3},
		{name: "Recreate never surges", d: d(1, appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType}), want: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := writersDuringRollout(tt.d); got != tt.want {
				t.Errorf("writersDuringRollout = %d, want %d", got, tt.want)
			}
		})
	}
}
