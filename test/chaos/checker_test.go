package main

import (
	"math/rand/v2"
	"net/http"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	listerscorev1 "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"

	"github.com/kube-ecr-refresher/kube-ecr-refresher/internal/kube"
	"github.com/kube-ecr-refresher/kube-ecr-refresher/test/fakeecr"
)

// offlineChecker is a checker over hand-filled caches.
func offlineChecker(t *testing.T) (*checker, cache.Indexer, cache.Indexer, *fakeecr.Server) {
	t.Helper()
	srv := fakeecr.New()
	t.Cleanup(srv.Close)
	w := newWorld(30 * time.Second)
	si := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	ai := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{cache.NamespaceIndex: cache.MetaNamespaceIndexFunc})
	c := &checker{w: w, ecr: srv, secret: secretName,
		secrets: listerscorev1.NewSecretLister(si), sas: listerscorev1.NewServiceAccountLister(ai),
		issued: map[string]time.Time{}, repairs: map[string][]time.Duration{}, overlapped: map[string]int{}, unserved: map[string]string{}}
	return c, si, ai, srv
}

func ourSecret(ns, password string) *corev1.Secret {
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: secretName, Labels: map[string]string{kube.ManagedByLabel: kube.ManagedByValue}},
		Type:       corev1.SecretTypeDockerConfigJson,
	}
	s.Data = map[string][]byte{corev1.DockerConfigJsonKey: tamperedConfig(0)}
	if password != "" {
		s.Data[corev1.DockerConfigJsonKey] = []byte(`{"auths":{"h":{"username":"AWS","password":"` + password + `","auth":"` + b64([]byte("AWS:"+password)) + `"}}}`)
	}
	return s
}

func defaultSA(ns string, entries ...string) *corev1.ServiceAccount {
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: ns, Name: "default", ResourceVersion: "1"}}
	for _, e := range entries {
		sa.ImagePullSecrets = append(sa.ImagePullSecrets, corev1.LocalObjectReference{Name: e})
	}
	return sa
}

func TestServedNeedsAnIssuedUnexpiredPasswordAndTheEntry(t *testing.T) {
	c, si, ai, srv := offlineChecker(t)
	pw := issue(t, srv)
	now := time.Now()
	for _, tt := range []struct {
		name   string
		secret *corev1.Secret
		sa     *corev1.ServiceAccount
		want   bool
	}{
		{"A Secret of ours with an issued password, listed by default, is served", ourSecret("a", pw), defaultSA("a", secretName), true},
		{"A password the endpoint never issued is not", ourSecret("b", ""), defaultSA("b", secretName), false},
		{"Without the entry it is not", ourSecret("c", pw), defaultSA("c", "other"), false},
		{"A Secret without our label is not", func() *corev1.Secret { s := ourSecret("d", pw); s.Labels = nil; return s }(), defaultSA("d", secretName), false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_ = si.Add(tt.secret)
			_ = ai.Add(tt.sa)
			c.refreshIssued()
			if got, why := c.served(tt.secret.Namespace, now); got != tt.want {
				t.Errorf("served = %v (%s), want %v", got, why, tt.want)
			}
		})
	}
	// Once the token has expired (by the endpoint's record), it is not.
	if got, _ := c.served("a", now.Add(13*time.Hour)); got {
		t.Error("served with an expired token")
	}
}

// issue has the endpoint issue a token through a plain signed request.
func issue(t *testing.T, srv *fakeecr.Server) string {
	t.Helper()
	// The SDK is not needed: the endpoint answers any SigV4-looking request.
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/", strings.NewReader("{}"))
	req.Header.Set("X-Amz-Target", fakeecr.TargetGetAuthorizationToken)
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	req.Header.Set("Authorization", "AWS4-HMAC-SHA256 Credential=AKIDTEST/20261203/us-east-1/ecr/aws4_request, SignedHeaders=host, Signature=0")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("endpoint answered %s", resp.Status)
	}
	return srv.LastPassword()
}

func TestUnservedBeyondTheBudgetOutsideBlockingFaultsIsAViolation(t *testing.T) {
	for _, tt := range []struct {
		name      string
		unserved  time.Duration
		blocked   time.Duration // of it, under a blocking fault
		violation bool
	}{
		{"Unserved within the budget is fine", 20 * time.Second, 0, false},
		{"Unserved beyond the budget is a violation", 40 * time.Second, 0, true},
		{"Beyond the budget, but mostly during a blocking fault, is excused", 40 * time.Second, 20 * time.Second, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			c, si, ai, _ := offlineChecker(t)
			start := time.Now()
			c.w.ns["n"] = &nsState{name: "n", created: start, since: start}
			_ = si.Add(ourSecret("n", "")) // a password never issued: unserved
			_ = ai.Add(defaultSA("n", secretName))
			if tt.blocked > 0 {
				c.w.blocking = []window{{from: start.Add(time.Second), to: start.Add(time.Second + tt.blocked)}}
			}
			c.check(start.Add(checkInterval))
			c.closeAll(start.Add(tt.unserved))
			if got := c.w.vcount[InvServed] > 0; got != tt.violation {
				t.Errorf("violation = %v, want %v (%+v)", got, tt.violation, c.w.violations)
			}
		})
	}
}

func TestOursLeftInAnUntargetedNamespaceIsAViolation(t *testing.T) {
	c, si, ai, _ := offlineChecker(t)
	start := time.Now().Add(-time.Minute)
	c.w.ns["n"] = &nsState{name: "n", created: start, untargeted: true, events: []nsEvent{{evUntarget, start}}}
	c.w.ns["m"] = &nsState{name: "m", created: start, untargeted: true, events: []nsEvent{{evUntarget, start}}}
	_ = si.Add(ourSecret("n", ""))
	_ = ai.Add(defaultSA("n"))
	_ = ai.Add(defaultSA("m", "someone-elses")) // nothing of ours in m
	c.check(time.Now())
	c.check(time.Now()) // reported once per departure
	if got := c.w.vcount[InvLeftClean]; got != 1 {
		t.Errorf("%d violations, want 1: %+v", got, c.w.violations)
	}
}

// Cleanup, like repair, is not held to the budget while no leader can write.
func TestOursLeftDuringABlockingFaultIsExcused(t *testing.T) {
	c, si, _, _ := offlineChecker(t)
	start := time.Now().Add(-time.Minute)
	c.w.ns["n"] = &nsState{name: "n", created: start, untargeted: true, events: []nsEvent{{evUntarget, start}}}
	_ = si.Add(ourSecret("n", ""))
	c.w.blocking = []window{{from: start, to: start.Add(50 * time.Second)}}
	c.check(time.Now())
	if got := c.w.vcount[InvLeftClean]; got != 0 {
		t.Errorf("%d violations, want none: %+v", got, c.w.violations)
	}
}

func TestLedgerCatchesALostEntry(t *testing.T) {
	w := newWorld(time.Second)
	l := newLedger(w)
	l.added("n", "other-w01-1", "10")
	sa := defaultSA("n", "other-w01-1")
	sa.ResourceVersion = "12"
	l.observe(sa) // there: fine
	old := defaultSA("n")
	old.ResourceVersion = "9"
	l.observe(old) // before it was added: fine
	lost := defaultSA("n", secretName)
	lost.ResourceVersion = "13"
	l.observe(lost)
	l.observe(lost) // once
	if got := w.vcount[InvEntriesKept]; got != 1 {
		t.Errorf("%d violations, want 1: %+v", got, w.violations)
	}
	// An entry its writer is removing is no longer held to.
	l.added("n", "other-w02-1", "20")
	if name, ok := l.take("n", "other-w02-", rand.New(rand.NewPCG(1, 1))); !ok || name != "other-w02-1" {
		t.Fatalf("take = %q, %v", name, ok)
	}
	gone := defaultSA("n")
	gone.ResourceVersion = "21"
	l.observe(gone)
	if got := w.vcount[InvEntriesKept]; got != 1 {
		t.Errorf("%d violations after a removal under way, want still 1", got)
	}
}
