//go:build integration

package integration

import (
	"bufio"
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/kube-ecr-refresher/kube-ecr-refresher/internal/kube"
	"github.com/kube-ecr-refresher/kube-ecr-refresher/test/fakeecr"
	childproc "github.com/kube-ecr-refresher/kube-ecr-refresher/test/proc"
)

const waitTimeout = 90 * time.Second

// env is one test's world: a unique Secret name and Lease, its own local ECR
// endpoint, and the namespaces it created.
type env struct {
	t      *testing.T
	client kubernetes.Interface
	ecr    *fakeecr.Server
	secret string
	lease  string
	prefix string
}

func newEnv(t *testing.T, opts ...fakeecr.Option) *env {
	t.Helper()
	srv := fakeecr.New(opts...)
	t.Cleanup(srv.Close)
	id := strings.ToLower(strings.NewReplacer("/", "-", "_", "-").Replace(t.Name()))
	if len(id) > 40 {
		id = id[:40]
	}
	id = strings.Trim(id, "-")
	e := &env{t: t, client: plane.Client(), ecr: srv, secret: "ecr-" + id, lease: "lease-" + id, prefix: id}
	return e
}

// namespace creates a namespace named after the test and waits for its
// default ServiceAccount (created by kube-controller-manager) when wantSA.
func (e *env) namespace(suffix string, labels map[string]string) string {
	e.t.Helper()
	name := e.prefix + "-" + suffix
	if len(name) > 63 {
		name = name[len(name)-63:]
		name = strings.TrimLeft(name, "-")
	}
	_, err := e.client.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
	}, metav1.CreateOptions{})
	if err != nil {
		e.t.Fatalf("create namespace %s: %v", name, err)
	}
	e.t.Cleanup(func() {
		_ = e.client.CoreV1().Namespaces().Delete(context.Background(), name, metav1.DeleteOptions{})
	})
	return name
}

func (e *env) waitDefaultSA(ns string) {
	e.t.Helper()
	waitFor(e.t, "default serviceaccount in "+ns, func() (bool, string) {
		_, err := e.client.CoreV1().ServiceAccounts(ns).Get(context.Background(), "default", metav1.GetOptions{})
		return err == nil, fmt.Sprint(err)
	})
}

// baseEnv is the environment of every controller run: nothing inherited that
// could reach beyond loopback, dummy static AWS keys, the local endpoint.
func (e *env) baseEnv() []string {
	return []string{
		"PATH=" + os.Getenv("PATH"),
		"HOME=" + e.t.TempDir(),
		"AWS_REGION=us-east-1",
		"AWS_ACCESS_KEY_ID=AKIDINTEGRATIONTEST",
		"AWS_SECRET_ACCESS_KEY=integration-test-secret",
		"AWS_EC2_METADATA_DISABLED=true",
		"AWS_ENDPOINT_URL_ECR=" + e.ecr.URL,
		"AWS_CONFIG_FILE=/dev/null",
		"AWS_SHARED_CREDENTIALS_FILE=/dev/null",
		"KUBE_ECR_REFRESHER_KUBECONFIG=" + plane.AdminKubeconfig(),
		"KUBE_ECR_REFRESHER_SECRET_NAME=" + e.secret,
		"KUBE_ECR_REFRESHER_LEASE_NAME=" + e.lease,
		"KUBE_ECR_REFRESHER_LEASE_NAMESPACE=default",
		"KUBE_ECR_REFRESHER_HEALTH_ADDR=127.0.0.1:0",
		"KUBE_ECR_REFRESHER_LOG_LEVEL=debug",
		"KUBE_ECR_REFRESHER_LEASE_DURATION=6s",
		"KUBE_ECR_REFRESHER_RENEW_DEADLINE=4s",
		"KUBE_ECR_REFRESHER_RETRY_PERIOD=1s",
		"GORACE=halt_on_error=1",
	}
}

// proc is one running controller binary.
type proc struct {
	t     *testing.T
	name  string
	child *childproc.Process
	done  <-chan struct{} // child.Done()
	mu    sync.Mutex
	out   bytes.Buffer
}

func (p *proc) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.Write(b)
}

// Logs returns everything the process wrote so far.
func (p *proc) Logs() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// start runs the binary with the base environment plus extraEnv and args.
func (e *env) start(name string, extraEnv []string, args ...string) *proc {
	e.t.Helper()
	return e.startWith(name, append(e.baseEnv(), extraEnv...), args...)
}

// startWith runs the binary with exactly the environment env and args, and
// stops it (SIGTERM, SIGKILL after 20 s) when the test ends, checking that
// its logs hold no secret.
func (e *env) startWith(name string, env []string, args ...string) *proc {
	e.t.Helper()
	p, err := e.launch(name, env, args...)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() {
		_, _ = p.child.Stop(20 * time.Second)
		e.checkNoSecretsInLogs(p)
		if e.t.Failed() {
			e.t.Logf("logs of %s:\n%s", p.name, p.Logs())
		}
	})
	return p
}

// launch runs the binary with exactly the environment env and args; the
// caller stops it. Safe to call from any goroutine.
func (e *env) launch(name string, env []string, args ...string) (*proc, error) {
	cmd := exec.Command(binary, args...)
	cmd.Env = env
	p := &proc{t: e.t, name: name}
	cmd.Stdout, cmd.Stderr = p, p
	child, err := childproc.Start(cmd, nil)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p.child, p.done = child, child.Done()
	return p, nil
}

func (p *proc) signal(s syscall.Signal) { _ = p.child.Signal(s) }

// wait waits for the process to exit and returns its exit code.
func (p *proc) wait(timeout time.Duration) int {
	p.t.Helper()
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.t.Fatalf("%s did not exit within %s; logs:\n%s", p.name, timeout, p.Logs())
	}
	return p.child.ExitCode()
}

func (p *proc) exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// logged reports whether a JSON log line has msg (and every key=value in kv).
func (p *proc) logged(msg string, kv ...string) bool {
	return p.countLogged(msg, kv...) > 0
}

func (p *proc) countLogged(msg string, kv ...string) int {
	n := 0
	sc := bufio.NewScanner(strings.NewReader(p.Logs()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var rec map[string]any
		if json.Unmarshal(sc.Bytes(), &rec) != nil || rec["msg"] != msg {
			continue
		}
		ok := true
		for i := 0; i+1 < len(kv); i += 2 {
			if fmt.Sprint(rec[kv[i]]) != kv[i+1] {
				ok = false
			}
		}
		if ok {
			n++
		}
	}
	return n
}

// checkNoSecretsInLogs: no log line of any run contains a token or password.
func (e *env) checkNoSecretsInLogs(p *proc) {
	logs := p.Logs()
	for _, pw := range e.ecr.Passwords() {
		if strings.Contains(logs, pw) {
			e.t.Errorf("%s logged an ECR password", p.name)
		}
		token := base64.StdEncoding.EncodeToString([]byte("AWS:" + pw))
		if strings.Contains(logs, token) {
			e.t.Errorf("%s logged an ECR token", p.name)
		}
	}
	if strings.Contains(logs, "integration-test-secret") {
		e.t.Errorf("%s logged the AWS secret access key", p.name)
	}
}

func waitFor(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	waitUntil(t, waitTimeout, what, cond)
}

// waitUntil polls cond until it holds or timeout passes, then fails t with
// cond's last detail.
func waitUntil(t *testing.T, timeout time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for time.Now().Before(deadline) {
		ok, detail := cond()
		if ok {
			return
		}
		last = detail
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("timed out after %s waiting for %s (last: %s)", timeout, what, last)
}

// served reports whether ns has a valid Secret for the current ECR password
// (or any password when anyPassword) and its default ServiceAccount lists it.
func (e *env) served(ns string) (bool, string) {
	s, err := e.client.CoreV1().Secrets(ns).Get(context.Background(), e.secret, metav1.GetOptions{})
	if err != nil {
		return false, err.Error()
	}
	if detail := e.validSecret(s); detail != "" {
		return false, detail
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

// validSecret returns "" when s is a well-formed Secret of ours holding one of
// the passwords the local ECR endpoint handed out.
func (e *env) validSecret(s *corev1.Secret) string {
	if s.Type != corev1.SecretTypeDockerConfigJson {
		return "type " + string(s.Type)
	}
	if !kube.Owned(s) {
		return "not labelled as ours"
	}
	if _, err := time.Parse(time.RFC3339, s.Annotations[kube.ExpiresAtAnnotation]); err != nil {
		return "expiry annotation: " + err.Error()
	}
	pw, host, err := decode(s)
	if err != nil {
		return err.Error()
	}
	if host != "123456789012.dkr.ecr.us-east-1.amazonaws.com" {
		return "host " + host
	}
	for _, p := range e.ecr.Passwords() {
		if p == pw {
			return ""
		}
	}
	return "password not issued by the endpoint"
}

func decode(s *corev1.Secret) (password, host string, err error) {
	var cfg struct {
		Auths map[string]struct {
			Username, Password, Auth string
		} `json:"auths"`
	}
	if err := json.Unmarshal(s.Data[corev1.DockerConfigJsonKey], &cfg); err != nil {
		return "", "", err
	}
	if len(cfg.Auths) != 1 {
		return "", "", fmt.Errorf("%d auths", len(cfg.Auths))
	}
	for h, a := range cfg.Auths {
		dec, err := base64.StdEncoding.DecodeString(a.Auth)
		if err != nil || string(dec) != a.Username+":"+a.Password || a.Username != "AWS" {
			return "", "", fmt.Errorf("auth field does not match user and password")
		}
		return a.Password, h, nil
	}
	return "", "", nil
}

func (e *env) waitServed(nss ...string) {
	e.t.Helper()
	for _, ns := range nss {
		waitFor(e.t, "namespace "+ns+" served", func() (bool, string) { return e.served(ns) })
	}
}

// notTouched asserts ns has no Secret of ours and its default SA does not list it.
func (e *env) notTouched(ns string) {
	e.t.Helper()
	_, err := e.client.CoreV1().Secrets(ns).Get(context.Background(), e.secret, metav1.GetOptions{})
	if !apierrors.IsNotFound(err) {
		e.t.Errorf("namespace %s: secret %s exists (err=%v), want none", ns, e.secret, err)
	}
	sa, err := e.client.CoreV1().ServiceAccounts(ns).Get(context.Background(), "default", metav1.GetOptions{})
	if err == nil && kube.HasPullSecret(sa, e.secret) {
		e.t.Errorf("namespace %s: default serviceaccount lists %s", ns, e.secret)
	}
}

func (e *env) leaseHolder() string {
	l, err := e.client.CoordinationV1().Leases("default").Get(context.Background(), e.lease, metav1.GetOptions{})
	if err != nil || l.Spec.HolderIdentity == nil {
		return ""
	}
	return *l.Spec.HolderIdentity
}

// resourceVersions of our Secret and the default SA in each namespace.
func (e *env) resourceVersions(nss ...string) map[string]string {
	e.t.Helper()
	out := map[string]string{}
	for _, ns := range nss {
		s, err := e.client.CoreV1().Secrets(ns).Get(context.Background(), e.secret, metav1.GetOptions{})
		if err != nil {
			e.t.Fatalf("get secret in %s: %v", ns, err)
		}
		out["secret/"+ns] = s.ResourceVersion
		sa, err := e.client.CoreV1().ServiceAccounts(ns).Get(context.Background(), "default", metav1.GetOptions{})
		if err != nil {
			e.t.Fatalf("get serviceaccount in %s: %v", ns, err)
		}
		out["sa/"+ns] = sa.ResourceVersion
	}
	return out
}

func (e *env) secretData(nss ...string) map[string]string {
	e.t.Helper()
	out := map[string]string{}
	for _, ns := range nss {
		s, err := e.client.CoreV1().Secrets(ns).Get(context.Background(), e.secret, metav1.GetOptions{})
		if err != nil {
			e.t.Fatalf("get secret in %s: %v", ns, err)
		}
		b, _ := json.Marshal(struct {
			Data        map[string][]byte
			Annotations map[string]string
			RV          string
		}{s.Data, s.Annotations, s.ResourceVersion})
		out[ns] = string(b)
	}
	return out
}
