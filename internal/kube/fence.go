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
// unless this replica leads and renewed the Lease within the renew
// deadline, the same bound client-go's leader gives up at, on the local
// monotonic clock, which keeps running while the process is stopped.
//
// An unarmed fence lets everything through: modes without leader election
// (LEADER_ELECT=false, --cleanup, which holds the Lease by other means).
// Lease requests always pass, so the elector itself can renew.
type WriteFence struct {
	// slack is RenewDeadline - LeaseDuration: Check then fails once the last
	// renewal is older than the renew deadline.
	slack time.Duration

	mu sync.Mutex
	el elector
}

// NewWriteFence returns an unarmed fence for a Lease of these timings.
func NewWriteFence(leaseDuration, renewDeadline time.Duration) *WriteFence {
	return &WriteFence{slack: renewDeadline - leaseDuration}
}

// arm makes the fence follow el from now on.
func (f *WriteFence) arm(el elector) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.el = el
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
// not renewed within the renew deadline.
func (f *WriteFence) stale() error {
	f.mu.Lock()
	el := f.el
	f.mu.Unlock()
	if el == nil || !el.IsLeader() {
		return nil
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
