package main

import (
	"strings"
	"testing"
	"time"

	"github.com/kube-ecr-refresher/kube-ecr-refresher/test/fakeecr"
)

var t0 = time.Date(2026, 12, 3, 8, 0, 0, 0, time.UTC)

func at(s float64) time.Time { return t0.Add(time.Duration(s * float64(time.Second))) }

func wr(id, res, ns string, from, to float64) write {
	return write{identity: id, resource: res, verb: "update", namespace: ns, name: "x", code: 200, received: at(from), done: at(to)}
}

func lease(id string, t float64) write {
	return write{identity: id, resource: "leases", verb: "update", namespace: "default", name: "lease", code: 200, received: at(t), done: at(t)}
}

func TestCheckOneWriter(t *testing.T) {
	tests := []struct {
		name   string
		writes []write
		want   []string // substrings of the violations, in order
	}{
		{
			name: "Terms one after the other are fine",
			writes: []write{
				lease("a", 0), wr("a", "secrets", "n1", 1, 1.1), wr("a", "serviceaccounts", "n1", 2, 2.1),
				lease("b", 20), wr("b", "secrets", "n1", 21, 21.1),
			},
		},
		{
			// Held by the server while etcd restarts: the writer acted in time.
			name: "A write received in its writer's term that completes in the next is the server's ordering",
			writes: []write{
				lease("a", 0), wr("a", "secrets", "n1", 1, 21.5),
				lease("b", 20), wr("b", "secrets", "n2", 21, 21.1),
			},
		},
		{
			name: "A write received after the next replica acquired is caught, however it overlaps",
			writes: []write{
				lease("a", 0), wr("a", "secrets", "n1", 1, 1.1),
				lease("b", 20), wr("b", "secrets", "n2", 21, 21.1),
				wr("a", "secrets", "n1", 21.05, 21.2),
			},
			want: []string{"after b acquired the Lease"},
		},
		{
			// A paused replica acquires again once the new holder released.
			name: "A replica that acquires again writes in its second term",
			writes: []write{
				lease("a", 0), wr("a", "secrets", "n1", 1, 1.1),
				lease("b", 20), wr("b", "secrets", "n2", 21, 21.1), lease("b", 30),
				lease("a", 31), wr("a", "secrets", "n1", 32, 32.1),
			},
		},
		{
			name: "A write between two terms of its writer, in another's, is caught",
			writes: []write{
				lease("a", 0), lease("b", 20), wr("a", "secrets", "n1", 25, 25.1), lease("a", 31),
			},
			want: []string{"after b acquired the Lease at"},
		},
		{
			name: "A zombie's write after another acquired the Lease is caught even with no overlap in writes",
			writes: []write{
				lease("a", 0), wr("a", "secrets", "n1", 1, 1.1),
				lease("b", 20),
				wr("a", "secrets", "n1", 25, 25.1),
				wr("b", "secrets", "n2", 30, 30.1),
			},
			want: []string{"after b acquired the Lease"},
		},
		{
			name: "A write before the writer ever acquired the Lease is caught",
			writes: []write{
				lease("a", 0), wr("a", "secrets", "n1", 1, 1.1),
				wr("b", "secrets", "n2", 5, 5.1),
			},
			want: []string{"before it ever acquired the Lease"},
		},
		{
			name: "A failed Lease write is no acquisition",
			writes: []write{
				lease("a", 0), wr("a", "secrets", "n1", 1, 1.1),
				{identity: "b", resource: "leases", name: "lease", code: 409, received: at(2), done: at(2)},
				wr("a", "secrets", "n1", 3, 3.1),
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := checkOneWriter(tt.writes, "lease")
			if len(got) != len(tt.want) {
				t.Fatalf("got %d violations %+v, want %d", len(got), got, len(tt.want))
			}
			for i, w := range tt.want {
				if !strings.Contains(got[i].Detail, w) {
					t.Errorf("violation %d %q lacks %q", i, got[i].Detail, w)
				}
			}
		})
	}
}

func TestCheckWriteStorm(t *testing.T) {
	newW := func() *world {
		w := newWorld(30 * time.Second)
		w.ns["n1"] = &nsState{name: "n1", created: at(0), events: []nsEvent{{evCreated, at(0)}}}
		// A 12 h token written at 1 s.
		w.secretHist["n1"] = []secretVersion{{seen: at(1.1), ours: true, fetched: at(1), expires: at(1).Add(12 * time.Hour), password: "p1"}}
		return w
	}
	tests := []struct {
		name   string
		events []nsEvent
		hist   []secretVersion
		writes []write
		want   int
	}{
		{
			name:   "The first Secret and ServiceAccount writes follow the namespace's creation",
			writes: []write{wr("a", "secrets", "n1", 1, 1.1), wr("a", "serviceaccounts", "n1", 1.2, 1.3)},
		},
		{
			name:   "A second write of a fresh token with nothing calling for it is a storm",
			writes: []write{wr("a", "secrets", "n1", 1, 1.1), wr("b", "secrets", "n1", 30, 30.1)},
			want:   1,
		},
		{
			name:   "A rewrite after the Secret was edited is a repair",
			events: []nsEvent{{evSecretEdit, at(29)}},
			writes: []write{wr("a", "secrets", "n1", 1, 1.1), wr("a", "secrets", "n1", 29.2, 29.3)},
		},
		{
			name:   "A ServiceAccount write after its entry was removed is a repair; a second one is not",
			events: []nsEvent{{evEntryRemoved, at(10)}},
			writes: []write{wr("a", "serviceaccounts", "n1", 1, 1.1), wr("a", "serviceaccounts", "n1", 10.1, 10.2), wr("a", "serviceaccounts", "n1", 12, 12.1)},
			want:   1,
		},
		{
			name:   "A late cleanup answers the untarget, and the re-create after it the retarget",
			events: []nsEvent{{evUntarget, at(4)}, {evRetarget, at(21.9)}},
			writes: []write{wr("a", "secrets", "n1", 1, 1.1), wr("a", "secrets", "n1", 22.4, 22.5), wr("b", "secrets", "n1", 23.1, 23.2)},
		},
		{
			name:   "An action answered already justifies no further write",
			events: []nsEvent{{evUntarget, at(4)}, {evRetarget, at(21.9)}},
			writes: []write{wr("a", "secrets", "n1", 1, 1.1), wr("a", "secrets", "n1", 5, 5.1), wr("a", "secrets", "n1", 22, 22.1), wr("b", "secrets", "n1", 23.1, 23.2)},
			want:   1,
		},
		{
			name:   "A rewrite once the token is due is a refresh",
			hist:   []secretVersion{{seen: at(1.1), ours: true, fetched: at(1), expires: at(121), password: "p1"}},
			writes: []write{wr("a", "secrets", "n1", 1, 1.1), wr("a", "secrets", "n1", 61.5, 61.6)},
		},
		{
			name:   "A rewrite well before the token is due is a storm",
			hist:   []secretVersion{{seen: at(1.1), ours: true, fetched: at(1), expires: at(121), password: "p1"}},
			writes: []write{wr("a", "secrets", "n1", 1, 1.1), wr("a", "secrets", "n1", 40, 40.1)},
			want:   1,
		},
		{
			name:   "Failed writes are not counted",
			writes: []write{wr("a", "secrets", "n1", 1, 1.1), {identity: "a", resource: "secrets", namespace: "n1", code: 409, received: at(5), done: at(5)}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := newW()
			w.ns["n1"].events = append(w.ns["n1"].events, tt.events...)
			if tt.hist != nil {
				w.secretHist["n1"] = tt.hist
			}
			if got := checkWriteStorm(tt.writes, w, 0.5); len(got) != tt.want {
				t.Errorf("got %d violations %+v, want %d", len(got), got, tt.want)
			}
		})
	}
}

func TestCheckECRStorm(t *testing.T) {
	ok := func(key string, t, life float64) fakeecr.Answer {
		return fakeecr.Answer{AccessKeyID: key, Time: at(t), Status: 200, Password: "p", ExpiresAt: at(t + life)}
	}
	failed := func(key string, t float64) fakeecr.Answer {
		return fakeecr.Answer{AccessKeyID: key, Time: at(t), Status: 500}
	}
	const day = 12 * 3600
	tests := []struct {
		name    string
		answers []fakeecr.Answer
		want    int
	}{
		{name: "One call per process is fine", answers: []fakeecr.Answer{ok("a", 0, day), ok("b", 1, day)}},
		{name: "Retries after failures are fine", answers: []fakeecr.Answer{failed("a", 0), failed("a", 1), ok("a", 3, day)}},
		{name: "A second call while a 12 h token is fresh is a storm", answers: []fakeecr.Answer{ok("a", 0, day), ok("a", 60, day)}, want: 1},
		{name: "A 2-minute token is refreshed after a minute", answers: []fakeecr.Answer{ok("a", 0, 120), ok("a", 60, day)}},
		{name: "An expired token is fetched again after the minimum interval", answers: []fakeecr.Answer{ok("a", 0, -60), ok("a", 10, day)}},
		{name: "An expired token fetched again at once is a storm", answers: []fakeecr.Answer{ok("a", 0, -60), ok("a", 3, day)}, want: 1},
		{name: "A process paused after an answer may ask again when it wakes", answers: []fakeecr.Answer{ok("p", 4, day), ok("p", 31, day)}},
		{name: "A malformed answer counts as a failure", answers: []fakeecr.Answer{ok("a", 0, day), {AccessKeyID: "a", Time: at(1), Status: 200, Malformed: true}}, want: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			paused := map[string][]window{"p": {{from: at(5), to: at(30)}}}
			if got := checkECRStorm(tt.answers, 0.5, 10*time.Second, paused); len(got) != tt.want {
				t.Errorf("got %d violations %+v, want %d", len(got), got, tt.want)
			}
		})
	}
}

func TestControllerIdentity(t *testing.T) {
	for ua, want := range map[string]string{
		"kube-ecr-refresher/chaos (chaos-r1-g2)":            "chaos-r1-g2",
		"kube-ecr-refresher/v1.0 (linux) (chaos-r0-g1)":     "chaos-r0-g1",
		"kube-controller-manager/v1.37.2 (linux/amd64) x/y": "",
		"kube-ecr-refresher/dev":                            "",
	} {
		if got := controllerIdentity(ua); got != want {
			t.Errorf("controllerIdentity(%q) = %q, want %q", ua, got, want)
		}
	}
}

func TestExcusedMergesOverlappingWindows(t *testing.T) {
	w := newWorld(time.Second)
	w.blocking = []window{{from: at(0), to: at(10)}, {from: at(5), to: at(15)}, {from: at(20), to: at(25)}, {from: at(30)}, {from: at(26), limit: at(27)}}
	if got, want := w.excusedLocked(at(2), at(32)), (13+5+1+2)*time.Second; got != want {
		t.Errorf("excused = %s, want %s", got, want)
	}
}

func TestScheduleIsDrawnFromTheSeed(t *testing.T) {
	a := Schedule(7, 10*time.Minute, 3*time.Second, 15*time.Second)
	b := Schedule(7, 10*time.Minute, 3*time.Second, 15*time.Second)
	c := Schedule(8, 10*time.Minute, 3*time.Second, 15*time.Second)
	if len(a) == 0 || len(a) != len(b) {
		t.Fatalf("schedules of one seed differ in length: %d, %d", len(a), len(b))
	}
	for i := range a {
		if a[i] != b[i] {
			t.Fatalf("fault %d differs for the same seed: %+v, %+v", i, a[i], b[i])
		}
	}
	if len(a) == len(c) && a[0] == c[0] && a[1] == c[1] {
		t.Errorf("seeds 7 and 8 start alike")
	}
	// Every round holds every kind once, so each kind comes up alike.
	count := map[string]int{}
	for _, f := range a[:len(Kinds)] {
		count[f.Kind]++
	}
	for _, k := range Kinds {
		if count[k] != 1 {
			t.Errorf("first round has %d faults of kind %s, want 1", count[k], k)
		}
	}
}
