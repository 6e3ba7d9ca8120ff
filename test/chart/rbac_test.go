//go:build integration

package chart

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	rbacv1 "k8s.io/api/rbac/v1"
)

func namespacesRule() rbacv1.PolicyRule {
	return rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"namespaces"}, Verbs: []string{"get", "list", "watch"}}
}

func secretRules(name string) []rbacv1.PolicyRule {
	return []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"secrets"}, ResourceNames: []string{name}, Verbs: []string{"get", "list", "watch", "update", "patch", "delete"}},
		{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"create"}},
	}
}

func serviceAccountsRule(names ...string) rbacv1.PolicyRule {
	return rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"serviceaccounts"}, ResourceNames: names, Verbs: []string{"get", "list", "watch", "update", "patch"}}
}

func leaseRules(name string) []rbacv1.PolicyRule {
	return []rbacv1.PolicyRule{
		{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, Verbs: []string{"create"}},
		{APIGroups: []string{"coordination.k8s.io"}, Resources: []string{"leases"}, ResourceNames: []string{name}, Verbs: []string{"get", "update", "patch"}},
	}
}

func eventsRule() rbacv1.PolicyRule {
	return rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"events"}, Verbs: []string{"create", "patch"}}
}

func clusterRules(secret string, sa ...rbacv1.PolicyRule) []rbacv1.PolicyRule {
	return append(append([]rbacv1.PolicyRule{namespacesRule()}, secretRules(secret)...), sa...)
}

// TestRBACRules asserts the exact rules of the ClusterRole and the Lease Role:
// least privilege, scoped by resourceNames wherever Kubernetes allows.
func TestRBACRules(t *testing.T) {
	h := newHelm(t)
	tests := []struct {
		name string
		args []string
		// wantRole nil means no Role and no RoleBinding.
		wantClusterRole, wantRole []rbacv1.PolicyRule
	}{
		{
			name:            "Defaults scope the Secret, the default ServiceAccount and the Lease by name",
			args:            []string{"--set", "aws.region=eu-west-1"},
			wantClusterRole: clusterRules("ecr-pull-secret", serviceAccountsRule("default")),
			wantRole:        leaseRules("kube-ecr-refresher"),
		},
		{
			name:            "Configured names are the resource names",
			args:            []string{"-f", ciFile(t, "target-namespaces")},
			wantClusterRole: clusterRules("ecr-credentials", serviceAccountsRule("default", "builder")),
			wantRole:        leaseRules("ecr-refresher-leader"),
		},
		{
			name:            "An empty ServiceAccount list grants nothing on ServiceAccounts",
			args:            []string{"--set", "aws.region=eu-west-1", "--set-json", "config.serviceAccounts=[]"},
			wantClusterRole: clusterRules("ecr-pull-secret"),
			wantRole:        leaseRules("kube-ecr-refresher"),
		},
		{
			name:            "A wildcard ServiceAccount drops the resource names",
			args:            []string{"--set", "aws.region=eu-west-1", "--set-json", `config.serviceAccounts=["*"]`},
			wantClusterRole: clusterRules("ecr-pull-secret", serviceAccountsRule()),
			wantRole:        leaseRules("kube-ecr-refresher"),
		},
		{
			name:            "The Lease name follows the release's full name",
			args:            []string{"--set", "aws.region=eu-west-1", "--set", "fullnameOverride=ecr"},
			wantClusterRole: clusterRules("ecr-pull-secret", serviceAccountsRule("default")),
			wantRole:        leaseRules("ecr"),
		},
		{
			name:            "Events add create and patch on events, for no name",
			args:            []string{"-f", ciFile(t, "metrics")},
			wantClusterRole: clusterRules("ecr-pull-secret", serviceAccountsRule("default"), eventsRule()),
			wantRole:        leaseRules("kube-ecr-refresher"),
		},
		{
			name:            "Events without ServiceAccounts follow the Secret rules",
			args:            []string{"--set", "aws.region=eu-west-1", "--set", "events.enabled=true", "--set-json", "config.serviceAccounts=[]"},
			wantClusterRole: clusterRules("ecr-pull-secret", eventsRule()),
			wantRole:        leaseRules("kube-ecr-refresher"),
		},
		{
			name:            "Metrics alone add no rule",
			args:            []string{"--set", "aws.region=eu-west-1", "--set", "metrics.enabled=true", "--set", "metrics.serviceMonitor.enabled=true"},
			wantClusterRole: clusterRules("ecr-pull-secret", serviceAccountsRule("default")),
			wantRole:        leaseRules("kube-ecr-refresher"),
		},
		{
			name:            "A CronJob takes the Lease like a replica",
			args:            []string{"-f", ciFile(t, "cronjob")},
			wantClusterRole: clusterRules("ecr-pull-secret", serviceAccountsRule("default"), eventsRule()),
			wantRole:        leaseRules("kube-ecr-refresher"),
		},
		{
			name:            "A single replica takes the Lease too",
			args:            []string{"-f", ciFile(t, "single-replica")},
			wantClusterRole: clusterRules("ecr-pull-secret", serviceAccountsRule("default")),
			wantRole:        leaseRules("kube-ecr-refresher"),
		},
		{
			name:            "A leftover config.leaderElect=true changes nothing",
			args:            []string{"-f", ciFile(t, "single-replica"), "--set", "config.leaderElect=true"},
			wantClusterRole: clusterRules("ecr-pull-secret", serviceAccountsRule("default")),
			wantRole:        leaseRules("kube-ecr-refresher"),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs := h.mustRender(t, tt.args...)
			cr := only(t, "ClusterRoles", objs.clusterRoles)
			if diff := cmp.Diff(tt.wantClusterRole, cr.Rules); diff != "" {
				t.Errorf("ClusterRole rules (-want +got):\n%s", diff)
			}
			sa := only(t, "ServiceAccounts", objs.serviceAccounts)
			subjects := []rbacv1.Subject{{Kind: "ServiceAccount", Name: sa.Name, Namespace: namespace}}
			crb := only(t, "ClusterRoleBindings", objs.clusterRoleBindings)
			if diff := cmp.Diff(rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: cr.Name}, crb.RoleRef); diff != "" {
				t.Errorf("ClusterRoleBinding roleRef (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(subjects, crb.Subjects); diff != "" {
				t.Errorf("ClusterRoleBinding subjects (-want +got):\n%s", diff)
			}
			if tt.wantRole == nil {
				if len(objs.roles)+len(objs.roleBindings) != 0 {
					t.Errorf("got %d Roles and %d RoleBindings, want none", len(objs.roles), len(objs.roleBindings))
				}
				return
			}
			role := only(t, "Roles", objs.roles)
			if role.Namespace != namespace {
				t.Errorf("Role namespace = %q, want %q", role.Namespace, namespace)
			}
			if diff := cmp.Diff(tt.wantRole, role.Rules); diff != "" {
				t.Errorf("Role rules (-want +got):\n%s", diff)
			}
			rb := only(t, "RoleBindings", objs.roleBindings)
			if diff := cmp.Diff(rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: role.Name}, rb.RoleRef); diff != "" {
				t.Errorf("RoleBinding roleRef (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(subjects, rb.Subjects); diff != "" {
				t.Errorf("RoleBinding subjects (-want +got):\n%s", diff)
			}
		})
	}
}

// TestRenderedKinds asserts that the chart renders these objects and nothing
// else, so no permission or workload slips in unnoticed.
func TestRenderedKinds(t *testing.T) {
	h := newHelm(t)
	tests := []struct {
		name string
		args []string
		want []string
	}{
		{
			name: "Defaults with keyless credentials",
			args: []string{"--set", "aws.region=eu-west-1"},
			want: []string{
				"PodDisruptionBudget/kube-ecr-refresher",
				"ServiceAccount/kube-ecr-refresher",
				"ClusterRole/kube-ecr-refresher",
				"ClusterRoleBinding/kube-ecr-refresher",
				"Role/kube-ecr-refresher",
				"RoleBinding/kube-ecr-refresher",
				"Deployment/kube-ecr-refresher",
			},
		},
		{
			name: "Static keys add the chart's Secret",
			args: []string{"-f", ciFile(t, "static-keys")},
			want: []string{
				"PodDisruptionBudget/kube-ecr-refresher",
				"ServiceAccount/kube-ecr-refresher",
				"Secret/kube-ecr-refresher-aws",
				"ClusterRole/kube-ecr-refresher",
				"ClusterRoleBinding/kube-ecr-refresher",
				"Role/kube-ecr-refresher",
				"RoleBinding/kube-ecr-refresher",
				"Deployment/kube-ecr-refresher",
			},
		},
		{
			name: "No RBAC, an existing ServiceAccount and no cleanup leave only the workload",
			args: []string{
				"--set", "aws.region=eu-west-1", "--set", "rbac.create=false", "--set", "serviceAccount.create=false",
				"--set", "serviceAccount.name=ecr", "--set", "cleanup.onUninstall=false",
			},
			want: []string{
				"PodDisruptionBudget/kube-ecr-refresher",
				"Deployment/kube-ecr-refresher",
			},
		},
		{
			name: "The uninstall cleanup, when opted in, adds its hook Job last",
			args: []string{"--set", "aws.region=eu-west-1", "--set", "cleanup.onUninstall=true"},
			want: []string{
				"PodDisruptionBudget/kube-ecr-refresher",
				"ServiceAccount/kube-ecr-refresher",
				"ClusterRole/kube-ecr-refresher",
				"ClusterRoleBinding/kube-ecr-refresher",
				"Role/kube-ecr-refresher",
				"RoleBinding/kube-ecr-refresher",
				"Deployment/kube-ecr-refresher",
				"Job/kube-ecr-refresher-cleanup",
			},
		},
		{
			name: "A CronJob replaces the Deployment and its PodDisruptionBudget",
			args: []string{"-f", ciFile(t, "cronjob")},
			want: []string{
				"ServiceAccount/kube-ecr-refresher",
				"ClusterRole/kube-ecr-refresher",
				"ClusterRoleBinding/kube-ecr-refresher",
				"Role/kube-ecr-refresher",
				"RoleBinding/kube-ecr-refresher",
				"CronJob/kube-ecr-refresher",
			},
		},
		{
			name: "Metrics add their Service, ServiceMonitor and PrometheusRule",
			args: []string{"-f", ciFile(t, "metrics")},
			want: []string{
				"PodDisruptionBudget/kube-ecr-refresher",
				"ServiceAccount/kube-ecr-refresher",
				"ClusterRole/kube-ecr-refresher",
				"ClusterRoleBinding/kube-ecr-refresher",
				"Role/kube-ecr-refresher",
				"RoleBinding/kube-ecr-refresher",
				"Service/kube-ecr-refresher-metrics",
				"Deployment/kube-ecr-refresher",
				"PrometheusRule/kube-ecr-refresher",
				"ServiceMonitor/kube-ecr-refresher",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs := h.mustRender(t, tt.args...)
			if diff := cmp.Diff(tt.want, objs.kinds); diff != "" {
				t.Errorf("rendered objects (-want +got):\n%s", diff)
			}
		})
	}
}
