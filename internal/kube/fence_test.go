package kube

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

// fakeElector is an elector whose answers the test sets.
type fakeElector struct {
	leader bool
	stale  bool // Check fails
}

func (e *fakeElector) IsLeader() bool { return e.leader }

// armFence arms f with el, as RunLeaderElection does; a leader that is not
// stale has just renewed.
func armFence(f *WriteFence, el *fakeElector) {
	f.arm(el)
	if el.leader && !el.stale {
		f.renewedAt(time.Now())
	}
}
func (e *fakeElector) Check(time.Duration) error {
	if e.leader && e.stale {
		return errors.New("failed election to renew leadership")
	}
	return nil
}

func TestWriteFenceTransport(t *testing.T) {
	var sent atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { sent.Add(1) }))
	t.Cleanup(srv.Close)

	tests := []struct {
		name     string
		el       *fakeElector // nil: unarmed
		method   string
		path     string
		wantSent bool
	}{
		{name: "An unarmed fence lets writes through", method: http.MethodPut, path: "/api/v1/namespaces/a/secrets/s", wantSent: true},
		{name: "A leader that renewed in time writes", el: &fakeElector{leader: true}, method: http.MethodPost, path: "/api/v1/namespaces/a/secrets", wantSent: true},
		{name: "A follower's write is refused", el: &fakeElector{}, method: http.MethodPut, path: "/api/v1/namespaces/a/serviceaccounts/default"},
		{name: "A leader past its renew deadline cannot write", el: &fakeElector{leader: true, stale: true}, method: http.MethodDelete, path: "/api/v1/namespaces/a/secrets/s"},
		{name: "A leader past its renew deadline cannot post Events", el: &fakeElector{leader: true, stale: true}, method: http.MethodPatch, path: "/api/v1/namespaces/a/events/e"},
		{name: "Reads always pass", el: &fakeElector{}, method: http.MethodGet, path: "/api/v1/namespaces/a/secrets/s", wantSent: true},
		{name: "The elector's own Lease writes always pass", el: &fakeElector{leader: true, stale: true}, method: http.MethodPut, path: "/apis/coordination.k8s.io/v1/namespaces/k/leases/l", wantSent: true},
		{name: "A follower's Lease writes pass behind a server URL with a path", el: &fakeElector{}, method: http.MethodPut, path: "/k8s/clusters/c-1/apis/coordination.k8s.io/v1/namespaces/k/leases/l", wantSent: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := NewWriteFence(15*time.Second, 10*time.Second)
			if tt.el != nil {
				armFence(f, tt.el)
			}
			client := &http.Client{Transport: f.Wrap(http.DefaultTransport)}
			before := sent.Load()
			req, _ := http.NewRequest(tt.method, srv.URL+tt.path, strings.NewReader("{}"))
			resp, err := client.Do(req)
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
			if got := sent.Load() > before; got != tt.wantSent {
				t.Errorf("request reached the server = %v, want %v (err %v)", got, tt.wantSent, err)
			}
			if !tt.wantSent && !errors.Is(err, ErrNotLeading) {
				t.Errorf("error = %v, want ErrNotLeading", err)
			}
		})
	}
}

// A leader whose renewals hang (as in a process paused past its lease)
// loses the right to write once the renew deadline passes, while
// client-go, waiting on the hung request, still calls it the leader and
// has not cancelled its work.
func TestFenceClosesBeforeClientGoNoticesAHungRenewal(t *testing.T) {
	client := fake.NewClientset()
	var hang atomic.Bool
	unblock := make(chan struct{})
	client.PrependReactor("update", "leases", func(k8stesting.Action) (bool, runtime.Object, error) {
		if hang.Load() {
			<-unblock // the fake ignores contexts: a request that never returns
			return true, nil, context.Canceled
		}
		return false, nil, nil
	})
	cfg := testLeaderConfig(nil)
	cfg.Fence = NewWriteFence(cfg.LeaseDuration, cfg.RenewDeadline)
	ctx, cancel := context.WithCancel(t.Context())
	leading := make(chan context.Context, 1)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, _ = RunLeaderElection(ctx, client, cfg, slog.New(slog.DiscardHandler), func(ctx context.Context) {
			leading <- ctx
			<-ctx.Done()
		})
	}()
	var leadCtx context.Context
	select {
	case leadCtx = <-leading:
	case <-time.After(10 * time.Second):
		t.Fatal("never led")
	}
	if err := cfg.Fence.Allow(); err != nil {
		t.Fatalf("a renewing leader's fence: %v", err)
	}
	hang.Store(true)
	began := time.Now()
	for cfg.Fence.Allow() == nil {
		if time.Since(began) > 5*time.Second {
			t.Fatal("the fence stayed open after renewals hung")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if took, limit := time.Since(began), cfg.RenewDeadline+2*cfg.RetryPeriod; took > limit {
		t.Errorf("fence closed %v after renewals hung, want within %v", took, limit)
	}
	if leadCtx.Err() != nil {
		t.Log("client-go had stopped the leader too; the fence is what matters")
	}
	close(unblock)
	cancel()
	<-done
}

func TestWriteFenceDial(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	for _, tt := range []struct {
		name string
		el   *fakeElector
		want bool // dialed
	}{
		{"An unarmed fence dials", nil, true},
		{"A follower dials, so that it can acquire", &fakeElector{}, true},
		{"A leader that renewed in time dials", &fakeElector{leader: true}, true},
		{"A leader past its renew deadline opens no new connection", &fakeElector{leader: true, stale: true}, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			f := NewWriteFence(15*time.Second, 10*time.Second)
			if tt.el != nil {
				armFence(f, tt.el)
			}
			c, err := f.Dial((&net.Dialer{}).DialContext)(t.Context(), "tcp", ln.Addr().String())
			if c != nil {
				c.Close()
			}
			if got := err == nil; got != tt.want {
				t.Errorf("dialed = %v (err %v), want %v", got, err, tt.want)
			}
			if !tt.want && !errors.Is(err, ErrNotLeading) {
				t.Errorf("error %v, want ErrNotLeading", err)
			}
		})
	}
}

// A connection opened while fresh carries no byte once the leader is
// stale: a request that waited in the transport while the process was
// paused is not sent when it wakes.
func TestFencedConnectionGoesQuietWhenStale(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	got := make(chan int, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		b, _ := io.ReadAll(c)
		got <- len(b)
	}()
	el := &fakeElector{leader: true}
	f := NewWriteFence(15*time.Second, 10*time.Second)
	armFence(f, el)
	c, err := f.Dial((&net.Dialer{}).DialContext)(t.Context(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte("fresh")); err != nil {
		t.Fatalf("write while fresh: %v", err)
	}
	el.stale = true
	if _, err := c.Write([]byte("stale")); !errors.Is(err, ErrNotLeading) {
		t.Errorf("write while stale: %v, want ErrNotLeading", err)
	}
	select {
	case n := <-got:
		if n != len("fresh") {
			t.Errorf("the server received %d bytes, want only the %d sent while fresh", n, len("fresh"))
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the fenced connection was not closed")
	}
}

// Once the elector no longer names this replica, nothing of the writer's
// leaves: a request that passed the fence while it led and waits for a
// new connection (net/http retries one after a backoff) is not sent when
// the elector has learned that another replica holds the Lease.
func TestFenceStaysClosedOnceLeadingEnded(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { _, _ = io.Copy(io.Discard, c) }()
		}
	}()
	el := &fakeElector{leader: true}
	f := NewWriteFence(15*time.Second, 10*time.Second)
	armFence(f, el)
	dial := f.Dial((&net.Dialer{}).DialContext)
	c, err := dial(t.Context(), "tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("x")); err != nil {
		t.Fatalf("a leader's write: %v", err)
	}
	el.leader = false // the elector read a Lease that names another replica
	if _, err := c.Write([]byte("x")); !errors.Is(err, ErrNotLeading) {
		t.Errorf("write on a connection after leading ended: %v, want ErrNotLeading", err)
	}
	if c2, err := dial(t.Context(), "tcp", ln.Addr().String()); !errors.Is(err, ErrNotLeading) {
		if c2 != nil {
			c2.Close()
		}
		t.Errorf("dial after leading ended: %v, want ErrNotLeading", err)
	}
	if err := f.Allow(); !errors.Is(err, ErrNotLeading) {
		t.Errorf("Allow after leading ended: %v, want ErrNotLeading", err)
	}
}

// A follower never closes: it has not led, and its connections carry the
// reads it needs to take over; nor does a replica named by a record it did
// not write (a restart with the same identity), which may write only once
// it has renewed.
func TestFenceOfAReplicaThatNeverLed(t *testing.T) {
	el := &fakeElector{}
	f := NewWriteFence(15*time.Second, 10*time.Second)
	f.arm(el)
	if err := f.stale(); err != nil {
		t.Errorf("a follower's connections: %v", err)
	}
	el.leader = true // the Lease names this identity, written by an earlier process
	if err := f.Allow(); !errors.Is(err, ErrNotLeading) {
		t.Errorf("Allow before this process renewed: %v, want ErrNotLeading", err)
	}
	el.leader = false // ... and another replica took it
	if err := f.stale(); err != nil {
		t.Errorf("a follower that never renewed: %v, want open connections", err)
	}
	el.leader = true
	f.renewedAt(time.Now())
	if err := f.Allow(); err != nil {
		t.Errorf("Allow once this process renewed: %v", err)
	}
}

// The fence's clock starts when a renewal was sent, not when its answer
// came: another replica times the Lease from when it saw the renewal, so a
// slow answer must not keep the fence open past the renew deadline of the
// send (client-go's own Check, timed from the answer, would).
func TestFenceClockStartsWhenTheRenewalWasSent(t *testing.T) {
	const delay = 250 * time.Millisecond // < RenewDeadline (400ms), so renewals succeed
	client := fake.NewClientset()
	type renewal struct{ sent, answered time.Time }
	var slow atomic.Bool
	answered := make(chan renewal, 100)
	client.PrependReactor("update", "leases", func(k8stesting.Action) (bool, runtime.Object, error) {
		if !slow.Load() {
			return false, nil, nil
		}
		sent := time.Now()
		time.Sleep(delay)
		answered <- renewal{sent, time.Now()}
		return false, nil, nil // the tracker applies the update
	})
	cfg := testLeaderConfig(nil)
	cfg.Fence = NewWriteFence(cfg.LeaseDuration, cfg.RenewDeadline)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := leadInBackground(t, ctx, client, cfg)
	if err := cfg.Fence.Allow(); err != nil {
		t.Fatalf("a renewing leader's fence: %v", err)
	}
	slow.Store(true)
	var r renewal
	select {
	case r = <-answered:
	case <-time.After(5 * time.Second):
		t.Fatal("no slow renewal")
	}
	// Just after the answer the renewal is fresh (sent 250ms ago).
	open := false
	for time.Since(r.answered) < 100*time.Millisecond {
		if cfg.Fence.Allow() == nil {
			open = true
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	if !open {
		t.Fatal("the fence never opened after a successful (slow) renewal")
	}
	// The next answer comes RetryPeriod + delay after this one; well before
	// that, the renew deadline of this renewal's send has passed.
	time.Sleep(time.Until(r.sent.Add(cfg.RenewDeadline + 30*time.Millisecond)))
	err := cfg.Fence.Allow()
	select {
	case next := <-answered:
		t.Skipf("the next renewal was answered already (%v after the first): the machine is too slow for this test", next.answered.Sub(r.answered))
	default:
	}
	if !errors.Is(err, ErrNotLeading) {
		t.Errorf("Allow %v after a renewal was sent (answered after %v), renew deadline %v: %v, want ErrNotLeading",
			time.Since(r.sent).Round(time.Millisecond), delay, cfg.RenewDeadline, err)
	}
	cancel()
	<-done
}
