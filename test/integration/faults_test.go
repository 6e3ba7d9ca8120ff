//go:build integration

package integration

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/util/retry"

	"github.com/kube-ecr-refresher/kube-ecr-refresher/internal/kube"
	"github.com/kube-ecr-refresher/kube-ecr-refresher/test/fakeecr"
)

// removeEntry removes name from the default ServiceAccount's imagePullSecrets
// of ns, as another controller would (Update with the read's resourceVersion).
func (e *env) removeEntry(ns, name string) {
	e.t.Helper()
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		sa, err := e.client.CoreV1().ServiceAccounts(ns).Get(context.Background(), "default", metav1.GetOptions{})
		if err != nil {
			return err
		}
		sa.ImagePullSecrets = slices.DeleteFunc(sa.ImagePullSecrets, func(r corev1.LocalObjectReference) bool { return r.Name == name })
		_, err = e.client.CoreV1().ServiceAccounts(ns).Update(context.Background(), sa, metav1.UpdateOptions{})
		return err
	})
	if err != nil {
		e.t.Fatal(err)
	}
}

// A new leader that starts during an ECR outage restores a removed entry at
// once: the Secret of ours in place needs no new token.
func TestEntryIsRestoredDuringECROutage(t *testing.T) {
	e := newEnv(t)
	a := e.namespace("a", nil)
	targets := "KUBE_ECR_REFRESHER_TARGET_NAMESPACES=" + a
	first := e.start("first", []string{targets})
	e.waitServed(a)
	first.signal(syscall.SIGTERM)
	first.wait(30 * time.Second)

	e.ecr.SetFailure(fakeecr.FailureServerError)
	second := e.start("second during the outage", []string{targets, "KUBE_ECR_REFRESHER_RETRY_INITIAL=200ms"})
	waitFor(t, "the second replica to lead and meet the outage", func() (bool, string) {
		return second.logged("became leader") && second.logged("ecr token refresh failed; existing secrets are left as they are"), ""
	})
	e.removeEntry(a, e.secret)
	start := time.Now()
	waitUntil(t, 10*time.Second, "the entry restored", func() (bool, string) { return e.served(a) })
	if took := time.Since(start); took > time.Second {
		t.Errorf("entry restored %v after removal during an ECR outage, want within 1s", took)
	}
	if e.ecr.Calls() == 0 || second.logged("ecr token fetched") {
		t.Errorf("the second replica got a token during the outage:\n%s", second.Logs())
	}
}

// Any edit of a Secret of ours (data, an annotation) is repaired within a
// second, and an edited expiry cannot postpone the refresh.
func TestTamperedSecretIsRepairedAtOnce(t *testing.T) {
	e := newEnv(t)
	a := e.namespace("a", nil)
	e.start("controller", []string{"KUBE_ECR_REFRESHER_TARGET_NAMESPACES=" + a})
	e.waitServed(a)

	edits := []struct {
		name string
		edit func(s *corev1.Secret)
	}{
		{"data replaced", func(s *corev1.Secret) {
			s.Data[corev1.DockerConfigJsonKey] = []byte(`{"auths":{"123456789012.dkr.ecr.us-east-1.amazonaws.com":{"username":"AWS","password":"stolen","auth":"QVdTOnN0b2xlbg=="}}}`)
		}},
		{"expiry pushed into the future", func(s *corev1.Secret) { s.Annotations[kube.ExpiresAtAnnotation] = "2099-01-01T00:00:00Z" }},
		{"registries annotation removed", func(s *corev1.Secret) { delete(s.Annotations, kube.RegistriesAnnotation) }},
	}
	for _, ed := range edits {
		err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			s, err := e.client.CoreV1().Secrets(a).Get(context.Background(), e.secret, metav1.GetOptions{})
			if err != nil {
				return err
			}
			ed.edit(s)
			_, err = e.client.CoreV1().Secrets(a).Update(context.Background(), s, metav1.UpdateOptions{})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		start := time.Now()
		waitUntil(t, 10*time.Second, "repair after "+ed.name, func() (bool, string) {
			s, err := e.client.CoreV1().Secrets(a).Get(context.Background(), e.secret, metav1.GetOptions{})
			if err != nil {
				return false, err.Error()
			}
			if d := e.validSecret(s); d != "" {
				return false, d
			}
			ann := s.Annotations
			if ann[kube.RegistriesAnnotation] == "" || strings.HasPrefix(ann[kube.ExpiresAtAnnotation], "2099") {
				return false, fmt.Sprint(ann)
			}
			return true, ""
		})
		if took := time.Since(start); took > time.Second {
			t.Errorf("%s: repaired after %v, want within 1s", ed.name, took)
		}
	}
}

// Cleanup removes the entries this controller added and never another
// writer's entry of the same name, even while that writer deletes and
// re-creates its own Secret.
func TestCleanupRemovesOnlyEntriesWeAdded(t *testing.T) {
	e := newEnv(t)
	ours, theirs := e.namespace("ours", nil), e.namespace("theirs", nil)
	e.addPullSecret(theirs, e.secret) // the other tool adds its entry first
	stop := make(chan struct{})
	cycled := make(chan int)
	go func() { // the classic ECR CronJob: delete and re-create its Secret
		n := 0
		defer func() { cycled <- n }()
		for {
			select {
			case <-stop:
				return
			default:
			}
			_ = e.client.CoreV1().Secrets(theirs).Delete(context.Background(), e.secret, metav1.DeleteOptions{})
			time.Sleep(150 * time.Millisecond)
			_, err := e.client.CoreV1().Secrets(theirs).Create(context.Background(), &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Name: e.secret},
				Type:       corev1.SecretTypeDockerConfigJson,
				Data:       map[string][]byte{corev1.DockerConfigJsonKey: []byte(`{"auths":{}}`)},
			}, metav1.CreateOptions{})
			if err != nil && !apierrors.IsAlreadyExists(err) {
				return
			}
			n++
			time.Sleep(150 * time.Millisecond)
		}
	}()

	e.start("controller", []string{
		"KUBE_ECR_REFRESHER_TARGET_NAMESPACES=" + ours + "," + theirs,
		"KUBE_ECR_REFRESHER_EXCLUDE_NAMESPACES=" + theirs,
	})
	e.waitServed(ours)
	// Now ours leaves the target set; theirs stays excluded through cycles.
	ns, err := e.client.CoreV1().Namespaces().Get(context.Background(), ours, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ns.Annotations = map[string]string{kube.IgnoreAnnotation: "true"}
	if _, err := e.client.CoreV1().Namespaces().Update(context.Background(), ns, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "our Secret and entry removed from "+ours, func() (bool, string) {
		_, err := e.client.CoreV1().Secrets(ours).Get(context.Background(), e.secret, metav1.GetOptions{})
		sa, _ := e.client.CoreV1().ServiceAccounts(ours).Get(context.Background(), "default", metav1.GetOptions{})
		return apierrors.IsNotFound(err) && sa != nil && !kube.HasPullSecret(sa, e.secret), fmt.Sprint(err)
	})
	time.Sleep(3 * time.Second) // several delete/create cycles
	close(stop)
	if n := <-cycled; n < 3 {
		t.Fatalf("the other writer cycled its Secret %d times, want at least 3", n)
	}
	sa, err := e.client.CoreV1().ServiceAccounts(theirs).Get(context.Background(), "default", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !kube.HasPullSecret(sa, e.secret) {
		t.Errorf("the other writer's entry in %s was removed: %v", theirs, sa.ImagePullSecrets)
	}
}

// Token lifetimes are measured on ECR's clock: however far the endpoint's
// clock is from ours, the Secret expires 12 h from now on our clock, and a
// token already expired by the endpoint's own clock is still written where
// nothing usable is.
func TestECRClockSkew(t *testing.T) {
	for name, skew := range map[string]time.Duration{"behind": -13 * time.Hour, "ahead": 13 * time.Hour} {
		t.Run(name, func(t *testing.T) {
			e := newEnv(t, fakeecr.WithClockSkew(skew), fakeecr.WithLifetime(12*time.Hour))
			a := e.namespace("a", nil)
			before := time.Now()
			p := e.start("controller", []string{"KUBE_ECR_REFRESHER_TARGET_NAMESPACES=" + a})
			e.waitServed(a)
			s, err := e.client.CoreV1().Secrets(a).Get(context.Background(), e.secret, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			exp, _ := time.Parse(time.RFC3339, s.Annotations[kube.ExpiresAtAnnotation])
			if lo, hi := before.Add(12*time.Hour-2*time.Second), time.Now().Add(12*time.Hour+2*time.Second); exp.Before(lo) || exp.After(hi) {
				t.Errorf("expires-at %s, want 12 h from now on this clock (%s to %s)", exp, lo, hi)
			}
			if next := fetchedNextRefresh(p); next < 6*time.Hour-5*time.Second || next > 6*time.Hour+5*time.Second {
				t.Errorf("next refresh in %s, want half of the 12 h lifetime", next)
			}
			if !p.logged("this machine's clock differs from ECR's; token lifetimes are measured on ECR's clock") {
				t.Errorf("the skew was not logged:\n%s", p.Logs())
			}
		})
	}
	t.Run("expired", func(t *testing.T) {
		e := newEnv(t, fakeecr.WithLifetime(-time.Minute))
		a := e.namespace("a", nil)
		p := e.start("controller", []string{"KUBE_ECR_REFRESHER_TARGET_NAMESPACES=" + a})
		e.waitServed(a)
		if !p.logged("ecr returned a token already expired by its own clock; it is written only where no usable secret exists") {
			t.Errorf("no warning for the expired token:\n%s", p.Logs())
		}
	})
}

// fetchedNextRefresh is next_refresh_in of p's first "ecr token fetched" line.
func fetchedNextRefresh(p *proc) time.Duration {
	sc := bufio.NewScanner(strings.NewReader(p.Logs()))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var rec struct {
			Msg  string `json:"msg"`
			Next string `json:"next_refresh_in"`
		}
		if json.Unmarshal(sc.Bytes(), &rec) == nil && rec.Msg == "ecr token fetched" {
			d, _ := time.ParseDuration(rec.Next)
			return d
		}
	}
	return 0
}

// auditWrite is one write to a Secret or ServiceAccount in the API server's
// audit log.
type auditWrite struct {
	UserAgent string `json:"userAgent"`
	Verb      string `json:"verb"`
	ObjectRef struct {
		Resource  string `json:"resource"`
		Namespace string `json:"namespace"`
		Name      string `json:"name"`
	} `json:"objectRef"`
	Received       metav1.MicroTime `json:"requestReceivedTimestamp"`
	Done           metav1.MicroTime `json:"stageTimestamp"`
	ResponseStatus struct {
		Code int `json:"code"`
	} `json:"responseStatus"`
}

// leaseAcquired returns when identity first wrote the Lease successfully
// (its acquisition: a follower writes the Lease only to take it), from the
// audit log, or the zero time.
func leaseAcquired(t *testing.T, lease, identity string) time.Time {
	t.Helper()
	b, err := os.ReadFile(plane.AuditLog())
	if err != nil {
		t.Fatalf("read audit log: %v", err)
	}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var w auditWrite
		if json.Unmarshal(sc.Bytes(), &w) != nil || w.ObjectRef.Resource != "leases" || w.ObjectRef.Name != lease {
			continue
		}
		if strings.HasSuffix(w.UserAgent, " ("+identity+")") && w.ResponseStatus.Code/100 == 2 {
			return w.Done.Time
		}
	}
	return time.Time{}
}

// auditWrites returns every audited Secret and ServiceAccount write made with a user agent that names
// one of the identities (kube-ecr-refresher/VERSION (IDENTITY)), by identity.
func auditWrites(t *testing.T, identities []string) map[string][]auditWrite {
	t.Helper()
	b, err := os.ReadFile(plane.AuditLog())
	if err != nil {
		t.Fatalf("read audit log: %v", err)
	}
	out := map[string][]auditWrite{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var w auditWrite
		if json.Unmarshal(sc.Bytes(), &w) != nil || (w.ObjectRef.Resource != "secrets" && w.ObjectRef.Resource != "serviceaccounts") {
			continue // Lease renewals are audited too
		}
		for _, id := range identities {
			if strings.HasPrefix(w.UserAgent, "kube-ecr-refresher/") && strings.HasSuffix(w.UserAgent, " ("+id+")") {
				out[id] = append(out[id], w)
			}
		}
	}
	return out
}

// On SIGTERM the old leader finishes (or abandons) its writes before it
// releases the Lease: across 20 handovers under write load, the API server's
// audit log shows every replica's writes ending before the next leader's
// first write arrives.
func TestSIGTERMHandoverNeverOverlapsWriters(t *testing.T) {
	const handovers = 20
	e := newEnv(t)
	var nss []string
	for i := range 8 {
		nss = append(nss, e.namespace(fmt.Sprint("n", i), nil))
	}
	env := []string{
		"KUBE_ECR_REFRESHER_TARGET_NAMESPACES=" + strings.Join(nss, ","),
		"KUBE_ECR_REFRESHER_RETRY_PERIOD=200ms",
		"KUBE_ECR_REFRESHER_LOG_LEVEL=info",
	}
	// Write load: someone keeps deleting our Secrets, the leader keeps
	// writing them back.
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-time.After(10 * time.Millisecond):
			}
			_ = e.client.CoreV1().Secrets(nss[i%len(nss)]).Delete(context.Background(), e.secret, metav1.DeleteOptions{})
		}
	}()
	defer func() { close(stop); <-done }()

	var (
		procs []*proc
		ids   []string
	)
	standby := func() {
		id := fmt.Sprintf("%s-r%d", e.prefix, len(procs))
		ids = append(ids, id)
		procs = append(procs, e.start(id, append(env, "KUBE_ECR_REFRESHER_LEADER_ELECTION_IDENTITY="+id)))
	}
	standby()
	standby()
	byID := func(id string) *proc {
		for _, p := range procs {
			if p.name == id {
				return p
			}
		}
		return nil
	}
	for range handovers {
		var leader *proc
		waitFor(t, "a leader that writes", func() (bool, string) {
			leader = byID(e.leaseHolder())
			return leader != nil && !leader.exited() && leader.countLogged("secret written") > 2, e.leaseHolder()
		})
		leader.signal(syscall.SIGTERM)
		leader.wait(30 * time.Second)
		standby()
	}

	type term struct {
		id          string
		first, last time.Time // first write received, last write done
		writes      int
	}
	var terms []term
	for id, ws := range auditWrites(t, ids) {
		tm := term{id: id, first: ws[0].Received.Time, last: ws[0].Done.Time, writes: len(ws)}
		for _, w := range ws {
			if w.Received.Before(&metav1.MicroTime{Time: tm.first}) {
				tm.first = w.Received.Time
			}
			if tm.last.Before(w.Done.Time) {
				tm.last = w.Done.Time
			}
		}
		terms = append(terms, tm)
	}
	slices.SortFunc(terms, func(a, b term) int { return a.first.Compare(b.first) })
	if len(terms) < handovers {
		t.Fatalf("the audit log attributes writes to %d replicas, want at least %d", len(terms), handovers)
	}
	for i := 1; i < len(terms); i++ {
		prev, cur := terms[i-1], terms[i]
		if !prev.last.Before(cur.first) {
			t.Errorf("%s's last write ended at %s, after %s's first write arrived at %s",
				prev.id, prev.last.Format(time.RFC3339Nano), cur.id, cur.first.Format(time.RFC3339Nano))
		}
	}
}

// A leader paused (SIGSTOP) past its lease wakes with writes queued, here
// behind its client's rate limiter in the middle of an install; another
// replica took the Lease meanwhile. The woken replica must not send one of
// them: the API server's audit log holds no write of its after the new
// leader acquired the Lease. (Found by make chaos: before the write fence,
// the woken replica's queued creates reached the API server.)
func TestPausedLeaderNeverWritesAfterWaking(t *testing.T) {
	e := newEnv(t)
	var nss []string
	for i := range 60 {
		nss = append(nss, e.namespace(fmt.Sprint("z", i), nil))
	}
	env := []string{
		"KUBE_ECR_REFRESHER_TARGET_NAMESPACES=" + e.prefix + "-z*",
		"KUBE_ECR_REFRESHER_SERVICE_ACCOUNTS=",
		"KUBE_ECR_REFRESHER_KUBE_API_QPS=10",
		"KUBE_ECR_REFRESHER_KUBE_API_BURST=1",
		"KUBE_ECR_REFRESHER_LOG_LEVEL=info",
	}
	zombieID, nextID := e.prefix+"-zombie", e.prefix+"-next"
	zombie := e.start(zombieID, append(env, "KUBE_ECR_REFRESHER_LEADER_ELECTION_IDENTITY="+zombieID))
	waitFor(t, "the first replica to write", func() (bool, string) {
		return zombie.countLogged("secret written") > 0, e.leaseHolder()
	})
	zombie.signal(syscall.SIGSTOP)
	stoppedWith := zombie.countLogged("secret written")
	e.start(nextID, append(env, "KUBE_ECR_REFRESHER_LEADER_ELECTION_IDENTITY="+nextID))
	waitFor(t, "the second replica to take the Lease", func() (bool, string) { return e.leaseHolder() == nextID, e.leaseHolder() })
	zombie.signal(syscall.SIGCONT)
	if code := zombie.wait(30 * time.Second); code == 0 {
		t.Errorf("the woken replica exited 0, want non-zero (lost leadership)")
	}
	for _, ns := range nss {
		waitFor(t, "a Secret in "+ns, func() (bool, string) {
			s, err := e.client.CoreV1().Secrets(ns).Get(context.Background(), e.secret, metav1.GetOptions{})
			if err != nil {
				return false, err.Error()
			}
			d := e.validSecret(s)
			return d == "", d
		})
	}
	if stoppedWith >= len(nss) {
		t.Fatalf("the first replica had written all %d Secrets before it was stopped; nothing was queued", len(nss))
	}
	acquired := leaseAcquired(t, e.lease, nextID)
	if acquired.IsZero() {
		t.Fatal("no Lease acquisition by the second replica in the audit log")
	}
	late := 0
	for _, w := range auditWrites(t, []string{zombieID})[zombieID] {
		if w.Received.After(acquired) {
			late++
			if late <= 3 {
				t.Errorf("the woken replica's %s of %s/%s reached the API server at %s, after the Lease changed hands at %s",
					w.Verb, w.ObjectRef.Resource, w.ObjectRef.Namespace, w.Received.Format(time.RFC3339Nano), acquired.Format(time.RFC3339Nano))
			}
		}
	}
	if late > 0 {
		t.Errorf("%d writes by the woken replica after the Lease changed hands", late)
	}
}
