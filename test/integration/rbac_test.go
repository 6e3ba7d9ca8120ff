//go:build integration

package integration

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	authorizationv1 "k8s.io/api/authorization/v1"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"

	"github.com/kube-ecr-refresher/kube-ecr-refresher/internal/kube"
	"github.com/kube-ecr-refresher/kube-ecr-refresher/test/fakeecr"
)

// rbacRelease is the Helm release of the RBAC proof. Its full name,
// rbac-proof-kube-ecr-refresher, names the cluster-scoped ClusterRole and
// ClusterRoleBinding, which no other test uses.
const rbacRelease = "rbac-proof"

// TestRBACOfTheChartIsEnoughAndNoMore installs the chart's ServiceAccount and
// RBAC rules on the real kube-apiserver, runs two replicas of the controller
// as that ServiceAccount, and proves that the rules allow everything the
// controller does (no request of its is ever forbidden) and deny the rest.
func TestRBACOfTheChartIsEnoughAndNoMore(t *testing.T) {
	// ECR fails at first, so the leader posts an Event about its Pod.
	e := newEnv(t, fakeecr.WithFailure(fakeecr.FailureServerError))
	ctx := context.Background()
	admin := e.client
	release := e.namespace("release", nil)
	fullname := rbacRelease + "-kube-ecr-refresher"
	values := []string{
		"--set", "aws.region=us-east-1",
		"--set", "aws.accessKeyId=AKIDRBACPROOF",
		"--set", "aws.secretAccessKey=rbac-proof-dummy-key",
		"--set", "config.secretName=" + e.secret,
		"--set", "config.leaseName=" + e.lease,
		"--set", "events.enabled=true",
	}
	// Cluster-scoped objects outlive the release namespace: always delete them.
	t.Cleanup(func() {
		_ = admin.RbacV1().ClusterRoleBindings().Delete(ctx, fullname, metav1.DeleteOptions{})
		_ = admin.RbacV1().ClusterRoles().Delete(ctx, fullname, metav1.DeleteOptions{})
	})

	t.Run("the chart and the plain manifests pass a server-side dry run", func(t *testing.T) {
		// With the uninstall hook Job (opted in: it is off by default), so
		// the apiserver validates it too, and once more with the CronJob
		// instead of the Deployment.
		withHook := append(slices.Clone(values), "--set", "cleanup.onUninstall=true")
		kubectlApply(t, renderChart(t, rbacRelease, release, withHook...), "--dry-run=server")
		kubectlApply(t, renderChart(t, rbacRelease, release, append(withHook, "--set", "cronJob.enabled=true")...), "--dry-run=server")

		// Their namespaced objects need the namespace to exist; the parent
		// test deletes it, after the controllers have stopped.
		_, err := admin.RbacV1().ClusterRoles().Get(ctx, "kube-ecr-refresher", metav1.GetOptions{})
		manifestsRoleExisted := err == nil
		ensureNamespace(e.t, admin, "kube-ecr-refresher")
		var manifests []string
		for _, f := range []string{"common.yaml", "secret.yaml", "deployment.yaml"} {
			b, err := os.ReadFile(filepath.Join(rbacRepoRoot(t), "deploy", f))
			if err != nil {
				t.Fatal(err)
			}
			manifests = append(manifests, string(b))
		}
		kubectlApply(t, strings.Join(manifests, "\n---\n"), "--dry-run=server")

		// A dry run changes nothing.
		if _, err := admin.RbacV1().ClusterRoles().Get(ctx, fullname, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("ClusterRole %s after a dry run: err = %v, want NotFound", fullname, err)
		}
		if _, err := admin.CoreV1().ServiceAccounts(release).Get(ctx, fullname, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("ServiceAccount %s/%s after a dry run: err = %v, want NotFound", release, fullname, err)
		}
		if _, err := admin.RbacV1().ClusterRoles().Get(ctx, "kube-ecr-refresher", metav1.GetOptions{}); !manifestsRoleExisted && !apierrors.IsNotFound(err) {
			t.Errorf("ClusterRole kube-ecr-refresher after a dry run: err = %v, want NotFound", err)
		}
	})
	if t.Failed() {
		t.FailNow()
	}

	// Install what `helm install` creates: hooks run only at uninstall.
	kubectlApply(t, renderChart(t, rbacRelease, release, append(values, "--no-hooks")...), "--server-side")
	kubeconfig, err := plane.KubeconfigFor(ctx, release, fullname)
	if err != nil {
		t.Fatal(err)
	}
	sa := clientFor(t, kubeconfig)

	// Before the controllers start: a ServiceAccount with entries of its
	// own, a Secret of our name that is someone else's, and objects the
	// controller must not reach.
	a, keep, foreign := e.namespace("a", nil), e.namespace("keep", nil), e.namespace("foreign", nil)
	e.waitDefaultSA(keep)
	others := []corev1.LocalObjectReference{{Name: "docker-hub"}, {Name: "quay"}}
	err = retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := admin.CoreV1().ServiceAccounts(keep).Get(ctx, "default", metav1.GetOptions{})
		if err != nil {
			return err
		}
		cur.ImagePullSecrets = others
		_, err = admin.CoreV1().ServiceAccounts(keep).Update(ctx, cur, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	foreignSecret, err := admin.CoreV1().Secrets(foreign).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: e.secret},
		Data:       map[string][]byte{"password": []byte("hunter2")},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.CoreV1().Secrets(a).Create(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "other"},
		Data:       map[string][]byte{"password": []byte("hunter2")},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.CoreV1().ServiceAccounts(a).Create(ctx, &corev1.ServiceAccount{
		ObjectMeta: metav1.ObjectMeta{Name: "builder"},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	// The base environment's admin kubeconfig and Lease namespace are
	// overridden: os/exec keeps the last value of a duplicated variable.
	replicaEnv := func(pod string) []string {
		return []string{
			"KUBE_ECR_REFRESHER_KUBECONFIG=" + kubeconfig,
			"KUBE_ECR_REFRESHER_LEASE_NAMESPACE=" + release,
			"KUBE_ECR_REFRESHER_EVENTS=true",
			"KUBE_ECR_REFRESHER_RETRY_INITIAL=1s",
			"POD_NAMESPACE=" + release,
			"POD_NAME=" + pod,
		}
	}
	replicas := map[string]*proc{}
	for _, pod := range []string{fullname + "-a", fullname + "-b"} {
		replicas[pod] = e.start(pod, replicaEnv(pod))
	}
	var all []*proc
	for _, p := range replicas {
		all = append(all, p)
	}

	t.Run("a failed refresh is reported on the leader's Pod", func(t *testing.T) {
		var leader string
		waitLong(t, "a leader", func() (bool, string) {
			leader = leaseHolderIn(admin, release, e.lease)
			return replicas[leader] != nil, leader
		})
		waitEventLong(t, admin, kube.ReasonRefreshFailed, "Pod", leader)
	})
	e.ecr.SetFailure(fakeecr.FailureNone)

	t.Run("every namespace is served", func(t *testing.T) {
		list, err := admin.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		for _, ns := range list.Items {
			if ns.Name == foreign || ns.DeletionTimestamp != nil {
				continue
			}
			waitLong(t, "namespace "+ns.Name+" served", func() (bool, string) {
				ok, detail := e.served(ns.Name)
				if !ok {
					cur, err := admin.CoreV1().Namespaces().Get(ctx, ns.Name, metav1.GetOptions{})
					if err != nil || cur.DeletionTimestamp != nil {
						return true, "" // deleted meanwhile by another test's cleanup
					}
				}
				return ok, detail
			})
		}
	})

	t.Run("a ServiceAccount's own entries are kept", func(t *testing.T) {
		cur, err := admin.CoreV1().ServiceAccounts(keep).Get(ctx, "default", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		want := append(append([]corev1.LocalObjectReference{}, others...), corev1.LocalObjectReference{Name: e.secret})
		if diff := cmp.Diff(want, cur.ImagePullSecrets); diff != "" {
			t.Errorf("imagePullSecrets (-want +got):\n%s", diff)
		}
	})

	t.Run("a new namespace is served", func(t *testing.T) {
		se := e.forSubtest(t)
		later := se.namespace("later", nil)
		waitLong(t, "namespace "+later+" served", func() (bool, string) { return e.served(later) })
	})

	t.Run("a deleted Secret is restored", func(t *testing.T) {
		if err := admin.CoreV1().Secrets(a).Delete(ctx, e.secret, metav1.DeleteOptions{}); err != nil {
			t.Fatal(err)
		}
		waitLong(t, "namespace "+a+" served again", func() (bool, string) { return e.served(a) })
	})

	t.Run("a namespace that leaves is cleaned up", func(t *testing.T) {
		se := e.forSubtest(t)
		leaving := se.namespace("leaving", nil)
		waitLong(t, "namespace "+leaving+" served", func() (bool, string) { return e.served(leaving) })
		se.patchIgnore(leaving)
		waitLong(t, "cleanup of "+leaving, func() (bool, string) {
			_, err := admin.CoreV1().Secrets(leaving).Get(ctx, e.secret, metav1.GetOptions{})
			cur, _ := admin.CoreV1().ServiceAccounts(leaving).Get(ctx, "default", metav1.GetOptions{})
			return apierrors.IsNotFound(err) && cur != nil && !kube.HasPullSecret(cur, e.secret), ""
		})
	})

	t.Run("a Secret that is someone else's is reported and left alone", func(t *testing.T) {
		waitEventLong(t, admin, kube.ReasonSecretNotOurs, "Namespace", foreign)
		got, err := admin.CoreV1().Secrets(foreign).Get(ctx, e.secret, metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if got.ResourceVersion != foreignSecret.ResourceVersion {
			t.Errorf("foreign Secret changed: resourceVersion %s -> %s", foreignSecret.ResourceVersion, got.ResourceVersion)
		}
	})

	t.Run("the ServiceAccount may do nothing else", func(t *testing.T) {
		checkAccess(t, e, sa, release, a)
	})

	t.Run("the other replica takes over when the leader is killed", func(t *testing.T) {
		killed := leaseHolderIn(admin, release, e.lease)
		if replicas[killed] == nil {
			t.Fatalf("Lease %s/%s is held by %q, not by a replica", release, e.lease, killed)
		}
		replicas[killed].signal(syscall.SIGKILL)
		replicas[killed].wait(30 * time.Second)
		waitLong(t, "a new leader", func() (bool, string) {
			h := leaseHolderIn(admin, release, e.lease)
			return h != killed && replicas[h] != nil, h
		})
		se := e.forSubtest(t)
		after := se.namespace("after", nil)
		waitLong(t, "namespace "+after+" served", func() (bool, string) { return e.served(after) })
		if _, err := admin.CoordinationV1().Leases("default").Get(ctx, e.lease, metav1.GetOptions{}); !apierrors.IsNotFound(err) {
			t.Errorf("Lease default/%s: err = %v, want NotFound: the Lease belongs in the release namespace", e.lease, err)
		}
	})

	t.Run("no request of the replicas was forbidden", func(t *testing.T) {
		for _, p := range all {
			checkNotForbidden(t, p)
		}
	})

	t.Run("cleanup mode removes what was written", func(t *testing.T) {
		for name, p := range replicas {
			p.signal(syscall.SIGTERM)
			p.wait(60 * time.Second)
			delete(replicas, name)
		}
		se := e.forSubtest(t)
		// As the uninstall hook runs it: no AWS credentials needed.
		cleanup := se.start("cleanup", append(replicaEnv(fullname+"-cleanup"), "AWS_REGION="), "--cleanup")
		if code := cleanup.wait(rbacWaitTimeout); code != 0 {
			t.Fatalf("--cleanup exited %d:\n%s", code, cleanup.Logs())
		}
		checkNotForbidden(t, cleanup)
		list, err := admin.CoreV1().Secrets("").List(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + e.secret})
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range list.Items {
			if kube.Owned(&s) {
				t.Errorf("Secret %s/%s is still there", s.Namespace, s.Name)
			}
		}
		cur, err := admin.CoreV1().ServiceAccounts(keep).Get(ctx, "default", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(others, cur.ImagePullSecrets); diff != "" {
			t.Errorf("imagePullSecrets after cleanup (-want +got):\n%s", diff)
		}
		if _, err := admin.CoreV1().Secrets(foreign).Get(ctx, e.secret, metav1.GetOptions{}); err != nil {
			t.Errorf("cleanup removed someone else's Secret: %v", err)
		}
	})
}

// patchIgnore annotates ns so the controller leaves it.
func (e *env) patchIgnore(ns string) {
	e.t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		cur, err := e.client.CoreV1().Namespaces().Get(context.Background(), ns, metav1.GetOptions{})
		if err != nil {
			return err
		}
		if cur.Annotations == nil {
			cur.Annotations = map[string]string{}
		}
		cur.Annotations[kube.IgnoreAnnotation] = "true"
		_, err = e.client.CoreV1().Namespaces().Update(context.Background(), cur, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		e.t.Fatalf("annotate namespace %s: %v", ns, err)
	}
}

// checkAccess asks the apiserver, as the controller's ServiceAccount, what it
// may do (SelfSubjectAccessReview), and makes each denied request for real.
func checkAccess(t *testing.T, e *env, sa kubernetes.Interface, release, ns string) {
	ctx := context.Background()
	tests := []struct {
		name    string
		attrs   authorizationv1.ResourceAttributes
		allowed bool
		// request makes the request itself: it must be forbidden when
		// allowed is false, and must not be when it is true.
		request func() error
	}{
		{
			name:    "get our Secret",
			attrs:   authorizationv1.ResourceAttributes{Namespace: ns, Verb: "get", Resource: "secrets", Name: e.secret},
			allowed: true,
			request: func() error {
				_, err := sa.CoreV1().Secrets(ns).Get(ctx, e.secret, metav1.GetOptions{})
				return err
			},
		},
		{
			name:    "list our Secret everywhere by name, as the informer does",
			attrs:   authorizationv1.ResourceAttributes{Verb: "list", Resource: "secrets", Name: e.secret},
			allowed: true,
			request: func() error {
				_, err := sa.CoreV1().Secrets("").List(ctx, metav1.ListOptions{FieldSelector: "metadata.name=" + e.secret})
				return err
			},
		},
		{
			name:    "update the default ServiceAccount",
			attrs:   authorizationv1.ResourceAttributes{Namespace: ns, Verb: "update", Resource: "serviceaccounts", Name: "default"},
			allowed: true,
		},
		{
			name:    "create an Event about a namespace",
			attrs:   authorizationv1.ResourceAttributes{Namespace: "default", Verb: "create", Resource: "events"},
			allowed: true,
		},
		{
			name:    "update our Lease",
			attrs:   authorizationv1.ResourceAttributes{Namespace: release, Verb: "update", Group: "coordination.k8s.io", Resource: "leases", Name: e.lease},
			allowed: true,
		},
		{
			name:  "get another Secret",
			attrs: authorizationv1.ResourceAttributes{Namespace: ns, Verb: "get", Resource: "secrets", Name: "other"},
			request: func() error {
				_, err := sa.CoreV1().Secrets(ns).Get(ctx, "other", metav1.GetOptions{})
				return err
			},
		},
		{
			name:  "list every Secret",
			attrs: authorizationv1.ResourceAttributes{Verb: "list", Resource: "secrets"},
			request: func() error {
				_, err := sa.CoreV1().Secrets("").List(ctx, metav1.ListOptions{})
				return err
			},
		},
		{
			name:  "list the Secrets of a namespace",
			attrs: authorizationv1.ResourceAttributes{Namespace: ns, Verb: "list", Resource: "secrets"},
			request: func() error {
				_, err := sa.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{})
				return err
			},
		},
		{
			name:  "watch every Secret",
			attrs: authorizationv1.ResourceAttributes{Verb: "watch", Resource: "secrets"},
			request: func() error {
				w, err := sa.CoreV1().Secrets("").Watch(ctx, metav1.ListOptions{})
				if err == nil {
					w.Stop()
				}
				return err
			},
		},
		{
			name:  "delete another Secret",
			attrs: authorizationv1.ResourceAttributes{Namespace: ns, Verb: "delete", Resource: "secrets", Name: "other"},
			request: func() error {
				return sa.CoreV1().Secrets(ns).Delete(ctx, "other", metav1.DeleteOptions{})
			},
		},
		{
			name:  "update a ServiceAccount that is not listed",
			attrs: authorizationv1.ResourceAttributes{Namespace: ns, Verb: "update", Resource: "serviceaccounts", Name: "builder"},
			request: func() error {
				cur, err := e.client.CoreV1().ServiceAccounts(ns).Get(ctx, "builder", metav1.GetOptions{})
				if err != nil {
					return err
				}
				cur.ImagePullSecrets = append(cur.ImagePullSecrets, corev1.LocalObjectReference{Name: e.secret})
				_, err = sa.CoreV1().ServiceAccounts(ns).Update(ctx, cur, metav1.UpdateOptions{})
				return err
			},
		},
		{
			name:  "get our Lease's name in another namespace",
			attrs: authorizationv1.ResourceAttributes{Namespace: "default", Verb: "get", Group: "coordination.k8s.io", Resource: "leases", Name: e.lease},
			request: func() error {
				_, err := sa.CoordinationV1().Leases("default").Get(ctx, e.lease, metav1.GetOptions{})
				return err
			},
		},
		{
			name:  "create a Lease in another namespace",
			attrs: authorizationv1.ResourceAttributes{Namespace: "default", Verb: "create", Group: "coordination.k8s.io", Resource: "leases"},
			request: func() error {
				_, err := sa.CoordinationV1().Leases("default").Create(ctx, &coordinationv1.Lease{
					ObjectMeta: metav1.ObjectMeta{Name: e.lease},
				}, metav1.CreateOptions{})
				return err
			},
		},
		{
			name:  "update another Lease in the release namespace",
			attrs: authorizationv1.ResourceAttributes{Namespace: release, Verb: "update", Group: "coordination.k8s.io", Resource: "leases", Name: "someone-elses"},
		},
		{
			name:  "read Pods",
			attrs: authorizationv1.ResourceAttributes{Namespace: release, Verb: "get", Resource: "pods"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			attrs := tt.attrs
			review, err := sa.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authorizationv1.SelfSubjectAccessReview{
				Spec: authorizationv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &attrs},
			}, metav1.CreateOptions{})
			if err != nil {
				t.Fatalf("SelfSubjectAccessReview: %v", err)
			}
			if review.Status.Allowed != tt.allowed {
				t.Errorf("SelfSubjectAccessReview allowed = %t, want %t (%s)", review.Status.Allowed, tt.allowed, review.Status.Reason)
			}
			if tt.request == nil {
				return
			}
			err = tt.request()
			switch {
			case tt.allowed && err != nil:
				t.Errorf("request failed: %v", err)
			case !tt.allowed && !apierrors.IsForbidden(err):
				t.Errorf("request err = %v, want Forbidden", err)
			}
		})
	}
}
