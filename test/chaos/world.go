package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// Invariants, as the report names them.
const (
	InvServed       = "1-served"       // every target namespace holds a usable Secret of ours, listed by default
	InvEntriesKept  = "2-entries-kept" // no entry of another writer is ever lost
	InvForeignKept  = "3-foreign-kept" // a foreign Secret is never modified
	InvOneWriter    = "4-one-writer"   // never two writers; none after its Lease was taken
	InvNoStorm      = "5-no-storm"     // writes per namespace per token, ECR calls per token
	InvLeftClean    = "6-left-clean"   // nothing of ours in a namespace that left the target set
	maxViolationLog = 200              // violations kept per invariant in the report
)

// Invariants lists them in report order.
var Invariants = []string{InvServed, InvEntriesKept, InvForeignKept, InvOneWriter, InvNoStorm, InvLeftClean}

// Violation is one breach of an invariant.
type Violation struct {
	Invariant string    `json:"invariant"`
	Time      time.Time `json:"time"`
	Namespace string    `json:"namespace,omitempty"`
	Detail    string    `json:"detail"`
	// Seconds is how long the breach lasted, where that has a meaning
	// (a namespace unserved beyond the repair budget).
	Seconds float64 `json:"seconds,omitempty"`
}

// nsEventKind is something the harness did to a namespace or its objects.
type nsEventKind string

const (
	evCreated      nsEventKind = "created"
	evDeleted      nsEventKind = "deleted"
	evSecretDelete nsEventKind = "secret-deleted"
	evSecretEdit   nsEventKind = "secret-edited"
	evForeignOn    nsEventKind = "foreign-on"  // a Secret of our name that is not ours is in place
	evForeignOff   nsEventKind = "foreign-off" // it is gone, or ours again
	evUntarget     nsEventKind = "untargeted"
	evRetarget     nsEventKind = "retargeted"
	evEntryRemoved nsEventKind = "entry-removed"
	evRelabel      nsEventKind = "relabelled" // a label added that changes nothing
)

type nsEvent struct {
	kind nsEventKind
	at   time.Time
}

// nsState is what the harness knows of one namespace it created.
type nsState struct {
	name        string
	created     time.Time
	deleted     bool      // the harness deleted it (terminating or gone)
	foreign     bool      // a Secret of our name that is not ours is in place
	foreignRV   string    // its resourceVersion when the harness made it so
	untargeted  bool      // annotated kube-ecr-refresher/ignore
	since       time.Time // when it last became eligible (created, retargeted, foreign gone)
	busy        bool      // a namespace fault is under way on it
	events      []nsEvent
	leftCleanAt time.Time // the untarget whose cleanup was already checked
	gap         *gap      // unserved since, while eligible
}

type gap struct{ from time.Time }

// window is a span of time during which a fault was active.
type window struct{ from, to, limit time.Time } // to zero: still open; limit zero: none

// world is the harness's shared record of what it did and what it saw.
type world struct {
	mu         sync.Mutex
	budget     time.Duration
	ns         map[string]*nsState
	blocking   []window // faults during which repair may be impossible
	violations map[string][]Violation
	vcount     map[string]int
	// secretHist keeps, per namespace, each version of our Secret seen.
	secretHist map[string][]secretVersion
	// gaps: how many unserved spans, the longest, and the longest part of
	// one outside blocking faults.
	gaps                 int
	maxGap, maxUnexcused time.Duration
}

// secretVersion is one version of our Secret seen by the checker's watch.
type secretVersion struct {
	seen     time.Time
	rv       string
	ours     bool
	fetched  time.Time
	expires  time.Time
	password string
}

func newWorld(budget time.Duration) *world {
	return &world{
		budget:     budget,
		ns:         map[string]*nsState{},
		violations: map[string][]Violation{},
		vcount:     map[string]int{},
		secretHist: map[string][]secretVersion{},
	}
}

func (w *world) violate(v Violation) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.violateLocked(v)
}

func (w *world) violateLocked(v Violation) {
	w.vcount[v.Invariant]++
	if len(w.violations[v.Invariant]) < maxViolationLog {
		w.violations[v.Invariant] = append(w.violations[v.Invariant], v)
	}
}

// event records what the harness did to namespace ns.
func (w *world) event(ns string, kind nsEventKind, at time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.ns[ns]
	if s == nil {
		return
	}
	s.events = append(s.events, nsEvent{kind: kind, at: at})
	switch kind {
	case evDeleted, evForeignOn, evUntarget:
		// No longer held to invariant 1: an open unserved span is judged now.
		if s.gap != nil {
			w.closeGapLocked(s, at)
		}
	}
	switch kind {
	case evDeleted:
		s.deleted = true
	case evForeignOn:
		s.foreign, s.foreignRV = true, "" // the harness records the new version
	case evForeignOff:
		s.foreign, s.foreignRV, s.since = false, "", at
	case evUntarget:
		s.untargeted = true
	case evRetarget:
		s.untargeted, s.since = false, at
	}
}

// closeGapLocked ends a namespace's unserved span and records it as a
// violation when its part not covered by a blocking fault exceeds the budget.
func (w *world) closeGapLocked(st *nsState, now time.Time) {
	g := st.gap
	st.gap = nil
	total := now.Sub(g.from)
	unexcused := total - w.excusedLocked(g.from, now)
	w.gaps++
	w.maxGap, w.maxUnexcused = max(w.maxGap, total), max(w.maxUnexcused, unexcused)
	if unexcused > w.budget {
		w.violateLocked(Violation{Invariant: InvServed, Time: g.from, Namespace: st.name, Seconds: total.Seconds(),
			Detail: fmt.Sprintf("unserved for %s, %s of it outside any blocking fault (budget %s)",
				total.Round(time.Millisecond), unexcused.Round(time.Millisecond), w.budget)})
	}
}

// block opens a blocking window and returns the function that closes it.
// A window with a cap set excuses no more than until the cap, however long
// the fault lasts (another replica takes the Lease by then).
func (w *world) block(from, limit time.Time) func(time.Time) {
	w.mu.Lock()
	i := len(w.blocking)
	w.blocking = append(w.blocking, window{from: from, limit: limit})
	w.mu.Unlock()
	return func(to time.Time) {
		w.mu.Lock()
		if !limit.IsZero() && to.After(limit) {
			to = limit
		}
		w.blocking[i].to = to
		w.mu.Unlock()
	}
}

// excusedLocked is how much of [from, to] some blocking window covers.
func (w *world) excusedLocked(from, to time.Time) time.Duration {
	var spans []window
	for _, b := range w.blocking {
		end := b.to
		if end.IsZero() {
			end = to
			if !b.limit.IsZero() && end.After(b.limit) {
				end = b.limit
			}
		}
		lo, hi := maxTime(b.from, from), minTime(end, to)
		if hi.After(lo) {
			spans = append(spans, window{from: lo, to: hi})
		}
	}
	slices.SortFunc(spans, func(a, b window) int { return a.from.Compare(b.from) })
	var total time.Duration
	var cur window
	for i, s := range spans {
		if i == 0 || s.from.After(cur.to) {
			total += cur.to.Sub(cur.from)
			cur = s
			continue
		}
		cur.to = maxTime(cur.to, s.to)
	}
	if len(spans) > 0 {
		total += cur.to.Sub(cur.from)
	}
	return total
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// decodePassword returns the one password of a dockerconfigjson, or "".
func decodePassword(s *corev1.Secret) string {
	var cfg struct {
		Auths map[string]struct {
			Username string `json:"username"`
			Password string `json:"password"`
			Auth     string `json:"auth"`
		} `json:"auths"`
	}
	if json.Unmarshal(s.Data[corev1.DockerConfigJsonKey], &cfg) != nil || len(cfg.Auths) != 1 {
		return ""
	}
	for _, a := range cfg.Auths {
		dec, err := base64.StdEncoding.DecodeString(a.Auth)
		if err != nil || string(dec) != a.Username+":"+a.Password {
			return ""
		}
		return a.Password
	}
	return ""
}

// tamperedConfig is a well-formed dockerconfigjson whose password the ECR
// endpoint never issued.
func tamperedConfig(n int) []byte {
	pw := fmt.Sprintf("tampered-%d", n)
	b, _ := json.Marshal(map[string]any{"auths": map[string]any{
		"123456789012.dkr.ecr.us-east-1.amazonaws.com": map[string]string{
			"username": "AWS", "password": pw,
			"auth": base64.StdEncoding.EncodeToString([]byte("AWS:" + pw)),
		},
	}})
	return b
}
