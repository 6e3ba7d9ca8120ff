//go:build integration

package integration

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/kube-ecr-refresher/kube-ecr-refresher/internal/kube"
)

// TestChartUninstall proves, for every ci/*-values.yaml whose rendering has
// the pre-delete cleanup hook, that `helm uninstall` leaves nothing of ours:
// the workload runs as the chart renders it (its args and env, as its
// ServiceAccount), the hook Job's process runs as rendered while the
// workload still runs, and only then is the workload stopped, as Helm's
// delete of the Deployment (or CronJob) makes the kubelet stop it.
func TestChartUninstall(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(rbacRepoRoot(t), "deploy", "helm", "kube-ecr-refresher", "ci", "*-values.yaml"))
	if err != nil || len(files) == 0 {
		t.Fatalf("find ci values: %v (found %d)", err, len(files))
	}
	sts := newLocalSTS(t)
	for _, f := range files {
		name := strings.TrimSuffix(filepath.Base(f), "-values.yaml")
		t.Run(name, func(t *testing.T) { uninstallLeavesNothing(t, sts, name, f) })
	}
}

func uninstallLeavesNothing(t *testing.T, sts *httptest.Server, name, valuesFile string) {
	e := newEnv(t)
	ctx := context.Background()
	admin := e.client
	release := "uninstall-" + name
	fullname := release + "-kube-ecr-refresher"
	relNS := e.namespace("release", nil)
	// The ci file as it is, with a Secret name of this test's own so that
	// "nothing of ours remains" is not confused with other tests' Secrets,
	// and the cleanup opted in (it is off by default).
	chart := decodeChart(t, renderChart(t, release, relNS, "-f", valuesFile, "--set", "config.secretName="+e.secret,
		"--set", "cleanup.onUninstall=true"))
	if chart.hook == nil {
		t.Skip("this rendering has no pre-delete cleanup hook")
	}
	if (chart.deployment == nil) == (chart.cronJob == nil) {
		t.Fatalf("want exactly one workload, a Deployment or a CronJob")
	}
	t.Cleanup(func() { // cluster-scoped: outlives the release namespace
		_ = admin.RbacV1().ClusterRoleBindings().Delete(ctx, fullname, metav1.DeleteOptions{})
		_ = admin.RbacV1().ClusterRoles().Delete(ctx, fullname, metav1.DeleteOptions{})
	})
	// What `helm install` creates (hooks run only at uninstall), minus the
	// prometheus-operator objects, whose CRDs this cluster lacks.
	kubectlApply(t, strings.Join(chart.install, "\n---\n"), "--server-side")

	// Namespaces every ci file serves: the target-namespaces example
	// selects platform-* labelled env=prod, the others serve all. Each
	// with a builder ServiceAccount, which that example lists too.
	var served []string
	for _, suffix := range []string{"1", "2"} {
		ns := "platform-" + name + "-" + suffix
		ensureLabelledNamespace(t, ns, map[string]string{"env": "prod"})
		e.waitDefaultSA(ns)
		if _, err := admin.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{
			ObjectMeta: metav1.ObjectMeta{Name: "builder"},
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		served = append(served, ns)
	}

	podSpec := func() corev1.PodSpec {
		if chart.deployment != nil {
			return chart.deployment.Spec.Template.Spec
		}
		return chart.cronJob.Spec.JobTemplate.Spec.Template.Spec
	}()
	container := only(t, "workload containers", podSpec.Containers)
	hookPod := chart.hook.Spec.Template.Spec
	hookContainer := only(t, "hook containers", hookPod.Containers)
	ensureReferencedSecrets(t, relNS, container)
	workloadKubeconfig, err := plane.KubeconfigFor(ctx, relNS, podSpec.ServiceAccountName)
	if err != nil {
		t.Fatal(err)
	}
	hookKubeconfig, err := plane.KubeconfigFor(ctx, relNS, hookPod.ServiceAccountName)
	if err != nil {
		t.Fatal(err)
	}
	leaseName := envValue(container, "KUBE_ECR_REFRESHER_LEASE_NAME")
	grace := 30 * time.Second // the Pod default
	if s := podSpec.TerminationGracePeriodSeconds; s != nil {
		grace = time.Duration(*s) * time.Second
	}
	var procs []*proc
	t.Cleanup(func() {
		for _, p := range procs {
			checkNotForbidden(t, p)
		}
	})

	if d := chart.deployment; d != nil {
		replicas := 1
		if d.Spec.Replicas != nil {
			replicas = int(*d.Spec.Replicas)
		}
		var pods []*pod
		for i := range replicas {
			podName := fmt.Sprintf("%s-5d8f7c9b6-%d", fullname, i)
			pods = append(pods, e.runPod(podName, e.containerEnv(t, sts, container, podName, relNS, workloadKubeconfig), container.Args, grace))
		}
		for _, ns := range served {
			waitLong(t, "namespace "+ns+" served", func() (bool, string) { return e.holdsOurs(ns) })
		}

		hook := e.runHook(t, sts, hookContainer, chart.hook, relNS, hookKubeconfig)
		procs = append(procs, hook)

		// Helm deletes the Deployment once the hook succeeded; the kubelet
		// sends its Pods SIGTERM.
		for _, p := range pods {
			p.terminate()
			runs := p.runs()
			procs = append(procs, runs...)
			var codes []int
			for _, r := range runs {
				codes = append(codes, r.child.ExitCode())
			}
			t.Logf("pod %s ran %d times, exit codes %v", p.name, len(runs), codes)
		}
	} else {
		// One pass serves the namespaces ...
		podName := fullname + "-29183640-x7k2q"
		pass := e.runOnce(podName, e.containerEnv(t, sts, container, podName, relNS, workloadKubeconfig), container.Args)
		procs = append(procs, pass)
		pass.wait(rbacWaitTimeout)
		for _, ns := range served {
			if ok, detail := e.holdsOurs(ns); !ok {
				t.Fatalf("namespace %s not served by a pass: %s\n%s", ns, detail, pass.Logs())
			}
		}
		// ... and the next scheduled pass starts while the hook runs.
		hookEnv := e.containerEnv(t, sts, hookContainer, chart.hook.Name+"-k8d2w", relNS, hookKubeconfig)
		hook := e.runOnce("cleanup hook", hookEnv, hookContainer.Args)
		procs = append(procs, hook)
		waitLong(t, "the hook to hold the Lease", func() (bool, string) {
			h := leaseHolderIn(admin, relNS, leaseName)
			return strings.HasSuffix(h, "-cleanup") || hook.exited(), h
		})
		podName = fullname + "-29183880-q4m9z"
		next := e.runOnce(podName, e.containerEnv(t, sts, container, podName, relNS, workloadKubeconfig), container.Args)
		procs = append(procs, next)
		if code := hook.wait(hookDeadline(chart.hook)); code != 0 {
			t.Fatalf("cleanup hook exited %d:\n%s", code, hook.Logs())
		}
		// Helm deletes the CronJob; its running Job's Pod gets SIGTERM.
		next.signal(syscall.SIGTERM)
		next.wait(grace + 5*time.Second)
	}

	assertNothingOfOurs(t, e)
}

// assertNothingOfOurs fails t if any Secret of ours named e.secret, or any
// ServiceAccount entry naming it, is left anywhere in the cluster.
func assertNothingOfOurs(t *testing.T, e *env) {
	t.Helper()
	ctx := context.Background()
	secrets, err := e.client.CoreV1().Secrets("").List(ctx, metav1.ListOptions{
		LabelSelector: kube.ManagedByLabel + "=" + kube.ManagedByValue,
		FieldSelector: "metadata.name=" + e.secret,
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range secrets.Items {
		t.Errorf("Secret %s/%s of ours is left after uninstall (created %s)", s.Namespace, s.Name, s.CreationTimestamp.UTC().Format(time.RFC3339Nano))
	}
	sas, err := e.client.CoreV1().ServiceAccounts("").List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, sa := range sas.Items {
		if kube.HasPullSecret(&sa, e.secret) {
			t.Errorf("ServiceAccount %s/%s still lists %s after uninstall", sa.Namespace, sa.Name, e.secret)
		}
	}
}

// holdsOurs reports whether ns has a Secret of ours named e.secret and its
// default ServiceAccount lists it (whatever registries the token is for).
func (e *env) holdsOurs(ns string) (bool, string) {
	s, err := e.client.CoreV1().Secrets(ns).Get(context.Background(), e.secret, metav1.GetOptions{})
	if err != nil {
		return false, err.Error()
	}
	if !kube.Owned(s) {
		return false, "secret not labelled as ours"
	}
	sa, err := e.client.CoreV1().ServiceAccounts(ns).Get(context.Background(), "default", metav1.GetOptions{})
	if err != nil {
		return false, err.Error()
	}
	if !kube.HasPullSecret(sa, e.secret) {
		return false, fmt.Sprintf("serviceaccount %s/default has %v", ns, sa.ImagePullSecrets)
	}
	return true, ""
}

// runHook runs the pre-delete Job's container as rendered and waits for it
// to exit 0 within the Job's deadline.
func (e *env) runHook(t *testing.T, sts *httptest.Server, c corev1.Container, job *batchv1.Job, ns, kubeconfig string) *proc {
	t.Helper()
	podName := job.Name + "-k8d2w"
	hook := e.runOnce("cleanup hook", e.containerEnv(t, sts, c, podName, ns, kubeconfig), c.Args)
	if code := hook.wait(hookDeadline(job)); code != 0 {
		t.Fatalf("cleanup hook exited %d:\n%s", code, hook.Logs())
	}
	return hook
}

func hookDeadline(job *batchv1.Job) time.Duration {
	if s := job.Spec.ActiveDeadlineSeconds; s != nil {
		return time.Duration(*s) * time.Second
	}
	return rbacWaitTimeout
}

// runOnce runs a container process of a Job's Pod (restartPolicy Never).
func (e *env) runOnce(name string, env, args []string) *proc {
	e.t.Helper()
	return e.startWith(name, env, args...)
}

// pod runs a container process the way the kubelet runs a Deployment's Pod
// (restartPolicy Always): restarted whenever it exits, until terminate
// sends it SIGTERM and, after the grace period, SIGKILL.
type pod struct {
	name     string
	stop     chan struct{}
	stopOnce sync.Once
	exited   chan struct{}
	mu       sync.Mutex
	all      []*proc
}

// restartDelay is how soon a pod's exited process is started again: sooner
// than the kubelet's back-off, so a restart has every chance to write.
const restartDelay = time.Second

func (e *env) runPod(name string, env, args []string, grace time.Duration) *pod {
	e.t.Helper()
	p := &pod{name: name, stop: make(chan struct{}), exited: make(chan struct{})}
	go func() {
		defer close(p.exited)
		for run := 0; ; run++ {
			pr, err := e.launch(fmt.Sprintf("%s (run %d)", name, run), env, args...)
			if err != nil {
				e.t.Error(err)
				return
			}
			p.mu.Lock()
			p.all = append(p.all, pr)
			p.mu.Unlock()
			select {
			case <-pr.done:
				select {
				case <-time.After(restartDelay):
					continue
				case <-p.stop:
					return
				}
			case <-p.stop:
				pr.signal(syscall.SIGTERM)
				select {
				case <-pr.done:
				case <-time.After(grace):
					pr.signal(syscall.SIGKILL)
					<-pr.done
				}
				return
			}
		}
	}()
	e.t.Cleanup(func() {
		p.terminate()
		for _, pr := range p.runs() {
			e.checkNoSecretsInLogs(pr)
			if e.t.Failed() {
				e.t.Logf("logs of %s:\n%s", pr.name, pr.Logs())
			}
		}
	})
	return p
}

// terminate stops the pod as the kubelet does when its Deployment is
// deleted, and waits until its process has exited.
func (p *pod) terminate() {
	p.stopOnce.Do(func() { close(p.stop) })
	<-p.exited
}

// runs returns every process the pod ran, restarts included.
func (p *pod) runs() []*proc {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.all)
}

// containerEnv is the environment of c's process in a Pod named podName in
// namespace ns: what the host of a Pod provides, then c's env as rendered
// (downward API and Secret references resolved), then what a Pod has that a
// process on this machine lacks: in-cluster credentials (a kubeconfig of the
// ServiceAccount) and a network namespace of its own (the health and metrics
// servers listen on a free loopback port instead of the rendered one).
// os/exec keeps the last value of a variable set twice.
func (e *env) containerEnv(t *testing.T, sts *httptest.Server, c corev1.Container, podName, ns, kubeconfig string) []string {
	t.Helper()
	env := []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + t.TempDir(),
		"GORACE=halt_on_error=1",
		// In place of what IRSA or EKS Pod Identity inject: dummy keys,
		// which the chart's own keys (when it renders them) override.
		"AWS_ACCESS_KEY_ID=AKIDINTEGRATIONTEST",
		"AWS_SECRET_ACCESS_KEY=integration-test-secret",
		"AWS_EC2_METADATA_DISABLED=true",
		"AWS_CONFIG_FILE=/dev/null",
		"AWS_SHARED_CREDENTIALS_FILE=/dev/null",
		"AWS_ENDPOINT_URL_ECR=" + e.ecr.URL,
		"AWS_ENDPOINT_URL_ECR_PUBLIC=" + e.ecr.URL,
		"AWS_ENDPOINT_URL_STS=" + sts.URL,
	}
	for _, v := range c.Env {
		env = append(env, v.Name+"="+e.resolveEnv(t, v, podName, ns))
	}
	env = append(env, "KUBE_ECR_REFRESHER_KUBECONFIG="+kubeconfig)
	for _, addr := range []string{"KUBE_ECR_REFRESHER_HEALTH_ADDR", "KUBE_ECR_REFRESHER_METRICS_ADDR"} {
		if envValue(c, addr) != "" {
			env = append(env, addr+"=127.0.0.1:0")
		}
	}
	return env
}

// resolveEnv returns the value the kubelet would give v.
func (e *env) resolveEnv(t *testing.T, v corev1.EnvVar, podName, ns string) string {
	t.Helper()
	switch {
	case v.ValueFrom == nil:
		return v.Value
	case v.ValueFrom.FieldRef != nil && v.ValueFrom.FieldRef.FieldPath == "metadata.name":
		return podName
	case v.ValueFrom.FieldRef != nil && v.ValueFrom.FieldRef.FieldPath == "metadata.namespace":
		return ns
	case v.ValueFrom.SecretKeyRef != nil:
		ref := v.ValueFrom.SecretKeyRef
		s, err := e.client.CoreV1().Secrets(ns).Get(context.Background(), ref.Name, metav1.GetOptions{})
		if err != nil {
			t.Fatalf("env %s: %v", v.Name, err)
		}
		val, ok := s.Data[ref.Key]
		if !ok {
			t.Fatalf("env %s: Secret %s/%s has no key %s", v.Name, ns, ref.Name, ref.Key)
		}
		return string(val)
	}
	t.Fatalf("env %s: unsupported valueFrom %+v", v.Name, v.ValueFrom)
	return ""
}

// envValue returns the last value of the variable name in c's env, or "".
func envValue(c corev1.Container, name string) string {
	v := ""
	for _, e := range c.Env {
		if e.Name == name {
			v = e.Value
		}
	}
	return v
}

// ensureReferencedSecrets creates, in ns, every Secret that c's env reads
// and that does not exist: the user's aws.existingSecret, with dummy keys.
func ensureReferencedSecrets(t *testing.T, ns string, c corev1.Container) {
	t.Helper()
	ctx := context.Background()
	dummy := map[string]string{"AWS_ACCESS_KEY_ID": "AKIDINTEGRATIONTEST", "AWS_SECRET_ACCESS_KEY": "integration-test-secret"}
	for _, v := range c.Env {
		if v.ValueFrom == nil || v.ValueFrom.SecretKeyRef == nil {
			continue
		}
		name := v.ValueFrom.SecretKeyRef.Name
		_, err := plane.Client().CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
		if err == nil {
			continue
		}
		if !apierrors.IsNotFound(err) {
			t.Fatal(err)
		}
		if _, err := plane.Client().CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			StringData: dummy,
		}, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
}

// ensureLabelledNamespace creates the namespace ns with labels and deletes
// it when the test ends.
func ensureLabelledNamespace(t *testing.T, ns string, labels map[string]string) {
	t.Helper()
	ctx := context.Background()
	client := plane.Client()
	if _, err := client.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: labels},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatalf("create namespace %s: %v", ns, err)
	}
	t.Cleanup(func() {
		_ = client.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{})
	})
}

// renderedChart is a rendering of the chart, split for the uninstall proof.
type renderedChart struct {
	// install holds the documents `helm install` applies: no hooks, no
	// prometheus-operator objects.
	install    []string
	deployment *appsv1.Deployment
	cronJob    *batchv1.CronJob
	// hook is the pre-delete cleanup Job, if rendered.
	hook *batchv1.Job
}

func decodeChart(t *testing.T, stream string) *renderedChart {
	t.Helper()
	out := &renderedChart{}
	for _, doc := range strings.Split("\n"+stream, "\n---") {
		var head struct {
			metav1.TypeMeta `json:",inline"`
			Metadata        metav1.ObjectMeta `json:"metadata"`
		}
		if err := yaml.Unmarshal([]byte(doc), &head); err != nil {
			t.Fatalf("decode: %v\n%s", err, doc)
		}
		if head.Kind == "" {
			continue // comments only
		}
		if head.Metadata.Annotations["helm.sh/hook"] != "" {
			if head.Kind != "Job" || head.Metadata.Annotations["helm.sh/hook"] != "pre-delete" {
				t.Fatalf("unexpected hook %s %s", head.Kind, head.Metadata.Name)
			}
			out.hook = &batchv1.Job{}
			if err := yaml.UnmarshalStrict([]byte(doc), out.hook); err != nil {
				t.Fatal(err)
			}
			continue
		}
		if strings.HasPrefix(head.APIVersion, "monitoring.coreos.com/") {
			continue
		}
		switch head.Kind {
		case "Deployment":
			out.deployment = &appsv1.Deployment{}
			if err := yaml.UnmarshalStrict([]byte(doc), out.deployment); err != nil {
				t.Fatal(err)
			}
		case "CronJob":
			out.cronJob = &batchv1.CronJob{}
			if err := yaml.UnmarshalStrict([]byte(doc), out.cronJob); err != nil {
				t.Fatal(err)
			}
		}
		out.install = append(out.install, doc)
	}
	return out
}

// only returns the single element of s, failing the test otherwise.
func only[T any](t *testing.T, what string, s []T) T {
	t.Helper()
	if len(s) != 1 {
		t.Fatalf("got %d %s, want 1", len(s), what)
	}
	return s[0]
}

// newLocalSTS answers STS AssumeRole (AWS query protocol) with dummy keys
// that expire in an hour, for the registries of the ci files that name a
// role.
func newLocalSTS(t *testing.T) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := r.ParseForm(); err != nil || r.PostForm.Get("Action") != "AssumeRole" {
			http.Error(w, "only AssumeRole is served", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "text/xml")
		fmt.Fprintf(w, `<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleResult>
    <Credentials>
      <AccessKeyId>ASIAINTEGRATIONTEST</AccessKeyId>
      <SecretAccessKey>integration-test-secret</SecretAccessKey>
      <SessionToken>integration-session-token</SessionToken>
      <Expiration>%s</Expiration>
    </Credentials>
    <AssumedRoleUser>
      <Arn>arn:aws:sts::210987654321:assumed-role/ecr-read/kube-ecr-refresher</Arn>
      <AssumedRoleId>AROAINTEGRATIONTEST:kube-ecr-refresher</AssumedRoleId>
    </AssumedRoleUser>
  </AssumeRoleResult>
  <ResponseMetadata><RequestId>integration</RequestId></ResponseMetadata>
</AssumeRoleResponse>`, time.Now().Add(time.Hour).UTC().Format(time.RFC3339))
	}))
	t.Cleanup(srv.Close)
	return srv
}
