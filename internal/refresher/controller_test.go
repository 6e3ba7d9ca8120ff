package refresher

import (
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/kube-ecr-refresher/kube-ecr-refresher/internal/kube"
	"github.com/kube-ecr-refresher/kube-ecr-refresher/internal/registry"
)

func TestLeadSyncsEveryNamespace(t *testing.T) {
	foreign := foreignSecret("c")
	e := newEnv(t, testOptions(),
		namespace("a"), namespace("b"), namespace("c"),
		serviceAccount("a", "default", "other"), serviceAccount("b", "default"), serviceAccount("c", "default"),
		foreign,
	)
	e.tokens.set(freshTokens(12 * time.Hour))
	e.lead(t)

	want := map[string]string{"a": "pw-1", "b": "pw-1", "c": "foreign"}
	eventually(t, "Secrets in every namespace", func() bool { return cmp.Equal(want, e.secretState(t)) })
	wantPull := map[string][]string{"a/default": {"other", testSecret}, "b/default": {testSecret}, "c/default": nil}
	eventually(t, "ServiceAccounts patched", func() bool { return cmp.Equal(wantPull, e.pullSecrets(t)) })

	// A namespace created later is served when its events arrive.
	if _, err := e.client.CoreV1().Namespaces().Create(t.Context(), namespace("late"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.client.CoreV1().ServiceAccounts("late").Create(t.Context(), serviceAccount("late", "default"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	want["late"] = "pw-1"
	wantPull["late/default"] = []string{testSecret}
	eventually(t, "Secret in the new namespace", func() bool { return cmp.Equal(want, e.secretState(t)) })
	eventually(t, "new ServiceAccount patched", func() bool { return cmp.Equal(wantPull, e.pullSecrets(t)) })

	e.awaitCached(t, "a", "b", "late")
	if diff := cmp.Diff(foreign, e.secrets(t)["c"], cmpopts.IgnoreTypes(metav1.TypeMeta{}), cmpopts.IgnoreFields(metav1.ObjectMeta{}, "ManagedFields", "ResourceVersion")); diff != "" {
		t.Errorf("foreign Secret changed (-want +got):\n%s", diff)
	}
	if n := len(e.tokens.fetchTimes()); n != 1 {
		t.Errorf("fetched %d tokens, want 1", n)
	}
	if logs := e.logs.String(); strings.Contains(logs, "pw-1") || strings.Contains(logs, "QVdTOnB3LTE") {
		t.Errorf("logs show the token:\n%s", logs)
	}
}

func TestLeadRefreshSchedule(t *testing.T) {
	tests := []struct {
		name     string
		lifetime time.Duration
		fraction float64
		wantWait time.Duration
	}{
		{name: "A 12 hour token is fetched again after 6 hours by default", lifetime: 12 * time.Hour, fraction: 0.5, wantWait: 6 * time.Hour},
		{name: "With a quarter to remain a 12 hour token is fetched again after 9 hours", lifetime: 12 * time.Hour, fraction: 0.25, wantWait: 9 * time.Hour},
		{name: "A 90 second token is fetched again after the minimum interval", lifetime: 90 * time.Second, fraction: 0.5, wantWait: time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := testOptions()
			opts.RefreshRemainingFraction = tt.fraction
			e := newEnv(t, opts, namespace("a"), serviceAccount("a", "default"))
			e.tokens.set(freshTokens(tt.lifetime))
			t0 := e.clk.Now()
			e.lead(t)

			first := e.clk.awaitTimer(t, 1)
			if want := t0.Add(tt.wantWait); !first.Equal(want) {
				t.Fatalf("next fetch at %s, want %s", first, want)
			}
			eventually(t, "first token written", func() bool { return e.secretState(t)["a"] == "pw-1" })
			e.awaitCached(t, "a")

			e.clk.SetTime(first.Add(-time.Second))
			if n := len(e.tokens.fetchTimes()); n != 1 {
				t.Fatalf("fetched %d tokens before the refresh time, want 1", n)
			}
			e.clk.SetTime(first)
			second := e.clk.awaitTimer(t, 2)
			if want := first.Add(tt.wantWait); !second.Equal(want) {
				t.Errorf("fetch after the refresh at %s, want %s", second, want)
			}
			eventually(t, "second token written", func() bool { return e.secretState(t)["a"] == "pw-2" })
		})
	}
}

func TestLeadExpiredTokenDoesNotSpin(t *testing.T) {
	e := newEnv(t, testOptions(), namespace("a"), serviceAccount("a", "default"))
	e.tokens.set(func(_ int, now time.Time) (registry.Credentials, error) {
		return token(now.Add(-13*time.Hour), 12*time.Hour, "expired"), nil
	})
	t0 := e.clk.Now()
	e.lead(t)

	// Step the clock 10 minutes, 10 seconds at a time; whenever a step
	// reaches the token loop's deadline, wait for its next fetch.
	timers := 1
	deadline := e.clk.awaitTimer(t, timers)
	for e.clk.Now().Before(t0.Add(10 * time.Minute)) {
		e.clk.Step(10 * time.Second)
		if !e.clk.Now().Before(deadline) {
			timers++
			deadline = e.clk.awaitTimer(t, timers)
		}
	}

	times := e.tokens.fetchTimes()
	if len(times) != 11 {
		t.Errorf("fetched %d times in 10 minutes, want 11 (once a minute)", len(times))
	}
	for i := 1; i < len(times); i++ {
		if gap := times[i].Sub(times[i-1]); gap < e.c.opts.MinRefreshInterval {
			t.Errorf("fetch %d came %s after the previous one, want at least %s", i+1, gap, e.c.opts.MinRefreshInterval)
		}
	}
	// With no usable Secret in place the expired token is written once (as
	// the kubelet would still try it); the same token again writes nothing.
	if diff := cmp.Diff([]string{"create secrets a", "update serviceaccounts a"}, e.writes()); diff != "" {
		t.Errorf("writes (-want +got):\n%s", diff)
	}
}

func TestLeadKeepsSecretsWhenECRFails(t *testing.T) {
	e := newEnv(t, testOptions(),
		namespace("a"), namespace("b"),
		serviceAccount("a", "default"), serviceAccount("b", "default"),
	)
	opts := e.c.opts
	errECR := errors.New("AccessDeniedException: not authorized")
	e.tokens.set(func(n int, now time.Time) (registry.Credentials, error) {
		if n == 0 {
			return token(now, 12*time.Hour, "pw-1"), nil
		}
		return registry.Credentials{}, errECR
	})
	t0 := e.clk.Now()
	e.lead(t)

	deadline := e.clk.awaitTimer(t, 1)
	eventually(t, "first token written", func() bool {
		return cmp.Equal(map[string]string{"a": "pw-1", "b": "pw-1"}, e.secretState(t))
	})
	e.awaitCached(t, "a", "b")
	snapshot := e.secrets(t)
	writesBefore := e.writeCount()

	// Every fetch from the refresh time on fails: the retry delay doubles
	// from RetryInitial up to RetryMax (with jitter up to 20%, never beyond).
	if want := t0.Add(6 * time.Hour); !deadline.Equal(want) {
		t.Fatalf("first refresh at %s, want %s", deadline, want)
	}
	base := opts.RetryInitial
	for i := 2; i <= 7; i++ {
		e.clk.SetTime(deadline)
		deadline = e.clk.awaitTimer(t, i)
		fetched := e.tokens.fetchTimes()[i-1]
		wait := deadline.Sub(fetched)
		hi := min(time.Duration(1.2*float64(base)), opts.RetryMax)
		if wait < base || wait > hi {
			t.Errorf("retry after failure %d in %s, want %s to %s", i-1, wait, base, hi)
		}
		base = min(2*base, opts.RetryMax)
	}

	if diff := cmp.Diff(snapshot, e.secrets(t)); diff != "" {
		t.Errorf("Secrets changed while ECR failed (-before +after):\n%s", diff)
	}
	if w := e.writesSince(writesBefore); len(w) != 0 {
		t.Errorf("writes while ECR failed: %v", w)
	}
	if pw := e.c.Payload().Token.Auths[0].Password; pw != "pw-1" {
		t.Errorf("current token %q, want the last good one", pw)
	}

	// ECR recovers: the next retry fetches a token that goes everywhere,
	// and the loop goes back to the refresh schedule.
	e.tokens.set(func(_ int, now time.Time) (registry.Credentials, error) {
		return token(now, 12*time.Hour, "pw-recovered"), nil
	})
	e.clk.SetTime(deadline)
	next := e.clk.awaitTimer(t, 8)
	if want := deadline.Add(6 * time.Hour); !next.Equal(want) {
		t.Errorf("refresh after recovery at %s, want %s", next, want)
	}
	eventually(t, "recovered token written", func() bool {
		return cmp.Equal(map[string]string{"a": "pw-recovered", "b": "pw-recovered"}, e.secretState(t))
	})
	if logs := e.logs.String(); strings.Contains(logs, "pw-") {
		t.Errorf("logs show a token:\n%s", logs)
	}
}

func TestLeadNeverFetchedWritesNothing(t *testing.T) {
	e := newEnv(t, testOptions(), namespace("a"), serviceAccount("a", "default", "other"))
	e.tokens.set(failingTokens(errors.New("NoCredentialProviders")))
	e.lead(t)

	deadline := e.clk.awaitTimer(t, 1)
	for i := 2; i <= 5; i++ {
		e.clk.SetTime(deadline)
		deadline = e.clk.awaitTimer(t, i)
	}
	if e.c.Payload() != nil {
		t.Error("a token was published although every fetch failed")
	}
	if w := e.writes(); len(w) != 0 {
		t.Errorf("writes without a token: %v", w)
	}
	if diff := cmp.Diff(map[string][]string{"a/default": {"other"}}, e.pullSecrets(t)); diff != "" {
		t.Errorf("imagePullSecrets changed (-want +got):\n%s", diff)
	}
}

// A write the fence holds back is not a failure of the namespace: it is
// retried, and logged as what it is.
func TestLeadFencedWriteIsNotASyncFailure(t *testing.T) {
	client := withResourceVersions(fake.NewClientset(namespace("a"), serviceAccount("a", "default")))
	var refused atomic.Int32
	client.PrependReactor("create", "secrets", func(k8stesting.Action) (bool, k8sruntime.Object, error) {
		if refused.Add(1) <= 2 {
			return true, nil, fmt.Errorf("POST /api/v1/namespaces/a/secrets: %w", kube.ErrNotLeading)
		}
		return false, nil, nil
	})
	e := newEnvFor(t, client, newFakeClock(), testOptions())
	e.tokens.set(freshTokens(12 * time.Hour))
	e.lead(t)
	eventually(t, "the Secret written once the fence lets it through", func() bool {
		e.clk.Step(time.Second) // the workqueue's retry delay runs on the controller's clock
		return e.secretState(t)["a"] == "pw-1"
	})
	logs := e.logs.String()
	if !strings.Contains(logs, "write held back") {
		t.Errorf("no 'write held back' log:\n%s", logs)
	}
	if strings.Contains(logs, "sync namespace failed") {
		t.Errorf("a fenced write was logged as a sync failure:\n%s", logs)
	}
}
