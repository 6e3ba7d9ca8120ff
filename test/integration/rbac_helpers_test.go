//go:build integration

package integration

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kube-ecr-refresher/kube-ecr-refresher/test/controlplane"
)

// rbacWaitTimeout bounds the waits of the RBAC proof, longer than
// waitTimeout: two replicas and the control plane share two slow cores.
const rbacWaitTimeout = 3 * time.Minute

// forSubtest returns a copy of e whose helpers report to t, for use in a
// subtest; processes it starts stop when that subtest ends.
func (e *env) forSubtest(t *testing.T) *env {
	c := *e
	c.t = t
	return &c
}

// waitLong is waitFor with rbacWaitTimeout.
func waitLong(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	waitUntil(t, rbacWaitTimeout, what, cond)
}

// rbacRepoRoot returns the repository root: this package lives in test/integration.
func rbacRepoRoot(t *testing.T) string {
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

// runCapture runs a command and returns its stdout, or an error carrying its output.
func runCapture(cmd *exec.Cmd) (string, error) {
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("%s: %w\n%s%s", strings.Join(cmd.Args, " "), err, stdout.String(), stderr.String())
	}
	return stdout.String(), nil
}

// renderChart renders the chart with the pinned Helm ($HELM, else the binary
// hack/tools/build.sh builds or finds in its cache) as release in namespace,
// with its own empty Helm directories.
func renderChart(t *testing.T, release, namespace string, args ...string) string {
	t.Helper()
	root := rbacRepoRoot(t)
	helm := os.Getenv("HELM")
	if helm == "" {
		out, err := runCapture(exec.Command(filepath.Join(root, "hack", "tools", "build.sh"), "helm"))
		if err != nil {
			t.Fatalf("build helm: %v", err)
		}
		helm = strings.TrimSpace(out)
	}
	home := t.TempDir()
	base := []string{"template", release, filepath.Join(root, "deploy", "helm", "kube-ecr-refresher"), "--namespace", namespace}
	cmd := exec.Command(helm, append(base, args...)...)
	cmd.Env = append(os.Environ(),
		"HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"),
		"HELM_DATA_HOME="+filepath.Join(home, "data"),
	)
	out, err := runCapture(cmd)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// kubectlApply pipes manifests into `kubectl apply` as the admin, with args
// such as --dry-run=server or --server-side.
func kubectlApply(t *testing.T, manifests string, args ...string) string {
	t.Helper()
	dir, err := controlplane.BinDir()
	if err != nil {
		t.Fatalf("control plane binaries: %v", err)
	}
	base := []string{"--kubeconfig", plane.AdminKubeconfig(), "apply", "--field-manager=rbac-proof", "-f", "-"}
	cmd := exec.Command(filepath.Join(dir, "kubectl"), append(base, args...)...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	cmd.Stdin = strings.NewReader(manifests)
	out, err := runCapture(cmd)
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// clientFor returns a client that authenticates with the kubeconfig at path.
func clientFor(t *testing.T, path string) kubernetes.Interface {
	t.Helper()
	cfg, err := clientcmd.BuildConfigFromFlags("", path)
	if err != nil {
		t.Fatalf("load kubeconfig %s: %v", path, err)
	}
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatalf("client for %s: %v", path, err)
	}
	return client
}

// leaseHolderIn returns the holder of the Lease ns/name, or "".
func leaseHolderIn(client kubernetes.Interface, ns, name string) string {
	l, err := client.CoordinationV1().Leases(ns).Get(context.Background(), name, metav1.GetOptions{})
	if err != nil || l.Spec.HolderIdentity == nil {
		return ""
	}
	return *l.Spec.HolderIdentity
}

// checkNotForbidden fails the test if p ever logged a request that RBAC
// denied. A write into a namespace being deleted (another test's) is also
// answered 403 Forbidden, but is no RBAC denial.
func checkNotForbidden(t *testing.T, p *proc) {
	t.Helper()
	for line := range strings.Lines(p.Logs()) {
		l := strings.ToLower(line)
		if strings.Contains(l, "forbidden") && !strings.Contains(l, "because it is being terminated") {
			t.Errorf("%s was denied a request: %s", p.name, strings.TrimSpace(line))
		}
	}
}

// ensureNamespace creates the namespace ns unless it exists, and deletes it
// when the test ends if it created it.
func ensureNamespace(t *testing.T, client kubernetes.Interface, ns string) {
	t.Helper()
	_, err := client.CoreV1().Namespaces().Get(context.Background(), ns, metav1.GetOptions{})
	if err == nil {
		return
	}
	if !apierrors.IsNotFound(err) {
		t.Fatalf("get namespace %s: %v", ns, err)
	}
	obj := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}
	if _, err := client.CoreV1().Namespaces().Create(context.Background(), obj, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create namespace %s: %v", ns, err)
	}
	t.Cleanup(func() {
		_ = client.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{})
	})
}

// waitEventLong waits for an Event of reason about the object kind/name.
func waitEventLong(t *testing.T, client kubernetes.Interface, reason, kind, name string) {
	t.Helper()
	waitLong(t, "event "+reason+" on "+kind+" "+name, func() (bool, string) {
		list, err := client.CoreV1().Events("").List(context.Background(), metav1.ListOptions{
			FieldSelector: "reason=" + reason + ",involvedObject.kind=" + kind + ",involvedObject.name=" + name,
		})
		if err != nil {
			return false, err.Error()
		}
		return len(list.Items) > 0, fmt.Sprintf("%d events", len(list.Items))
	})
}
