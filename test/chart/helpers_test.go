//go:build integration

// Package chart tests the Helm chart, the plain manifests rendered from it and
// the Dockerfile, by running the pinned Helm and Dockerfile linter binaries.
package chart

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

const (
	release   = "kube-ecr-refresher"
	namespace = "kube-ecr-refresher"
)

// repoRoot returns the repository root: this package lives in test/chart.
func repoRoot(t *testing.T) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatalf("find repository root: %v", err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("find repository root: %v", err)
	}
	return root
}

func chartDir(t *testing.T) string {
	return filepath.Join(repoRoot(t), "deploy", "helm", "kube-ecr-refresher")
}

// tool returns the path of a pinned tool: $envVar when set, else the binary
// hack/tools/build.sh builds (once; later calls find it in the cache).
func tool(t *testing.T, name, envVar string) string {
	t.Helper()
	if p := os.Getenv(envVar); p != "" {
		return p
	}
	cmd := exec.Command(filepath.Join(repoRoot(t), "hack", "tools", "build.sh"), name)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("build %s: %v\n%s", name, err, stderr.String())
	}
	return strings.TrimSpace(string(out))
}

// helmRunner runs the pinned Helm with its own empty config, cache and data
// directories, so nothing of the user's Helm setup leaks in.
type helmRunner struct {
	bin string
	env []string
}

func newHelm(t *testing.T) *helmRunner {
	t.Helper()
	home := t.TempDir()
	return &helmRunner{
		bin: tool(t, "helm", "HELM"),
		env: append(os.Environ(),
			"HELM_CACHE_HOME="+filepath.Join(home, "cache"),
			"HELM_CONFIG_HOME="+filepath.Join(home, "config"),
			"HELM_DATA_HOME="+filepath.Join(home, "data"),
		),
	}
}

// run runs helm with args and returns its stdout, or an error carrying stderr.
func (h *helmRunner) run(args ...string) (string, error) {
	cmd := exec.Command(h.bin, args...)
	cmd.Env = h.env
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("helm %s: %w\n%s%s", strings.Join(args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String(), nil
}

// template renders the chart as release kube-ecr-refresher in namespace
// kube-ecr-refresher with extra helm args (-f, --set, ...).
func (h *helmRunner) template(t *testing.T, args ...string) (string, error) {
	t.Helper()
	base := []string{"template", release, chartDir(t), "--namespace", namespace}
	return h.run(append(base, args...)...)
}

// mustRender renders and decodes the chart, failing the test on any error.
func (h *helmRunner) mustRender(t *testing.T, args ...string) *objects {
	t.Helper()
	out, err := h.template(t, args...)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := decode(out)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

// objects holds a rendered chart, decoded into API types.
type objects struct {
	// kinds lists "Kind/name" of every object, in rendering order.
	kinds               []string
	deployments         []appsv1.Deployment
	pdbs                []policyv1.PodDisruptionBudget
	serviceAccounts     []corev1.ServiceAccount
	secrets             []corev1.Secret
	namespaces          []corev1.Namespace
	clusterRoles        []rbacv1.ClusterRole
	clusterRoleBindings []rbacv1.ClusterRoleBinding
	roles               []rbacv1.Role
	roleBindings        []rbacv1.RoleBinding
	services            []corev1.Service
	jobs                []batchv1.Job
	cronJobs            []batchv1.CronJob
	// monitoring holds the prometheus-operator objects (monitoring.coreos.com/v1),
	// whose Go types are not a dependency, by "Kind/name".
	monitoring map[string]*unstructured.Unstructured
}

// decode splits a multi-document YAML stream and decodes each object into its
// API type, strictly: a field the type does not have is an error.
func decode(stream string) (*objects, error) {
	objs := &objects{monitoring: map[string]*unstructured.Unstructured{}}
	for _, doc := range splitDocuments(stream) {
		var tm metav1.TypeMeta
		if err := yaml.Unmarshal([]byte(doc), &tm); err != nil {
			return nil, fmt.Errorf("decode object kind: %w\n%s", err, doc)
		}
		var target any
		switch tm.APIVersion + " " + tm.Kind {
		case "apps/v1 Deployment":
			objs.deployments = append(objs.deployments, appsv1.Deployment{})
			target = &objs.deployments[len(objs.deployments)-1]
		case "policy/v1 PodDisruptionBudget":
			objs.pdbs = append(objs.pdbs, policyv1.PodDisruptionBudget{})
			target = &objs.pdbs[len(objs.pdbs)-1]
		case "v1 ServiceAccount":
			objs.serviceAccounts = append(objs.serviceAccounts, corev1.ServiceAccount{})
			target = &objs.serviceAccounts[len(objs.serviceAccounts)-1]
		case "v1 Secret":
			objs.secrets = append(objs.secrets, corev1.Secret{})
			target = &objs.secrets[len(objs.secrets)-1]
		case "v1 Namespace":
			objs.namespaces = append(objs.namespaces, corev1.Namespace{})
			target = &objs.namespaces[len(objs.namespaces)-1]
		case "rbac.authorization.k8s.io/v1 ClusterRole":
			objs.clusterRoles = append(objs.clusterRoles, rbacv1.ClusterRole{})
			target = &objs.clusterRoles[len(objs.clusterRoles)-1]
		case "rbac.authorization.k8s.io/v1 ClusterRoleBinding":
			objs.clusterRoleBindings = append(objs.clusterRoleBindings, rbacv1.ClusterRoleBinding{})
			target = &objs.clusterRoleBindings[len(objs.clusterRoleBindings)-1]
		case "rbac.authorization.k8s.io/v1 Role":
			objs.roles = append(objs.roles, rbacv1.Role{})
			target = &objs.roles[len(objs.roles)-1]
		case "rbac.authorization.k8s.io/v1 RoleBinding":
			objs.roleBindings = append(objs.roleBindings, rbacv1.RoleBinding{})
			target = &objs.roleBindings[len(objs.roleBindings)-1]
		case "v1 Service":
			objs.services = append(objs.services, corev1.Service{})
			target = &objs.services[len(objs.services)-1]
		case "batch/v1 Job":
			objs.jobs = append(objs.jobs, batchv1.Job{})
			target = &objs.jobs[len(objs.jobs)-1]
		case "batch/v1 CronJob":
			objs.cronJobs = append(objs.cronJobs, batchv1.CronJob{})
			target = &objs.cronJobs[len(objs.cronJobs)-1]
		case "monitoring.coreos.com/v1 ServiceMonitor", "monitoring.coreos.com/v1 PrometheusRule":
			u := &unstructured.Unstructured{}
			if err := yaml.Unmarshal([]byte(doc), &u.Object); err != nil {
				return nil, fmt.Errorf("decode %s: %w\n%s", tm.Kind, err, doc)
			}
			objs.monitoring[tm.Kind+"/"+u.GetName()] = u
			objs.kinds = append(objs.kinds, tm.Kind+"/"+u.GetName())
			continue
		default:
			return nil, fmt.Errorf("unexpected object %s %s:\n%s", tm.APIVersion, tm.Kind, doc)
		}
		if err := yaml.UnmarshalStrict([]byte(doc), target); err != nil {
			return nil, fmt.Errorf("decode %s: %w\n%s", tm.Kind, err, doc)
		}
		name, err := objectName(doc)
		if err != nil {
			return nil, err
		}
		objs.kinds = append(objs.kinds, tm.Kind+"/"+name)
	}
	return objs, nil
}

func objectName(doc string) (string, error) {
	var obj struct {
		Metadata metav1.ObjectMeta `json:"metadata"`
	}
	if err := yaml.Unmarshal([]byte(doc), &obj); err != nil {
		return "", fmt.Errorf("decode object name: %w", err)
	}
	if obj.Metadata.Name == "" {
		return "", errors.New("object without a name:\n" + doc)
	}
	return obj.Metadata.Name, nil
}

// splitDocuments splits a YAML stream on "---" lines and drops documents
// that hold only comments or whitespace.
func splitDocuments(stream string) []string {
	var docs []string
	for _, doc := range strings.Split("\n"+stream, "\n---") {
		meaningful := false
		for _, line := range strings.Split(doc, "\n") {
			if l := strings.TrimSpace(line); l != "" && !strings.HasPrefix(l, "#") {
				meaningful = true
				break
			}
		}
		if meaningful {
			docs = append(docs, doc)
		}
	}
	return docs
}

// only returns the single element of s, failing the test otherwise.
func only[T any](t *testing.T, what string, s []T) T {
	t.Helper()
	if len(s) != 1 {
		t.Fatalf("got %d %s, want 1", len(s), what)
	}
	return s[0]
}

// container returns the controller container of the only Deployment.
func (o *objects) container(t *testing.T) corev1.Container {
	t.Helper()
	d := only(t, "Deployments", o.deployments)
	return only(t, "containers", d.Spec.Template.Spec.Containers)
}

// job returns the only Job, the uninstall cleanup hook.
func (o *objects) job(t *testing.T) batchv1.Job {
	t.Helper()
	return only(t, "Jobs", o.jobs)
}

// ciValues returns the paths of the chart's ci/*-values.yaml files.
func ciValues(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(chartDir(t), "ci", "*-values.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("find ci values: %v (found %d)", err, len(files))
	}
	return files
}

// ciFile returns the path of ci/<name>-values.yaml.
func ciFile(t *testing.T, name string) string {
	t.Helper()
	p := filepath.Join(chartDir(t), "ci", name+"-values.yaml")
	if _, err := os.Stat(p); err != nil {
		t.Fatalf("ci values %s: %v", name, err)
	}
	return p
}

func yamlUnmarshal(doc string, v any) error {
	if err := yaml.Unmarshal([]byte(doc), v); err != nil {
		return fmt.Errorf("decode yaml: %w\n%s", err, doc)
	}
	return nil
}
