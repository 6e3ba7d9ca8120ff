package app

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"

	"github.com/kube-ecr-refresher/kube-ecr-refresher/internal/config"
	"github.com/kube-ecr-refresher/kube-ecr-refresher/internal/registry"
)

// fakeTokens hands out a 12 h token fetched now.
type fakeTokens struct{}

func (fakeTokens) Fetch(context.Context) (registry.Credentials, error) {
	now := time.Now()
	return registry.Credentials{
		Auths:     []registry.Auth{{Host: "123456789012.dkr.ecr.eu-west-1.amazonaws.com", Username: "AWS", Password: "pw"}},
		FetchedAt: now,
		ExpiresAt: now.Add(12 * time.Hour),
	}, nil
}

// started runs the binary's wiring with client and returns the address of
// each server by name and a stop function that waits for run to return.
func started(t *testing.T, client kubernetes.Interface, args ...string) (map[string]net.Addr, func() error) {
	t.Helper()
	addrs := make(chan [2]any, 2)
	d := deps{
		kube:      func(config.Config) (kubernetes.Interface, error) { return client, nil },
		tokens:    fakeTokens{},
		listening: func(what string, addr net.Addr) { addrs <- [2]any{what, addr} },
	}
	t.Setenv("KUBE_ECR_REFRESHER_LOG_LEVEL", "error")
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() { errc <- run(ctx, "test", args, io.Discard, d) }()
	got := map[string]net.Addr{}
	select {
	case a := <-addrs:
		got[a[0].(string)] = a[1].(net.Addr)
	case err := <-errc:
		cancel()
		t.Fatalf("run returned before serving: %v", err)
	case <-time.After(10 * time.Second):
		cancel()
		t.Fatal("no server started")
	}
	stop := func() error {
		cancel()
		select {
		case err := <-errc:
			return err
		case <-time.After(10 * time.Second):
			return errors.New("run did not return within 10s")
		}
	}
	return got, stop
}

func get(url string) int {
	resp, err := http.Get(url)
	if err != nil {
		return 0
	}
	_ = resp.Body.Close()
	return resp.StatusCode
}

func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for !cond() {
		if time.Since(start) > timeout {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return time.Since(start)
}

// A leader whose Lease renewals hang must fail /healthz, so that the
// livenessProbe restarts it: client-go arms the watchdog only in RunOrDie.
func TestHealthzFailsWhenTheLeaderStopsRenewing(t *testing.T) {
	const (
		leaseDuration = time.Second
		renewDeadline = 500 * time.Millisecond
	)
	client := fake.NewClientset()
	var hang atomic.Bool
	unblock := make(chan struct{})
	client.PrependReactor("update", "leases", func(k8stesting.Action) (bool, runtime.Object, error) {
		if hang.Load() {
			<-unblock // a request that never returns (the fake ignores contexts)
			return true, nil, context.Canceled
		}
		return false, nil, nil
	})
	addrs, stop := started(t, client, "--health-addr=127.0.0.1:0", "--lease-namespace=kube-system",
		"--leader-election-identity=replica-1", "--lease-duration="+leaseDuration.String(),
		"--renew-deadline="+renewDeadline.String(), "--retry-period=100ms")
	healthz := "http://" + addrs["health"].String() + "/healthz"

	waitFor(t, 10*time.Second, "replica-1 to lead", func() bool {
		l, err := client.CoordinationV1().Leases("kube-system").Get(context.Background(), "kube-ecr-refresher", metav1.GetOptions{})
		return err == nil && ptr.Deref(l.Spec.HolderIdentity, "") == "replica-1"
	})
	if code := get(healthz); code != http.StatusOK {
		t.Fatalf("/healthz of a renewing leader = %d, want 200", code)
	}
	hang.Store(true)
	took := waitFor(t, 10*time.Second, "/healthz to fail", func() bool { return get(healthz) == http.StatusInternalServerError })
	// The adaptor's slack is the renew deadline; allow one retry period and
	// the poll's granularity on top.
	if limit := leaseDuration + renewDeadline + 500*time.Millisecond; took > limit {
		t.Errorf("/healthz failed %v after renewals hung, want within %v", took, limit)
	}
	close(unblock)
	if err := stop(); err != nil {
		t.Logf("run: %v", err) // losing the Lease is an error exit; either is fine here
	}
}

// /healthz is ok on a follower and /readyz turns ok once the caches synced.
func TestProbesOfAFollower(t *testing.T) {
	other := &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "kube-ecr-refresher"},
		Spec: coordinationv1.LeaseSpec{
			HolderIdentity:       ptr.To("replica-2"),
			LeaseDurationSeconds: ptr.To[int32](3600),
			AcquireTime:          &metav1.MicroTime{Time: time.Now()},
			RenewTime:            &metav1.MicroTime{Time: time.Now()},
		},
	}
	client := fake.NewClientset(other)
	addrs, stop := started(t, client, "--health-addr=127.0.0.1:0", "--lease-namespace=kube-system",
		"--leader-election-identity=replica-1")
	base := "http://" + addrs["health"].String()
	waitFor(t, 10*time.Second, "/readyz to be ok", func() bool { return get(base+"/readyz") == http.StatusOK })
	if code := get(base + "/healthz"); code != http.StatusOK {
		t.Errorf("/healthz of a follower = %d, want 200", code)
	}
	if err := stop(); err != nil {
		t.Errorf("run after cancel = %v, want nil", err)
	}
}

func TestExitCodes(t *testing.T) {
	tests := []struct {
		name    string
		args    []string
		want    int
		wantOut string
	}{
		{name: "--help exits 0", args: []string{"--help"}, want: ExitOK},
		{name: "A bad setting exits 2 before anything is contacted, naming it", args: []string{"--workers=0", "--bogus"}, want: ExitConfigError, wantOut: "--workers"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("KUBE_ECR_REFRESHER_LOG_LEVEL", "error")
			contacted := false
			d := deps{
				kube: func(config.Config) (kubernetes.Interface, error) {
					contacted = true
					return fake.NewClientset(), nil
				},
				tokens: fakeTokens{},
			}
			var out strings.Builder
			err := run(t.Context(), "test", tt.args, &out, d)
			if got := ExitCode(err, &out); got != tt.want {
				t.Errorf("exit code %d, want %d (err %v)", got, tt.want, err)
			}
			if contacted {
				t.Error("the Kubernetes client was built")
			}
			if !strings.Contains(out.String(), tt.wantOut) {
				t.Errorf("output lacks %q:\n%s", tt.wantOut, out.String())
			}
		})
	}
}

// --once with leader election off does one pass over the fake cluster and
// exits 0 when every namespace is served.
func TestOnceMode(t *testing.T) {
	t.Setenv("KUBE_ECR_REFRESHER_LOG_LEVEL", "error")
	client := fake.NewClientset(
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "a"}},
		&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "default"}},
	)
	// Stamp resourceVersions as the API server does: the pass's verdict reads
	// the caches, whose overlay of our writes compares them.
	var rv atomic.Int64
	client.PrependReactor("*", "*", func(a k8stesting.Action) (bool, runtime.Object, error) {
		if w, ok := a.(interface{ GetObject() runtime.Object }); ok {
			if m, err := meta.Accessor(w.GetObject()); err == nil {
				m.SetResourceVersion(strconv.FormatInt(rv.Add(1)+1000, 10))
			}
		}
		return false, nil, nil
	})
	d := deps{kube: func(config.Config) (kubernetes.Interface, error) { return client, nil }, tokens: fakeTokens{}}
	err := run(t.Context(), "test", []string{"--once", "--leader-elect=false", "--health-addr="}, io.Discard, d)
	if code := ExitCode(err, io.Discard); code != ExitOK {
		t.Fatalf("--once exit code %d (%v), want 0", code, err)
	}
	sa, err := client.CoreV1().ServiceAccounts("a").Get(t.Context(), "default", metav1.GetOptions{})
	if err != nil || len(sa.ImagePullSecrets) != 1 {
		t.Errorf("default ServiceAccount after --once: %v, %v; want our entry", sa, err)
	}
}

// PPROF_ADDR serves Go's profiles on an address of its own, for a heap
// profile a user can send.
func TestPprofEndpointWhenAsked(t *testing.T) {
	client := fake.NewClientset()
	addrs, stop := started(t, client, "--health-addr=", "--pprof-addr=127.0.0.1:0", "--lease-namespace=kube-system")
	defer func() { _ = stop() }()
	base := "http://" + addrs["pprof"].String()
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/heap?debug=1", "/debug/pprof/goroutine?debug=1"} {
		if code := get(base + path); code != http.StatusOK {
			t.Errorf("GET %s = %d, want 200", path, code)
		}
	}
	if code := get(base + "/metrics"); code != http.StatusNotFound {
		t.Errorf("GET /metrics on the pprof address = %d, want 404", code)
	}
}

func TestVersionFlag(t *testing.T) {
	for _, arg := range []string{"--version", "-version", "version"} {
		var out strings.Builder
		if err := Run(t.Context(), "1.2.3", []string{arg}, &out, io.Discard); err != nil {
			t.Fatalf("%s: %v", arg, err)
		}
		if !strings.HasPrefix(out.String(), "kube-ecr-refresher 1.2.3 (go") {
			t.Errorf("%s printed %q", arg, out.String())
		}
	}
}
