package kube

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// ErrNotLeading is returned, instead of sending it, for a write made while
// this replica cannot be sure it still holds the Lease.
var ErrNotLeading = errors.New("write refused: this replica is not leading or has not renewed its lease within the renew deadline")

// elector is the part of *leaderelection.LeaderElector the fence reads.
type elector interface {
	IsLeader() bool
	// Check fails when this replica leads but has not renewed the Lease for
	// longer than the lease duration plus maxTolerableExpiredLease.
	Check(maxTolerableExpiredLease time.Duration) error
}

// WriteFence keeps writes from a replica that is no longer sure it leads.
//
// client-go stops the leader's work only once a renewal has failed, which a
// replica learns late if it was paused (SIGSTOP, a frozen VM, a long GC or
// swap storm) past its lease: it wakes with a backlog of watch events and
// timers, and its workers can write before its elector notices that
// another replica took the Lease. The fence closes that window: once armed
// with an elector, every write through the transport it wraps is refused
// unless this replica leads and sent its latest successful renewal less
// than the renew deadline ago, on the local monotonic clock, which keeps
// running while the process is stopped.
//
// The clock starts when the renewal was sent, not when its answer came:
// another replica can take the Lease only a lease duration after it saw
// that renewal, which reached the API server after it was sent, so a write
// sent before the renew deadline reaches the server with the lease
// duration minus the renew deadline (5 s by default) to spare, however
// slow the renewal's answer was. (client-go's own LeaderElector.Check
// starts from the answer; it is checked too.)
//
// Once this replica has led and its elector no longer names it, the fence
// stays closed for good: the process is about to exit (a replica that lost
// the Lease restarts clean), and a request that passed the fence while it
// led must not reach the server afterwards on a new connection (net/http's
// HTTP/2 transport retries a request whose connection failed after a
// backoff of seconds, without going back through the fence's RoundTrip).
//
// An unarmed fence lets everything through: modes without leader election
// (LEADER_ELECT=false, --cleanup, which holds the Lease by other means).
// Lease requests always pass, so the elector itself can renew.
type WriteFence struct {
	renewDeadline time.Duration
	// slack is RenewDeadline - LeaseDuration: Check then fails once the last
	// renewal's answer is older than the renew deadline.
	slack time.Duration

	mu      sync.Mutex
	el      elector
	renewed time.Time // when the latest successful renewal (or acquisition) was sent
	led     bool      // the elector named this replica, on a record this process wrote
	ended   bool      // ... and then stopped naming it, or leading stopped
}

// NewWriteFence returns an unarmed fence for a Lease of these timings.
func NewWriteFence(leaseDuration, renewDeadline time.Duration) *WriteFence {
	return &WriteFence{renewDeadline: renewDeadline, slack: renewDeadline - leaseDuration}
}

// arm makes the fence follow el from now on.
func (f *WriteFence) arm(el elector) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.el = el
}

// renewedAt records that a write of the Lease naming this replica, sent at
// sent, succeeded.
func (f *WriteFence) renewedAt(sent time.Time) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if sent.After(f.renewed) {
		f.renewed = sent
	}
}

// end closes the fence for good once this replica has stopped leading.
func (f *WriteFence) end() {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.led {
		f.ended = true
	}
}

// Allow returns nil when a write may be sent now.
func (f *WriteFence) Allow() error {
	f.mu.Lock()
	el := f.el
	f.mu.Unlock()
	if el != nil && !el.IsLeader() {
		return ErrNotLeading
	}
	return f.stale()
}

// DialFunc is the signature of rest.Config.Dial.
type DialFunc func(ctx context.Context, network, address string) (net.Conn, error)

// Dial returns dial behind the fence, for rest.Config.Dial of the client
// that writes (never the elector's): no new connection, and no byte sent on
// one, while this replica leads by its own record but has not renewed
// within the renew deadline. The transport's check alone is not enough: a
// request that passed it just before the process was paused may still be
// waiting for a connection (a dial, a TLS handshake, a retry on a new
// connection after the API server restarted) when the process wakes, and
// would be sent after another replica took the Lease. A follower's
// connections carry bytes freely (reads; its writes are refused by the
// transport); a stale leader has nothing left to send: its renewal has
// failed already, and it is about to stop.
func (f *WriteFence) Dial(dial DialFunc) DialFunc {
	return func(ctx context.Context, network, address string) (net.Conn, error) {
		if err := f.stale(); err != nil {
			return nil, fmt.Errorf("dial %s: %w", address, err)
		}
		c, err := dial(ctx, network, address)
		if err != nil {
			return nil, err
		}
		return &fencedConn{Conn: c, fence: f}, nil
	}
}

// fencedConn refuses every write while its fence is stale, and closes.
type fencedConn struct {
	net.Conn
	fence *WriteFence
}

func (c *fencedConn) Write(b []byte) (int, error) {
	if err := c.fence.stale(); err != nil {
		_ = c.Conn.Close()
		return 0, err
	}
	return c.Conn.Write(b)
}

// stale returns an error while this replica leads by its own record but has
// not sent a successful renewal within the renew deadline, and from the
// moment it has stopped leading.
func (f *WriteFence) stale() error {
	f.mu.Lock()
	el := f.el
	f.mu.Unlock()
	if el == nil {
		return nil
	}
	leader := el.IsLeader() // outside f.mu: the elector has locks of its own
	f.mu.Lock()
	if leader && !f.renewed.IsZero() {
		f.led = true // on a record this process wrote
	} else if !leader && f.led {
		f.ended = true
	}
	ended, renewed := f.ended, f.renewed
	f.mu.Unlock()
	switch {
	case ended:
		return fmt.Errorf("%w: it has stopped leading", ErrNotLeading)
	case !leader:
		return nil // a follower's connections carry its reads
	case renewed.IsZero():
		// Named by a record this process did not write (a restart with the
		// same identity): it leads only once it has renewed.
		return fmt.Errorf("%w: no renewal of the lease by this process yet", ErrNotLeading)
	}
	if age := time.Since(renewed); age >= f.renewDeadline {
		return fmt.Errorf("%w: the last successful renewal was sent %s ago, renew deadline %s",
			ErrNotLeading, age.Round(time.Millisecond), f.renewDeadline)
	}
	if err := el.Check(f.slack); err != nil {
		return fmt.Errorf("%w: %v", ErrNotLeading, err)
	}
	return nil
}

// Wrap returns rt behind the fence, for rest.Config.WrapTransport.
func (f *WriteFence) Wrap(rt http.RoundTripper) http.RoundTripper {
	return &fencedTransport{next: rt, fence: f}
}

type fencedTransport struct {
	next  http.RoundTripper
	fence *WriteFence
}

func (t *fencedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	if isWrite(req) && !isLeaseRequest(req) {
		if err := t.fence.Allow(); err != nil {
			if req.Body != nil {
				_ = req.Body.Close() // RoundTrip must close it, even on error
			}
			return nil, fmt.Errorf("%s %s: %w", req.Method, req.URL.Path, err)
		}
	}
	return t.next.RoundTrip(req)
}

func isWrite(req *http.Request) bool {
	switch req.Method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return false
	}
	return true
}

// isLeaseRequest reports a request for the coordination.k8s.io API, where
// the elector keeps its Lease; the server URL may have a path of its own
// (a proxy's /k8s/clusters/ID), so anywhere in the path.
func isLeaseRequest(req *http.Request) bool {
	return strings.Contains(req.URL.Path, "/apis/coordination.k8s.io/")
}
