//go:build integration

package integration

import (
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"

	"github.com/kube-ecr-refresher/kube-ecr-refresher/internal/kube"
	"github.com/kube-ecr-refresher/kube-ecr-refresher/test/fakeecr"
)

// Namespace selection: globs, exclusions, a label selector and the ignore
// annotation; a namespace that changes labels is served or dropped at once,
// and a dropped namespace loses our Secret and SA entry (nothing else).
func TestNamespaceSelection(t *testing.T) {
	e := newEnv(t)
	prodA := e.namespace("team-a", map[string]string{"env": "prod"})
	prodB := e.namespace("team-b", map[string]string{"env": "prod"})
	dev := e.namespace("team-c", map[string]string{"env": "dev"})
	excluded := e.namespace("team-x", map[string]string{"env": "prod"})
	other := e.namespace("other", map[string]string{"env": "prod"})
	e.waitDefaultSA(dev)
	e.waitDefaultSA(other)
	p := e.start("controller", []string{
		"KUBE_ECR_REFRESHER_TARGET_NAMESPACES=" + e.prefix + "-team-*",
		"KUBE_ECR_REFRESHER_EXCLUDE_NAMESPACES=*-team-x",
		"KUBE_ECR_REFRESHER_NAMESPACE_SELECTOR=env in (prod,staging)",
	})
	e.waitServed(prodA, prodB)
	time.Sleep(2 * time.Second)
	for _, ns := range []string{dev, excluded, other} {
		e.notTouched(ns)
	}

	// dev becomes prod: served at once.
	e.patchNamespace(dev, `{"metadata":{"labels":{"env":"prod"}}}`)
	e.waitServed(dev)

	// prodB is annotated ignore, prodA leaves by label: both are cleaned,
	// keeping the SA's other entries.
	e.addPullSecret(prodB, "someone-elses")
	e.patchNamespace(prodB, `{"metadata":{"annotations":{"`+kube.IgnoreAnnotation+`":"true"}}}`)
	e.patchNamespace(prodA, `{"metadata":{"labels":{"env":"dev"}}}`)
	for _, ns := range []string{prodA, prodB} {
		waitFor(t, "cleanup of "+ns, func() (bool, string) {
			_, err := e.client.CoreV1().Secrets(ns).Get(context.Background(), e.secret, metav1.GetOptions{})
			sa, _ := e.client.CoreV1().ServiceAccounts(ns).Get(context.Background(), "default", metav1.GetOptions{})
			return apierrors.IsNotFound(err) && sa != nil && !kube.HasPullSecret(sa, e.secret), ""
		})
	}
	sa, _ := e.client.CoreV1().ServiceAccounts(prodB).Get(context.Background(), "default", metav1.GetOptions{})
	if diff := cmp.Diff([]corev1.LocalObjectReference{{Name: "someone-elses"}}, sa.ImagePullSecrets); diff != "" {
		t.Errorf("cleanup touched other entries (-want +got):\n%s", diff)
	}
	if !p.logged("secret removed", "namespace", prodA) {
		t.Errorf("no log line for the cleanup of %s", prodA)
	}
}

func (e *env) patchNamespace(ns, patch string) {
	e.t.Helper()
	_, err := e.client.CoreV1().Namespaces().Patch(context.Background(), ns, types.MergePatchType, []byte(patch), metav1.PatchOptions{})
	if err != nil {
		e.t.Fatalf("patch namespace %s: %v", ns, err)
	}
}

func (e *env) addPullSecret(ns, name string) {
	e.t.Helper()
	e.waitDefaultSA(ns)
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		sa, err := e.client.CoreV1().ServiceAccounts(ns).Get(context.Background(), "default", metav1.GetOptions{})
		if err != nil {
			return err
		}
		sa.ImagePullSecrets = append([]corev1.LocalObjectReference{{Name: name}}, sa.ImagePullSecrets...)
		_, err = e.client.CoreV1().ServiceAccounts(ns).Update(context.Background(), sa, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) createSA(ns, name string) {
	e.t.Helper()
	_, err := e.client.CoreV1().ServiceAccounts(ns).Create(context.Background(),
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name}}, metav1.CreateOptions{})
	if err != nil {
		e.t.Fatal(err)
	}
}

func (e *env) saHasEntry(ns, name string) bool {
	sa, err := e.client.CoreV1().ServiceAccounts(ns).Get(context.Background(), name, metav1.GetOptions{})
	return err == nil && kube.HasPullSecret(sa, e.secret)
}

// ServiceAccount selection: a list, * for every ServiceAccount (new ones
// included), or empty for Secrets only.
func TestServiceAccountSelection(t *testing.T) {
	t.Run("every ServiceAccount, new ones included, with *", func(t *testing.T) {
		e := newEnv(t)
		ns := e.namespace("all", nil)
		e.waitDefaultSA(ns)
		e.createSA(ns, "builder")
		e.start("controller", []string{"KUBE_ECR_REFRESHER_TARGET_NAMESPACES=" + ns, "KUBE_ECR_REFRESHER_SERVICE_ACCOUNTS=*"})
		e.waitServed(ns)
		waitFor(t, "builder patched", func() (bool, string) { return e.saHasEntry(ns, "builder"), "" })
		e.createSA(ns, "later")
		waitFor(t, "a new ServiceAccount patched", func() (bool, string) { return e.saHasEntry(ns, "later"), "" })
	})
	t.Run("a list patches only the listed ServiceAccounts", func(t *testing.T) {
		e := newEnv(t)
		ns := e.namespace("list", nil)
		e.waitDefaultSA(ns)
		e.createSA(ns, "builder")
		e.createSA(ns, "runner")
		e.start("controller", []string{"KUBE_ECR_REFRESHER_TARGET_NAMESPACES=" + ns}, "--service-accounts=builder,runner")
		waitFor(t, "builder and runner patched", func() (bool, string) {
			return e.saHasEntry(ns, "builder") && e.saHasEntry(ns, "runner"), ""
		})
		if e.saHasEntry(ns, "default") {
			t.Errorf("default was patched though not listed")
		}
	})
	t.Run("an empty list writes Secrets only", func(t *testing.T) {
		e := newEnv(t)
		ns := e.namespace("none", nil)
		e.waitDefaultSA(ns)
		p := e.start("controller", []string{"KUBE_ECR_REFRESHER_TARGET_NAMESPACES=" + ns, "KUBE_ECR_REFRESHER_SERVICE_ACCOUNTS="})
		waitFor(t, "the secret", func() (bool, string) {
			s, err := e.client.CoreV1().Secrets(ns).Get(context.Background(), e.secret, metav1.GetOptions{})
			if err != nil {
				return false, err.Error()
			}
			return e.validSecret(s) == "", e.validSecret(s)
		})
		time.Sleep(2 * time.Second)
		if e.saHasEntry(ns, "default") || p.logged("serviceaccount patched") {
			t.Errorf("a ServiceAccount was patched with SERVICE_ACCOUNTS empty")
		}
	})
}

// --once does one full pass and exits 0; a namespace that cannot be served
// makes it exit non-zero naming that namespace. --dry-run writes nothing.
func TestOnceAndDryRun(t *testing.T) {
	e := newEnv(t)
	ok1, ok2, blocked := e.namespace("ok-1", nil), e.namespace("ok-2", nil), e.namespace("blocked", nil)
	for _, ns := range []string{ok1, ok2, blocked} {
		e.waitDefaultSA(ns)
	}
	targets := "KUBE_ECR_REFRESHER_TARGET_NAMESPACES=" + ok1 + "," + ok2

	dry := e.start("dry run", []string{targets}, "--once", "--dry-run")
	if code := dry.wait(60 * time.Second); code != 0 {
		t.Fatalf("--once --dry-run exited %d:\n%s", code, dry.Logs())
	}
	for _, ns := range []string{ok1, ok2} {
		e.notTouched(ns)
		if !dry.logged("dry run: secret would be written", "namespace", ns) ||
			!dry.logged("dry run: serviceaccount would be patched", "namespace", ns) {
			t.Errorf("dry run did not log the writes for %s", ns)
		}
	}

	once := e.start("once", []string{targets}, "--once")
	if code := once.wait(60 * time.Second); code != 0 {
		t.Fatalf("--once exited %d:\n%s", code, once.Logs())
	}
	for _, ns := range []string{ok1, ok2} {
		if ok, detail := e.served(ns); !ok {
			t.Errorf("%s not served after --once: %s", ns, detail)
		}
	}
	if holder := e.leaseHolder(); holder != "" {
		t.Errorf("--once kept the lease (holder %q)", holder)
	}

	// An immutable Secret of ours with broken data makes the blocked namespace
	// fail for real: it must be rewritten, and the API server refuses.
	immutable := true
	_, err := e.client.CoreV1().Secrets(blocked).Create(context.Background(), &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: e.secret, Labels: map[string]string{kube.ManagedByLabel: kube.ManagedByValue}},
		Type:       corev1.SecretTypeDockerConfigJson,
		Data:       map[string][]byte{corev1.DockerConfigJsonKey: []byte(`{"auths":{}}`)},
		Immutable:  &immutable,
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	failing := e.start("once with a failing namespace", []string{targets + "," + blocked, "KUBE_ECR_REFRESHER_RETRY_INITIAL=200ms"}, "--once")
	if code := failing.wait(90 * time.Second); code == 0 {
		t.Fatalf("--once exited 0 though %s cannot be served", blocked)
	}
	if !strings.Contains(failing.Logs(), "sync failed in 1 of") || !strings.Contains(failing.Logs(), blocked) {
		t.Errorf("--once output does not name the failed namespace:\n%s", failing.Logs())
	}
}

// --cleanup removes every Secret of ours and every SA entry naming it,
// cluster-wide, and nothing else; it takes the Lease first so a running
// leader stops writing.
func TestCleanupRemovesOnlyOurs(t *testing.T) {
	e := newEnv(t)
	a, b, foreign := e.namespace("a", nil), e.namespace("b", nil), e.namespace("foreign", nil)
	_, err := e.client.CoreV1().Secrets(foreign).Create(context.Background(), &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: e.secret},
		Data:       map[string][]byte{"k": []byte("v")},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	e.addPullSecret(a, "keep-me")
	e.addPullSecret(foreign, e.secret) // someone else's reference to their own Secret
	leader := e.start("controller", []string{"KUBE_ECR_REFRESHER_TARGET_NAMESPACES=" + a + "," + b + "," + foreign})
	e.waitServed(a, b)

	cleanup := e.start("cleanup", []string{"AWS_REGION="}, "--cleanup") // needs no AWS at all
	if code := cleanup.wait(90 * time.Second); code != 0 {
		t.Fatalf("--cleanup exited %d:\n%s", code, cleanup.Logs())
	}
	// The running leader lost the Lease and exits non-zero to restart clean.
	if code := leader.wait(60 * time.Second); code == 0 {
		t.Errorf("the leader exited 0 after losing the Lease")
	}
	for _, ns := range []string{a, b} {
		e.notTouched(ns)
	}
	sa, _ := e.client.CoreV1().ServiceAccounts(a).Get(context.Background(), "default", metav1.GetOptions{})
	if diff := cmp.Diff([]corev1.LocalObjectReference{{Name: "keep-me"}}, sa.ImagePullSecrets); diff != "" {
		t.Errorf("cleanup touched other entries (-want +got):\n%s", diff)
	}
	if s, err := e.client.CoreV1().Secrets(foreign).Get(context.Background(), e.secret, metav1.GetOptions{}); err != nil || string(s.Data["k"]) != "v" {
		t.Errorf("cleanup touched the foreign secret: %v", err)
	}
	if !e.saHasEntry(foreign, "default") {
		t.Errorf("cleanup removed a reference to someone else's Secret")
	}
}

// Events: a Warning on a namespace whose Secret is someone else's, a Warning
// when the ECR refresh fails, Normal when it recovers; never the token.
func TestEvents(t *testing.T) {
	e := newEnv(t, fakeecr.WithLifetime(10*time.Second))
	ns, foreign := e.namespace("ev", nil), e.namespace("ev-foreign", nil)
	_, err := e.client.CoreV1().Secrets(foreign).Create(context.Background(), &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: e.secret},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	e.start("controller", []string{
		"KUBE_ECR_REFRESHER_TARGET_NAMESPACES=" + ns + "," + foreign,
		"KUBE_ECR_REFRESHER_EVENTS=true",
		"KUBE_ECR_REFRESHER_MIN_REFRESH_INTERVAL=1s",
		"KUBE_ECR_REFRESHER_RETRY_INITIAL=500ms",
		"KUBE_ECR_REFRESHER_RETRY_MAX=1s",
		"POD_NAMESPACE=default",
		"POD_NAME=refresher-pod-" + e.prefix,
	})
	e.waitServed(ns)
	e.waitEvent(kube.ReasonSecretNotOurs, "Namespace", foreign, corev1.EventTypeWarning)
	e.ecr.SetFailure(fakeecr.FailureAccessDenied)
	e.waitEvent(kube.ReasonRefreshFailed, "Pod", "refresher-pod-"+e.prefix, corev1.EventTypeWarning)
	e.ecr.SetFailure(fakeecr.FailureNone)
	e.waitEvent(kube.ReasonRefreshRecovery, "Pod", "refresher-pod-"+e.prefix, corev1.EventTypeNormal)

	all, err := e.client.CoreV1().Events("").List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range all.Items {
		for _, pw := range e.ecr.Passwords() {
			if strings.Contains(ev.Message, pw) {
				t.Errorf("event %s/%s contains a password", ev.Namespace, ev.Name)
			}
		}
	}
}

func (e *env) waitEvent(reason, kind, name, typ string) {
	e.t.Helper()
	waitFor(e.t, "event "+reason+" on "+kind+" "+name, func() (bool, string) {
		list, err := e.client.CoreV1().Events("").List(context.Background(), metav1.ListOptions{
			FieldSelector: "reason=" + reason + ",involvedObject.name=" + name,
		})
		if err != nil {
			return false, err.Error()
		}
		for _, ev := range list.Items {
			if ev.InvolvedObject.Kind == kind && ev.Type == typ {
				return true, ""
			}
		}
		return false, ""
	})
}

// Several registries: one ECR call per distinct region (plus one for ECR
// Public) per refresh, one Secret holding every host.
func TestSeveralRegistriesInOneSecret(t *testing.T) {
	e := newEnv(t)
	ns := e.namespace("multi", nil)
	e.start("controller", []string{
		"KUBE_ECR_REFRESHER_TARGET_NAMESPACES=" + ns,
		"KUBE_ECR_REFRESHER_REGISTRIES=111111111111:us-east-1,222222222222:us-east-1,333333333333:eu-west-1",
		"KUBE_ECR_REFRESHER_EXTRA_REGISTRY_HOSTS=444444444444.dkr-ecr.eu-west-1.on.aws",
		"KUBE_ECR_REFRESHER_ECR_PUBLIC=true",
		"AWS_ENDPOINT_URL_ECR_PUBLIC=" + e.ecr.URL,
		"AWS_REGION=",
	})
	want := []string{
		"111111111111.dkr.ecr.us-east-1.amazonaws.com",
		"222222222222.dkr.ecr.us-east-1.amazonaws.com",
		"333333333333.dkr.ecr.eu-west-1.amazonaws.com",
		"444444444444.dkr-ecr.eu-west-1.on.aws",
		"public.ecr.aws",
	}
	var got []string
	waitFor(t, "a secret with every registry", func() (bool, string) {
		s, err := e.client.CoreV1().Secrets(ns).Get(context.Background(), e.secret, metav1.GetOptions{})
		if err != nil {
			return false, err.Error()
		}
		got, err = kube.ParseDockerConfigJSON(s.Data[corev1.DockerConfigJsonKey])
		return err == nil && cmp.Equal(want, got), cmp.Diff(want, got)
	})
	e.waitServedAnyHost(ns)
	if calls := e.ecr.Calls(); calls != 3 {
		t.Errorf("ECR calls = %d, want 3 (us-east-1, eu-west-1, ECR Public)", calls)
	}
}

// waitServedAnyHost waits for the default ServiceAccount to list the Secret.
func (e *env) waitServedAnyHost(ns string) {
	e.t.Helper()
	waitFor(e.t, "default serviceaccount in "+ns+" lists the secret", func() (bool, string) { return e.saHasEntry(ns, "default"), "" })
}

// Metrics on METRICS_ADDR: token expiry per registry, refresh attempts,
// writes, leadership and the workqueue, all lint-clean.
func TestMetricsEndpoint(t *testing.T) {
	e := newEnv(t)
	ns := e.namespace("metrics", nil)
	addr := freeAddr(t)
	e.start("controller", []string{"KUBE_ECR_REFRESHER_TARGET_NAMESPACES=" + ns, "KUBE_ECR_REFRESHER_METRICS_ADDR=" + addr})
	e.waitServed(ns)
	want := []string{
		`kube_ecr_refresher_token_expiry_timestamp_seconds{registry="123456789012.dkr.ecr.us-east-1.amazonaws.com"}`,
		`kube_ecr_refresher_refresh_attempts_total{result="success"} 1`,
		`kube_ecr_refresher_writes_total{kind="secret",operation="create"} 1`,
		`kube_ecr_refresher_writes_total{kind="serviceaccount",operation="update"} 1`,
		`kube_ecr_refresher_leader 1`,
		`workqueue_adds_total{name="namespaces"}`,
		`kube_ecr_refresher_ecr_request_duration_seconds_count{operation="GetAuthorizationToken",result="success"} 1`,
	}
	var body string
	waitFor(t, "metrics", func() (bool, string) {
		resp, err := http.Get("http://" + addr + "/metrics")
		if err != nil {
			return false, err.Error()
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		body = string(b)
		for _, w := range want {
			if !strings.Contains(body, w) {
				return false, "missing " + w
			}
		}
		return true, ""
	})
	problems, err := promlint.New(strings.NewReader(body)).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		if strings.HasPrefix(p.Metric, "kube_ecr_refresher_") {
			t.Errorf("promlint: %s: %s", p.Metric, p.Text)
		}
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}
