//go:build integration

package controlplane_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/kube-ecr-refresher/kube-ecr-refresher/test/controlplane"
)

// wantVersion is the Kubernetes version pinned in hack/controlplane/go.mod.
const wantVersion = "v1.37.2"

// waitTimeout bounds each wait for a controller; the machine is slow and shared.
const waitTimeout = 90 * time.Second

func TestControlPlane(t *testing.T) {
	began := time.Now()
	cp := controlplane.StartForTest(t)
	t.Logf("Start took %s", time.Since(began).Round(time.Millisecond))
	client := cp.Client()

	t.Run("The server reports the pinned version", func(t *testing.T) {
		v, err := client.Discovery().ServerVersion()
		if err != nil {
			t.Fatal(err)
		}
		if v.GitVersion != wantVersion {
			t.Errorf("server version = %s, want %s", v.GitVersion, wantVersion)
		}
	})

	t.Run("The admin kubeconfig reaches the server as a cluster admin", func(t *testing.T) {
		cfg, err := clientcmd.BuildConfigFromFlags("", cp.AdminKubeconfig())
		if err != nil {
			t.Fatal(err)
		}
		if cfg.Insecure {
			t.Error("admin kubeconfig skips TLS verification")
		}
		review := selfReview(t, cfg)
		if !slices.Contains(review.Status.UserInfo.Groups, "system:masters") {
			t.Errorf("admin groups = %v, want system:masters among them", review.Status.UserInfo.Groups)
		}
	})

	t.Run("A new namespace gets its default ServiceAccount and is finalized when deleted", func(t *testing.T) {
		ctx := t.Context()
		ns := createNamespace(t, client, "lifecycle")
		waitFor(t, "default ServiceAccount in "+ns, func(ctx context.Context) (bool, error) {
			_, err := client.CoreV1().ServiceAccounts(ns).Get(ctx, "default", metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				return false, nil
			}
			return err == nil, err
		})
		if err := client.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "namespace "+ns+" to disappear", func(ctx context.Context) (bool, error) {
			_, err := client.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				return true, nil
			}
			return false, err
		})
	})

	t.Run("Secrets can be listed across namespaces by name", func(t *testing.T) {
		list, err := client.CoreV1().Secrets(metav1.NamespaceAll).List(t.Context(),
			metav1.ListOptions{FieldSelector: "metadata.name=x"})
		if err != nil {
			t.Fatal(err)
		}
		if len(list.Items) != 0 {
			t.Errorf("found %d secrets named x, want none", len(list.Items))
		}
	})

	t.Run("A ServiceAccount kubeconfig authenticates as the ServiceAccount, bound by RBAC", func(t *testing.T) {
		ctx := t.Context()
		ns := createNamespace(t, client, "rbac")
		sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "robot"}}
		if _, err := client.CoreV1().ServiceAccounts(ns).Create(ctx, sa, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		path, err := cp.KubeconfigFor(ctx, ns, "robot")
		if err != nil {
			t.Fatal(err)
		}
		cfg, err := clientcmd.BuildConfigFromFlags("", path)
		if err != nil {
			t.Fatal(err)
		}
		review := selfReview(t, cfg)
		if got, want := review.Status.UserInfo.Username, "system:serviceaccount:"+ns+":robot"; got != want {
			t.Errorf("username = %s, want %s", got, want)
		}
		saClient, err := kubernetes.NewForConfig(cfg)
		if err != nil {
			t.Fatal(err)
		}
		_, err = saClient.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{})
		if !apierrors.IsForbidden(err) {
			t.Errorf("listing secrets without a Role: %v, want Forbidden", err)
		}
	})

	t.Run("Logs show every component", func(t *testing.T) {
		logs := cp.Logs()
		for _, name := range []string{"etcd.log", "kube-apiserver.log", "kube-controller-manager.log"} {
			if !strings.Contains(logs, name) {
				t.Errorf("Logs() lacks %s", name)
			}
		}
	})

	t.Run("Stop ends the control plane, removes its directory and can be repeated", func(t *testing.T) {
		if err := cp.Stop(); err != nil {
			t.Fatalf("Stop: %v", err)
		}
		if err := cp.Stop(); err != nil {
			t.Errorf("second Stop: %v", err)
		}
		if _, err := os.Stat(cp.Dir()); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("working dir after Stop: %v, want it gone", err)
		}
		httpClient, err := rest.HTTPClientFor(cp.RESTConfig())
		if err != nil {
			t.Fatal(err)
		}
		httpClient.Timeout = 5 * time.Second
		if resp, err := httpClient.Get(cp.URL() + "/readyz"); err == nil {
			resp.Body.Close()
			t.Errorf("kube-apiserver still answers after Stop: %s", resp.Status)
		}
	})
}

func TestStartFailure(t *testing.T) {
	bins, err := controlplane.BinDir()
	if err != nil {
		t.Fatal(err)
	}
	broken := t.TempDir()
	for _, name := range []string{"etcd", "kube-controller-manager"} {
		if err := os.Symlink(filepath.Join(bins, name), filepath.Join(broken, name)); err != nil {
			t.Fatal(err)
		}
	}
	script := "#!/bin/sh\necho 'kube-apiserver cannot start: boom' >&2\nexit 1\n"
	if err := os.WriteFile(filepath.Join(broken, "kube-apiserver"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()

	_, err = controlplane.Start(t.Context(), controlplane.Options{BinDir: broken, Dir: dir})

	if err == nil {
		t.Fatal("Start with a kube-apiserver that exits succeeded, want an error")
	}
	for _, want := range []string{"kube-apiserver exited: exit status 1", "boom", "etcd.log"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Start error lacks %q:\n%v", want, err)
		}
	}
	if pids := processesMentioning(t, dir); len(pids) != 0 {
		t.Errorf("processes %v still running with %s in their command line", pids, dir)
	}
}

// processesMentioning returns the live processes whose command line
// contains s.
func processesMentioning(t *testing.T, s string) []string {
	t.Helper()
	entries, err := os.ReadDir("/proc")
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	var pids []string
	for _, e := range entries {
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || !strings.Contains(string(cmdline), s) {
			continue
		}
		if stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat")); err == nil {
			if i := strings.LastIndexByte(string(stat), ')'); i > 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
				continue
			}
		}
		pids = append(pids, e.Name())
	}
	return pids
}

func createNamespace(t *testing.T, client kubernetes.Interface, prefix string) string {
	t.Helper()
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{GenerateName: prefix + "-"}}
	created, err := client.CoreV1().Namespaces().Create(t.Context(), ns, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return created.Name
}

func selfReview(t *testing.T, cfg *rest.Config) *authenticationv1.SelfSubjectReview {
	t.Helper()
	client, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	review, err := client.AuthenticationV1().SelfSubjectReviews().Create(t.Context(),
		&authenticationv1.SelfSubjectReview{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return review
}

func waitFor(t *testing.T, what string, done func(context.Context) (bool, error)) {
	t.Helper()
	began := time.Now()
	err := wait.PollUntilContextTimeout(t.Context(), 100*time.Millisecond, waitTimeout, true, done)
	if err != nil {
		t.Fatalf("wait for %s: %v", what, err)
	}
	t.Logf("waited %s for %s", time.Since(began).Round(time.Millisecond), what)
}
