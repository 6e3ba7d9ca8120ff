package kube

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/utils/ptr"
)

func testLeaderConfig(onNewLeader func(string)) LeaderConfig {
	return LeaderConfig{
		Namespace:     "kube-system",
		Name:          "kube-ecr-refresher",
		Identity:      "replica-1",
		LeaseDuration: time.Second,
		RenewDeadline: 400 * time.Millisecond,
		RetryPeriod:   50 * time.Millisecond,
		OnNewLeader:   onNewLeader,
	}
}

// leaders records the identities OnNewLeader reports.
type leaders struct {
	mu  sync.Mutex
	ids []string
}

func (l *leaders) add(id string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ids = append(l.ids, id)
}

func (l *leaders) seen(id string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, x := range l.ids {
		if x == id {
			return true
		}
	}
	return false
}

func TestRunLeaderElection(t *testing.T) {
	otherLease := &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Namespace: "kube-system", Name: "kube-ecr-refresher"},
		Spec: coordinationv1.LeaseSpec{
			HolderIdentity:       ptr.To("replica-2"),
			LeaseDurationSeconds: ptr.To[int32](3600),
			AcquireTime:          &metav1.MicroTime{Time: time.Now()},
			RenewTime:            &metav1.MicroTime{Time: time.Now()},
		},
	}

	tests := []struct {
		name string
		objs []runtime.Object
		// react is installed before the election starts.
		react func(*fake.Clientset)
		// stop ends the run: it gets the started channel (closed when lead
		// runs), the leaders seen and the cancel func of the election's context.
		stop       func(t *testing.T, started <-chan struct{}, seen *leaders, cancel context.CancelFunc)
		wantLost   bool
		wantLed    bool
		wantHolder string // the Lease's holder afterwards
	}{
		{
			name: "Cancelling the context while leading releases the Lease and is no loss",
			stop: func(t *testing.T, started <-chan struct{}, _ *leaders, cancel context.CancelFunc) {
				<-started
				cancel()
			},
			wantLed:    true,
			wantHolder: "",
		},
		{
			name: "Failing to renew the Lease is a loss",
			react: func(client *fake.Clientset) {
				client.PrependReactor("update", "leases", func(k8stesting.Action) (bool, runtime.Object, error) {
					return true, nil, apierrors.NewServiceUnavailable("etcd is down")
				})
			},
			// lead does not synchronise with the test: the election must end by itself.
			stop:       func(*testing.T, <-chan struct{}, *leaders, context.CancelFunc) {},
			wantLost:   true,
			wantLed:    true,
			wantHolder: "replica-1",
		},
		{
			name: "A Lease held by another replica is followed and never taken",
			objs: []runtime.Object{otherLease},
			stop: func(t *testing.T, _ <-chan struct{}, seen *leaders, cancel context.CancelFunc) {
				eventually(t, "replica-2 reported as leader", func() bool { return seen.seen("replica-2") })
				cancel()
			},
			wantHolder: "replica-2",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client := fake.NewClientset(tt.objs...)
			if tt.react != nil {
				tt.react(client)
			}
			var seen leaders
			ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
			defer cancel()
			started := make(chan struct{})
			var once sync.Once
			type result struct {
				lost bool
				err  error
			}
			done := make(chan result, 1)
			go func() {
				lost, err := RunLeaderElection(ctx, client, testLeaderConfig(seen.add), slog.New(slog.NewTextHandler(io.Discard, nil)), func(ctx context.Context) {
					once.Do(func() { close(started) })
					<-ctx.Done()
				})
				done <- result{lost, err}
			}()
			tt.stop(t, started, &seen, cancel)

			var res result
			select {
			case res = <-done:
			case <-time.After(10 * time.Second):
				t.Fatal("RunLeaderElection did not return")
			}
			if res.err != nil {
				t.Fatalf("RunLeaderElection: %v", res.err)
			}
			if res.lost != tt.wantLost {
				t.Errorf("lost = %t, want %t", res.lost, tt.wantLost)
			}
			led := false
			select {
			case <-started:
				led = true
			default:
			}
			if led != tt.wantLed {
				t.Errorf("lead called = %t, want %t", led, tt.wantLed)
			}
			if tt.wantLed && !seen.seen("replica-1") {
				// OnNewLeader runs in its own goroutine: give it a moment.
				eventually(t, "replica-1 reported as leader", func() bool { return seen.seen("replica-1") })
			}

			lease, err := client.CoordinationV1().Leases("kube-system").Get(context.Background(), "kube-ecr-refresher", metav1.GetOptions{})
			if err != nil {
				t.Fatalf("get lease: %v", err)
			}
			if got := ptr.Deref(lease.Spec.HolderIdentity, ""); got != tt.wantHolder {
				t.Errorf("lease holder = %q, want %q", got, tt.wantHolder)
			}
		})
	}
}

func TestRunLeaderElectionRejectsBadTimings(t *testing.T) {
	cfg := testLeaderConfig(nil)
	cfg.RenewDeadline = cfg.LeaseDuration
	lost, err := RunLeaderElection(t.Context(), fake.NewClientset(), cfg, slog.New(slog.NewTextHandler(io.Discard, nil)), func(context.Context) {
		t.Error("lead called with an invalid configuration")
	})
	if err == nil || lost {
		t.Fatalf("RunLeaderElection = (%t, %v), want (false, an error)", lost, err)
	}
	if errors.Is(err, context.Canceled) {
		t.Fatalf("unexpected error: %v", err)
	}
}

// On SIGTERM the controller cancels the context while workers may still be
// writing: the Lease must stay held (and renewed) until lead has returned,
// or the next leader starts while this one writes.
func TestLeaseIsReleasedOnlyAfterLeadReturns(t *testing.T) {
	client := fake.NewClientset()
	var (
		mu     sync.Mutex
		events []string
	)
	record := func(e string) {
		mu.Lock()
		defer mu.Unlock()
		if len(events) == 0 || events[len(events)-1] != e {
			events = append(events, e)
		}
	}
	cancelled := make(chan struct{})
	client.PrependReactor("update", "leases", func(a k8stesting.Action) (bool, runtime.Object, error) {
		lease := a.(k8stesting.UpdateAction).GetObject().(*coordinationv1.Lease)
		select {
		case <-cancelled:
			if ptr.Deref(lease.Spec.HolderIdentity, "") == "" {
				record("lease released")
			} else {
				record("lease renewed")
			}
		default:
		}
		return false, nil, nil
	})
	ctx, cancel := context.WithCancel(t.Context())
	started := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		_, err := RunLeaderElection(ctx, client, testLeaderConfig(nil), slog.New(slog.NewTextHandler(io.Discard, nil)), func(leadCtx context.Context) {
			close(started)
			<-leadCtx.Done()
			time.Sleep(300 * time.Millisecond) // workers finishing their requests
			record("lead returned")
		})
		done <- err
	}()
	<-started
	close(cancelled)
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("RunLeaderElection: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("RunLeaderElection did not return")
	}
	mu.Lock()
	defer mu.Unlock()
	want := []string{"lease renewed", "lead returned", "lease released"}
	if diff := cmp.Diff(want, events); diff != "" {
		t.Errorf("order of events (-want +got):\n%s", diff)
	}
}

// A replica that lost the Lease without noticing must not release the new
// holder's Lease on its way out: client-go's release reads the Lease, then
// trusts its own stale record. Here replica-1's renewals "succeed" in its
// own view but never reach the store (as behind a partition that loses the
// answers' effect), while replica-2 takes the Lease; when replica-1 stops,
// replica-2's Lease must still name replica-2.
func TestStaleLeaderNeverReleasesAnothersLease(t *testing.T) {
	client := fake.NewClientset()
	var partitioned atomic.Bool
	var swallowed atomic.Int32
	client.PrependReactor("update", "leases", func(a k8stesting.Action) (bool, runtime.Object, error) {
		l := a.(k8stesting.UpdateAction).GetObject().(*coordinationv1.Lease)
		if partitioned.Load() && ptr.Deref(l.Spec.HolderIdentity, "") == "replica-1" {
			swallowed.Add(1)
			return true, l, nil // replica-1 believes it renewed
		}
		return false, nil, nil
	})
	cfg := testLeaderConfig(nil)
	ctx, cancel := context.WithCancel(t.Context())
	done := leadInBackground(t, ctx, client, cfg)
	partitioned.Store(true)
	// replica-2 acquires (its writes reach the store; replica-1's do not).
	cur, err := client.CoordinationV1().Leases(cfg.Namespace).Get(context.Background(), cfg.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	taken := cur.DeepCopy()
	taken.Spec.HolderIdentity = ptr.To("replica-2")
	taken.Spec.LeaseDurationSeconds = ptr.To[int32](60)
	taken.Spec.RenewTime = &metav1.MicroTime{Time: time.Now()}
	if _, err := client.CoordinationV1().Leases(cfg.Namespace).Update(context.Background(), taken, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	// replica-1 goes on renewing in its own view.
	before := swallowed.Load()
	deadline := time.Now().Add(10 * time.Second)
	for swallowed.Load() < before+2 {
		if time.Now().After(deadline) {
			t.Fatal("replica-1 stopped renewing")
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel() // replica-1 stops and releases what it believes is its Lease
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("RunLeaderElection did not return")
	}
	got, err := client.CoordinationV1().Leases(cfg.Namespace).Get(context.Background(), cfg.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if h := ptr.Deref(got.Spec.HolderIdentity, ""); h != "replica-2" {
		t.Errorf("after replica-1 stopped the Lease names %q, want replica-2 (replica-1 released another's Lease)", h)
		for _, a := range client.Actions() {
			if u, ok := a.(k8stesting.UpdateAction); ok {
				t.Logf("%s %s holder=%q", a.GetVerb(), a.GetResource().Resource, ptr.Deref(u.GetObject().(*coordinationv1.Lease).Spec.HolderIdentity, ""))
			} else {
				t.Logf("%s %s", a.GetVerb(), a.GetResource().Resource)
			}
		}
	}
}

// leadInBackground runs RunLeaderElection with a lead that waits for its
// context, returns once this replica leads, and closes done when
// RunLeaderElection has returned.
func leadInBackground(t *testing.T, ctx context.Context, client kubernetes.Interface, cfg LeaderConfig) (done <-chan struct{}) {
	t.Helper()
	leading := make(chan struct{}, 1)
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		_, _ = RunLeaderElection(ctx, client, cfg, slog.New(slog.DiscardHandler), func(ctx context.Context) {
			leading <- struct{}{}
			<-ctx.Done()
		})
	}()
	select {
	case <-leading:
	case <-time.After(10 * time.Second):
		t.Fatal(cfg.Identity + " never led")
	}
	return finished
}
