//go:build integration

package integration

import (
	"context"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"

	"github.com/kube-ecr-refresher/kube-ecr-refresher/test/fakeecr"
)

// 1. All namespaces get a valid Secret and their default ServiceAccount references it.
func TestEveryNamespaceIsServed(t *testing.T) {
	e := newEnv(t)
	a, b := e.namespace("a", nil), e.namespace("b", nil)
	p := e.start("controller", nil)
	all, err := e.client.CoreV1().Namespaces().List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	e.waitServed(a, b, "default", "kube-system")
	for _, ns := range all.Items {
		if ns.DeletionTimestamp != nil {
			continue
		}
		waitFor(t, "secret in "+ns.Name, func() (bool, string) {
			s, err := e.client.CoreV1().Secrets(ns.Name).Get(context.Background(), e.secret, metav1.GetOptions{})
			if err != nil {
				cur, gerr := e.client.CoreV1().Namespaces().Get(context.Background(), ns.Name, metav1.GetOptions{})
				if gerr != nil || cur.DeletionTimestamp != nil {
					return true, "" // deleted meanwhile by another test's cleanup
				}
				return false, err.Error()
			}
			return e.validSecret(s) == "", e.validSecret(s)
		})
	}
	if got := e.ecr.Calls(); got != 1 {
		t.Errorf("ECR calls = %d, want 1 (one per refresh, never one per namespace)", got)
	}
	if !p.logged("became leader") {
		t.Errorf("controller never logged that it became leader")
	}
}

// 2. TARGET_NAMESPACES (variable) and --target-namespaces (flag) limit the set.
func TestTargetNamespacesLimitTheSet(t *testing.T) {
	tests := []struct {
		name string
		env  func(a, b string) []string
		args func(a, b string) []string
	}{
		{
			name: "the variable limits the namespaces",
			env:  func(a, b string) []string { return []string{"KUBE_ECR_REFRESHER_TARGET_NAMESPACES=" + a + "," + b} },
			args: func(a, b string) []string { return nil },
		},
		{
			name: "the flag limits the namespaces and wins over the variable",
			env:  func(a, b string) []string { return []string{"KUBE_ECR_REFRESHER_TARGET_NAMESPACES=default"} },
			args: func(a, b string) []string { return []string{"--target-namespaces=" + a + ", " + b} },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			a, b, c := e.namespace("a", nil), e.namespace("b", nil), e.namespace("c", nil)
			e.waitDefaultSA(c)
			p := e.start("controller", tt.env(a, b), tt.args(a, b)...)
			e.waitServed(a, b)
			// Give the controller time to (wrongly) reach the others.
			time.Sleep(2 * time.Second)
			e.notTouched(c)
			e.notTouched("default")
			if p.logged("secret written", "namespace", c) {
				t.Errorf("controller wrote in untargeted namespace %s", c)
			}
		})
	}
}

// 3. A ServiceAccount's existing imagePullSecrets entries are kept.
func TestExistingImagePullSecretsAreKept(t *testing.T) {
	e := newEnv(t)
	ns := e.namespace("keep", nil)
	e.waitDefaultSA(ns)
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		sa, err := e.client.CoreV1().ServiceAccounts(ns).Get(context.Background(), "default", metav1.GetOptions{})
		if err != nil {
			return err
		}
		sa.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "docker-hub"}, {Name: "quay"}}
		_, err = e.client.CoreV1().ServiceAccounts(ns).Update(context.Background(), sa, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	e.start("controller", []string{"KUBE_ECR_REFRESHER_TARGET_NAMESPACES=" + ns})
	e.waitServed(ns)
	sa, err := e.client.CoreV1().ServiceAccounts(ns).Get(context.Background(), "default", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := []corev1.LocalObjectReference{{Name: "docker-hub"}, {Name: "quay"}, {Name: e.secret}}
	if diff := cmp.Diff(want, sa.ImagePullSecrets); diff != "" {
		t.Errorf("imagePullSecrets (-want +got):\n%s", diff)
	}
}

// 4. A namespace created while running is served without waiting for a refresh.
func TestNewNamespaceIsServedAtOnce(t *testing.T) {
	e := newEnv(t)
	first := e.namespace("first", nil)
	p := e.start("controller", nil)
	e.waitServed(first)
	calls := e.ecr.Calls()
	later := e.namespace("later", nil)
	e.waitServed(later)
	if got := e.ecr.Calls(); got != calls {
		t.Errorf("ECR calls went from %d to %d; a new namespace must reuse the current token", calls, got)
	}
	// The log line follows the write the test has just seen.
	waitUntil(t, 5*time.Second, "a log line for the new namespace's serviceaccount", func() (bool, string) {
		return p.logged("serviceaccount patched", "namespace", later), ""
	})
}

// 5. A deleted Secret and a removed SA entry are restored.
func TestDeletedSecretAndRemovedEntryAreRestored(t *testing.T) {
	e := newEnv(t)
	ns := e.namespace("heal", nil)
	e.start("controller", []string{"KUBE_ECR_REFRESHER_TARGET_NAMESPACES=" + ns})
	e.waitServed(ns)

	if err := e.client.CoreV1().Secrets(ns).Delete(context.Background(), e.secret, metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	e.waitServed(ns)

	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		sa, err := e.client.CoreV1().ServiceAccounts(ns).Get(context.Background(), "default", metav1.GetOptions{})
		if err != nil {
			return err
		}
		sa.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "someone-elses"}}
		_, err = e.client.CoreV1().ServiceAccounts(ns).Update(context.Background(), sa, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	e.waitServed(ns)
	sa, _ := e.client.CoreV1().ServiceAccounts(ns).Get(context.Background(), "default", metav1.GetOptions{})
	want := []corev1.LocalObjectReference{{Name: "someone-elses"}, {Name: e.secret}}
	if diff := cmp.Diff(want, sa.ImagePullSecrets); diff != "" {
		t.Errorf("imagePullSecrets after restore (-want +got):\n%s", diff)
	}
}

// 6. A pre-existing Secret of the same name that is not ours is not modified.
func TestForeignSecretIsNotModified(t *testing.T) {
	e := newEnv(t)
	foreign, ours := e.namespace("foreign", nil), e.namespace("ours", nil)
	created, err := e.client.CoreV1().Secrets(foreign).Create(context.Background(), &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: e.secret, Labels: map[string]string{"team": "payments"}},
		Type:       corev1.SecretTypeOpaque,
		Data:       map[string][]byte{"password": []byte("hunter2")},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	p := e.start("controller", []string{"KUBE_ECR_REFRESHER_TARGET_NAMESPACES=" + foreign + "," + ours})
	e.waitServed(ours)
	waitFor(t, "a warning about the foreign secret", func() (bool, string) {
		return p.logged("secret exists and is not managed by kube-ecr-refresher; namespace skipped", "namespace", foreign), ""
	})
	got, err := e.client.CoreV1().Secrets(foreign).Get(context.Background(), e.secret, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if got.ResourceVersion != created.ResourceVersion || string(got.Data["password"]) != "hunter2" {
		t.Errorf("foreign secret was modified: rv %s -> %s, data %v", created.ResourceVersion, got.ResourceVersion, got.Data)
	}
	e.waitDefaultSA(foreign)
	sa, _ := e.client.CoreV1().ServiceAccounts(foreign).Get(context.Background(), "default", metav1.GetOptions{})
	if len(sa.ImagePullSecrets) != 0 {
		t.Errorf("skipped namespace's serviceaccount was patched: %v", sa.ImagePullSecrets)
	}
}

// 7. Two replicas: one leads and only it writes; SIGKILL and SIGTERM hand over.
func TestLeaderElectionHandsOver(t *testing.T) {
	e := newEnv(t)
	ns := e.namespace("le-0", nil)
	env := func(id string) []string {
		return []string{"KUBE_ECR_REFRESHER_LEADER_ELECTION_IDENTITY=" + id, "KUBE_ECR_REFRESHER_TARGET_NAMESPACES="}
	}
	replicas := map[string]*proc{}
	for _, id := range []string{"replica-a", "replica-b", "replica-c"} {
		replicas[id] = e.start(id, env(id))
	}
	e.waitServed(ns)
	leader := e.leaseHolder()
	if replicas[leader] == nil {
		t.Fatalf("lease holder %q is not one of the replicas", leader)
	}
	for id, p := range replicas {
		if id != leader && (p.logged("secret written") || p.logged("serviceaccount patched")) {
			t.Errorf("%s wrote while %s led", id, leader)
		}
	}

	// SIGKILL: no release; another replica takes over once the lease expires.
	replicas[leader].signal(syscall.SIGKILL)
	replicas[leader].wait(10 * time.Second)
	killed := leader
	waitFor(t, "a new leader after SIGKILL", func() (bool, string) {
		h := e.leaseHolder()
		return h != "" && h != killed, h
	})
	leader = e.leaseHolder()
	ns1 := e.namespace("le-1", nil)
	e.waitServed(ns1)
	if !replicas[leader].logged("secret written", "namespace", ns1) {
		t.Errorf("new leader %s did not write for %s", leader, ns1)
	}

	// SIGTERM: the lease is released; the last replica takes over well before
	// the lease duration would have run out, and the old leader exits 0.
	e2 := leader
	released := time.Now()
	replicas[e2].signal(syscall.SIGTERM)
	if code := replicas[e2].wait(30 * time.Second); code != 0 {
		t.Errorf("leader exited %d after SIGTERM, want 0", code)
	}
	waitFor(t, "a new leader after SIGTERM", func() (bool, string) {
		h := e.leaseHolder()
		return h != "" && h != e2 && h != killed, h
	})
	t.Logf("handover after SIGTERM took %s", time.Since(released).Round(time.Millisecond))
	ns2 := e.namespace("le-2", nil)
	e.waitServed(ns2)
}

// 8. ECR failing across a refresh leaves every Secret unchanged; they are
// refreshed once ECR answers again.
func TestECRFailureKeepsSecrets(t *testing.T) {
	e := newEnv(t, fakeecr.WithLifetime(20*time.Second))
	a, b := e.namespace("a", nil), e.namespace("b", nil)
	p := e.start("controller", []string{
		"KUBE_ECR_REFRESHER_TARGET_NAMESPACES=" + a + "," + b,
		"KUBE_ECR_REFRESHER_MIN_REFRESH_INTERVAL=1s",
		"KUBE_ECR_REFRESHER_RETRY_INITIAL=500ms",
		"KUBE_ECR_REFRESHER_RETRY_MAX=2s",
	})
	e.waitServed(a, b)
	waitFor(t, "both secrets to hold the latest password", func() (bool, string) {
		return e.holdsLatest(a) && e.holdsLatest(b) && e.ecr.Calls() >= 1, ""
	})
	for _, mode := range []fakeecr.Failure{fakeecr.FailureServerError, fakeecr.FailureAccessDenied, fakeecr.FailureThrottling} {
		before := e.secretData(a, b)
		calls := e.ecr.Calls()
		e.ecr.SetFailure(mode)
		// The token is due after 10 s; wait for the refresh to fail twice.
		waitFor(t, "two failed refreshes with "+mode.String(), func() (bool, string) {
			return e.ecr.Calls() >= calls+2 && p.countLogged("ecr token refresh failed; existing secrets are left as they are") >= 2, ""
		})
		if diff := cmp.Diff(before, e.secretData(a, b)); diff != "" {
			t.Errorf("secrets changed while ECR failed with %s (-before +after):\n%s", mode, diff)
		}
		e.ecr.SetFailure(fakeecr.FailureNone)
		waitFor(t, "secrets refreshed after recovery", func() (bool, string) {
			after := e.secretData(a, b)
			return after[a] != before[a] && after[b] != before[b] && e.holdsLatest(a) && e.holdsLatest(b), ""
		})
	}
}

func (e *env) holdsLatest(ns string) bool {
	s, err := e.client.CoreV1().Secrets(ns).Get(context.Background(), e.secret, metav1.GetOptions{})
	if err != nil {
		return false
	}
	pw, _, err := decode(s)
	return err == nil && pw == e.ecr.LastPassword()
}

// 9. A restart with fresh Secrets in place makes no writes.
func TestRestartWithFreshSecretsMakesNoWrites(t *testing.T) {
	e := newEnv(t)
	nss := []string{e.namespace("a", nil), e.namespace("b", nil), e.namespace("c", nil)}
	targets := []string{"KUBE_ECR_REFRESHER_TARGET_NAMESPACES=" + strings.Join(nss, ",")}
	first := e.start("first run", targets)
	e.waitServed(nss...)
	first.signal(syscall.SIGTERM)
	if code := first.wait(30 * time.Second); code != 0 {
		t.Fatalf("first run exited %d", code)
	}
	before := e.resourceVersions(nss...)

	second := e.start("second run", targets)
	waitFor(t, "the second run to fetch a token and lead", func() (bool, string) {
		return second.logged("ecr token fetched"), ""
	})
	time.Sleep(3 * time.Second) // let every queued namespace be synced
	if diff := cmp.Diff(before, e.resourceVersions(nss...)); diff != "" {
		t.Errorf("restart wrote (-before +after resourceVersions):\n%s", diff)
	}
	if second.logged("secret written") || second.logged("serviceaccount patched") {
		t.Errorf("second run logged writes")
	}
}

// 10. Bad configuration exits non-zero with a clear message and writes nothing.
func TestBadConfigurationExitsBeforeTouchingAnything(t *testing.T) {
	tests := []struct {
		name string
		env  []string
		args []string
		want string
	}{
		{name: "an unknown variable is rejected", env: []string{"KUBE_ECR_REFRESHER_TARGET_NAMESPACE=x"}, want: "KUBE_ECR_REFRESHER_TARGET_NAMESPACE"},
		{name: "an empty namespace list entry is rejected", args: []string{"--target-namespaces=,,"}, want: "--target-namespaces"},
		{name: "a negative duration is rejected", env: []string{"KUBE_ECR_REFRESHER_MIN_REFRESH_INTERVAL=-1m"}, want: "KUBE_ECR_REFRESHER_MIN_REFRESH_INTERVAL"},
		{name: "a missing region is rejected", env: []string{"AWS_REGION="}, want: "AWS_REGION"},
		{name: "an unknown flag is rejected", args: []string{"--target-namespace=a"}, want: "target-namespace"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t)
			p := e.start("controller", tt.env, tt.args...)
			if code := p.wait(30 * time.Second); code == 0 {
				t.Errorf("exit code 0, want non-zero")
			}
			if !strings.Contains(p.Logs(), tt.want) {
				t.Errorf("output does not mention %q:\n%s", tt.want, p.Logs())
			}
			if n := strings.Count(strings.TrimSpace(p.Logs()), "\n"); n > 3 {
				t.Errorf("want a short message, got %d lines:\n%s", n+1, p.Logs())
			}
			list, err := e.client.CoreV1().Secrets("").List(context.Background(), metav1.ListOptions{FieldSelector: "metadata.name=" + e.secret})
			if err != nil {
				t.Fatal(err)
			}
			if len(list.Items) != 0 {
				t.Errorf("%d secrets written", len(list.Items))
			}
			if e.ecr.Calls() != 0 {
				t.Errorf("ECR was called %d times", e.ecr.Calls())
			}
		})
	}
}
