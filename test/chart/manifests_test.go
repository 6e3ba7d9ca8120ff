//go:build integration

package chart

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestManifestsUpToDate regenerates the plain manifests into a temporary
// directory and fails when deploy/*.yaml differ: run `make manifests`.
func TestManifestsUpToDate(t *testing.T) {
	h := newHelm(t)
	out := t.TempDir()
	cmd := exec.Command(filepath.Join(repoRoot(t), "hack", "gen-manifests.sh"), out)
	cmd.Env = append(h.env, "HELM="+h.bin)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("hack/gen-manifests.sh: %v\n%s", err, b)
	}
	for _, f := range []string{"common.yaml", "secret.yaml", "deployment.yaml"} {
		want, err := os.ReadFile(filepath.Join(out, f))
		if err != nil {
			t.Fatal(err)
		}
		got, err := os.ReadFile(filepath.Join(repoRoot(t), "deploy", f))
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(string(want), string(got)); diff != "" {
			t.Errorf("deploy/%s is stale; run `make manifests` (-generated +committed):\n%s", f, diff)
		}
	}
}

// TestManifestsContent checks the committed plain manifests: what each file
// holds, no Helm labels, every namespaced object in kube-ecr-refresher, and
// the Deployment reading the Secret that secret.yaml creates.
func TestManifestsContent(t *testing.T) {
	want := map[string][]string{
		"common.yaml": {
			"Namespace/kube-ecr-refresher",
			"ServiceAccount/kube-ecr-refresher",
			"ClusterRole/kube-ecr-refresher",
			"ClusterRoleBinding/kube-ecr-refresher",
			"Role/kube-ecr-refresher",
			"RoleBinding/kube-ecr-refresher",
		},
		"secret.yaml":     {"Secret/kube-ecr-refresher-aws"},
		"deployment.yaml": {"Deployment/kube-ecr-refresher", "PodDisruptionBudget/kube-ecr-refresher"},
	}
	all := &objects{}
	for _, f := range []string{"common.yaml", "secret.yaml", "deployment.yaml"} {
		raw, err := os.ReadFile(filepath.Join(repoRoot(t), "deploy", f))
		if err != nil {
			t.Fatal(err)
		}
		for _, helmOnly := range []string{"helm.sh/chart", "managed-by: Helm", "{{"} {
			if strings.Contains(string(raw), helmOnly) {
				t.Errorf("deploy/%s contains %q", f, helmOnly)
			}
		}
		objs, err := decode(string(raw))
		if err != nil {
			t.Fatalf("deploy/%s: %v", f, err)
		}
		if diff := cmp.Diff(want[f], objs.kinds); diff != "" {
			t.Errorf("deploy/%s objects (-want +got):\n%s", f, diff)
		}
		all.secrets = append(all.secrets, objs.secrets...)
		all.deployments = append(all.deployments, objs.deployments...)
		all.serviceAccounts = append(all.serviceAccounts, objs.serviceAccounts...)
		all.roles = append(all.roles, objs.roles...)
		all.roleBindings = append(all.roleBindings, objs.roleBindings...)
		all.pdbs = append(all.pdbs, objs.pdbs...)
	}
	namespaces := map[string]string{}
	for _, o := range all.secrets {
		namespaces["Secret/"+o.Name] = o.Namespace
	}
	for _, o := range all.deployments {
		namespaces["Deployment/"+o.Name] = o.Namespace
	}
	for _, o := range all.serviceAccounts {
		namespaces["ServiceAccount/"+o.Name] = o.Namespace
	}
	for _, o := range all.roles {
		namespaces["Role/"+o.Name] = o.Namespace
	}
	for _, o := range all.roleBindings {
		namespaces["RoleBinding/"+o.Name] = o.Namespace
	}
	for _, o := range all.pdbs {
		namespaces["PodDisruptionBudget/"+o.Name] = o.Namespace
	}
	for obj, ns := range namespaces {
		if ns != namespace {
			t.Errorf("%s is in namespace %q, want %q", obj, ns, namespace)
		}
	}
	secret := only(t, "Secrets", all.secrets)
	for _, e := range all.container(t).Env {
		if ref := e.ValueFrom; ref != nil && ref.SecretKeyRef != nil && ref.SecretKeyRef.Name != secret.Name {
			t.Errorf("env %s reads Secret %q, want %q from secret.yaml", e.Name, ref.SecretKeyRef.Name, secret.Name)
		}
	}
}
