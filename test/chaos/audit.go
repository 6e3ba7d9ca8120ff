package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kube-ecr-refresher/kube-ecr-refresher/test/fakeecr"
)

// auditEvent is one line of kube-apiserver's JSON audit log.
type auditEvent struct {
	UserAgent string `json:"userAgent"`
	Verb      string `json:"verb"`
	ObjectRef struct {
		Resource  string `json:"resource"`
		Namespace string `json:"namespace"`
		Name      string `json:"name"`
	} `json:"objectRef"`
	ResponseStatus struct {
		Code int `json:"code"`
	} `json:"responseStatus"`
	Received metav1.MicroTime `json:"requestReceivedTimestamp"`
	Done     metav1.MicroTime `json:"stageTimestamp"`
}

// write is one write a controller replica made, from the audit log.
type write struct {
	identity  string
	resource  string // secrets, serviceaccounts, leases
	verb      string
	namespace string
	name      string
	code      int
	received  time.Time
	done      time.Time
}

func (w write) ok() bool { return w.code >= 200 && w.code < 300 }

// controllerIdentity returns the identity a controller user agent names
// (kube-ecr-refresher/VERSION (IDENTITY)), or "".
func controllerIdentity(ua string) string {
	if !strings.HasPrefix(ua, "kube-ecr-refresher/") {
		return ""
	}
	i, j := strings.LastIndex(ua, " ("), strings.LastIndex(ua, ")")
	if i < 0 || j < i {
		return ""
	}
	return ua[i+2 : j]
}

// parseAudit returns every write by a controller replica, in log order. A
// line it cannot read could hide a write: that is an error.
func parseAudit(r io.Reader) ([]write, error) {
	var out []write
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 4<<20)
	for n := 1; sc.Scan(); n++ {
		var e auditEvent
		if err := json.Unmarshal(sc.Bytes(), &e); err != nil {
			return nil, fmt.Errorf("audit log line %d: %w", n, err)
		}
		id := controllerIdentity(e.UserAgent)
		if id == "" {
			continue
		}
		out = append(out, write{identity: id, resource: e.ObjectRef.Resource, verb: e.Verb,
			namespace: e.ObjectRef.Namespace, name: e.ObjectRef.Name, code: e.ResponseStatus.Code,
			received: e.Received.Time, done: e.Done.Time})
	}
	return out, sc.Err()
}

// checkOneWriter is invariant 4. The Lease's successful writes, in the
// order they were committed, divide the run into terms: a run of writes by
// one replica is one term, from its first until the next successful write
// by another (the resourceVersion precondition makes that another's
// acquisition, or this one's release followed by it). A replica may have
// several terms: one paused past its lease can acquire again once the new
// holder has released it. Every Secret and ServiceAccount write must reach
// the API server within a term of its own writer, so no two replicas'
// writes ever interleave, no write comes after another replica took the
// Lease, and none before the writer held it.
//
// A write is judged by when kube-apiserver received it: that is when the
// writer acted. One received in time may complete later (held while etcd
// restarts); that is the server's ordering, enforced by resourceVersion
// preconditions, not a second writer.
func checkOneWriter(writes []write, leaseName string) []Violation {
	type term struct {
		id         string
		start, end time.Time // end zero: still held when the log ends
	}
	var leaseWrites []write
	for _, w := range writes {
		if w.resource == "leases" && w.name == leaseName && w.ok() {
			leaseWrites = append(leaseWrites, w)
		}
	}
	slices.SortStableFunc(leaseWrites, func(a, b write) int { return a.done.Compare(b.done) })
	var terms []term
	for _, lw := range leaseWrites {
		if n := len(terms); n > 0 && terms[n-1].id == lw.identity {
			continue
		} else if n > 0 {
			terms[n-1].end = lw.done
		}
		terms = append(terms, term{id: lw.identity, start: lw.done})
	}
	within := func(t term, at time.Time) bool {
		return !at.Before(t.start) && (t.end.IsZero() || at.Before(t.end))
	}
	var out []Violation
	for _, w := range writes {
		if w.resource == "leases" {
			continue
		}
		var holder *term
		everHeld := false
		for i := range terms {
			t := terms[i]
			if t.id == w.identity && !t.start.After(w.received) {
				everHeld = true
			}
			if within(t, w.received) {
				holder = &terms[i]
			}
		}
		switch {
		case holder != nil && holder.id == w.identity:
			continue // in a term of its own
		case !everHeld:
			out = append(out, Violation{Invariant: InvOneWriter, Time: w.received, Namespace: w.namespace,
				Detail: fmt.Sprintf("%s %s %s/%s at %s, before it ever acquired the Lease",
					w.identity, w.verb, w.resource, w.namespace, w.received.Format(time.RFC3339Nano))})
		case holder != nil:
			out = append(out, Violation{Invariant: InvOneWriter, Time: w.received, Namespace: w.namespace,
				Detail: fmt.Sprintf("%s %s %s/%s at %s, after %s acquired the Lease at %s",
					w.identity, w.verb, w.resource, w.namespace, w.received.Format(time.RFC3339Nano),
					holder.id, holder.start.Format(time.RFC3339Nano))})
		default:
			out = append(out, Violation{Invariant: InvOneWriter, Time: w.received, Namespace: w.namespace,
				Detail: fmt.Sprintf("%s %s %s/%s at %s, while no replica held the Lease",
					w.identity, w.verb, w.resource, w.namespace, w.received.Format(time.RFC3339Nano))})
		}
	}
	return out
}

// writeStats counts the controller's writes for the report.
type writeStats struct {
	SecretWrites         int `json:"secret_writes"`
	ServiceAccountWrites int `json:"serviceaccount_writes"`
	Failed               int `json:"failed"`
	LeaseWrites          int `json:"lease_writes"`
}

func countWrites(writes []write) writeStats {
	var s writeStats
	for _, w := range writes {
		switch {
		case w.resource == "leases":
			s.LeaseWrites++
		case !w.ok():
			s.Failed++
		case w.resource == "secrets":
			s.SecretWrites++
		case w.resource == "serviceaccounts":
			s.ServiceAccountWrites++
		}
	}
	return s
}

// justifiedBy are the harness actions that call for a write of each kind.
var justifiedBy = map[string][]nsEventKind{
	"secrets":         {evCreated, evSecretDelete, evSecretEdit, evForeignOff, evUntarget, evRetarget},
	"serviceaccounts": {evCreated, evEntryRemoved, evUntarget, evRetarget},
}

// dueSlack allows for the time between a token falling due and the write.
const dueSlack = 2 * time.Second

// eventSlack: the harness records an action just before its request; a
// write of ours that lands in between may be followed by the repair.
const eventSlack = 200 * time.Millisecond

// checkWriteStorm is invariant 5 for writes: in each namespace, each
// successful Secret or ServiceAccount write by the controller must follow
// something that called for it since its previous write there: the harness
// created the namespace or changed what we own in it, or (Secrets) the
// token in place was due for refresh or expired.
func checkWriteStorm(writes []write, w *world, fraction float64) []Violation {
	w.mu.Lock()
	defer w.mu.Unlock()
	last := map[string]time.Time{}    // resource/namespace → previous write
	used := map[string]map[int]bool{} // resource/namespace → events that justified a write
	dueUsed := map[string]bool{}      // namespace/version whose due token justified a write
	var out []Violation
	for _, wr := range writes {
		if wr.resource == "leases" || !wr.ok() {
			continue
		}
		key := wr.resource + "/" + wr.namespace
		prev := last[key]
		last[key] = wr.received
		st := w.ns[wr.namespace]
		if st == nil {
			continue // not a namespace of the run
		}
		justified := false
		for i, ev := range st.events {
			// An action since the previous write calls for this one; so does
			// one within the repair budget that no write has answered yet:
			// the previous write may have answered an older action, late
			// (a cleanup held up by a kube-apiserver restart, done after the
			// namespace was targeted again, leaves the retarget to this write).
			recent := ev.at.After(prev.Add(-eventSlack)) || ev.at.After(wr.received.Add(-w.budget))
			if used[key][i] || !recent || ev.at.After(wr.received) || !slices.Contains(justifiedBy[wr.resource], ev.kind) {
				continue
			}
			if used[key] == nil {
				used[key] = map[int]bool{}
			}
			used[key][i] = true // one action calls for one write
			justified = true
			break
		}
		if !justified && wr.resource == "secrets" {
			// A token due calls for one write per namespace, not one per
			// replica that notices.
			if v, due := secretDue(w.secretHist[wr.namespace], wr.received, fraction); due && !dueUsed[wr.namespace+"/"+v] {
				dueUsed[wr.namespace+"/"+v] = true
				justified = true
			}
		}
		if !justified {
			out = append(out, Violation{Invariant: InvNoStorm, Time: wr.received, Namespace: wr.namespace,
				Detail: fmt.Sprintf("%s %s %s/%s with nothing calling for it since its previous write at %s",
					wr.identity, wr.verb, wr.resource, wr.namespace, prev.Format(time.RFC3339Nano))})
		}
	}
	return out
}

// secretDue reports whether the Secret in place just before t (from the
// checker's watch) was missing, not ours, or held a token due for refresh
// or expired at t, and names that version.
func secretDue(hist []secretVersion, t time.Time, fraction float64) (string, bool) {
	var cur *secretVersion
	n := 0
	for i := range hist {
		if hist[i].seen.After(t) {
			break
		}
		cur, n = &hist[i], i
	}
	version := fmt.Sprintf("%d", n)
	if cur == nil {
		return "none", true
	}
	if !cur.ours || cur.expires.IsZero() || cur.fetched.IsZero() {
		return version, true
	}
	life := cur.expires.Sub(cur.fetched)
	due := cur.fetched.Add(time.Duration(float64(life) * (1 - fraction)))
	return version, !t.Add(dueSlack).Before(due)
}

// overlaps reports whether any window intersects [from, to].
func overlaps(ws []window, from, to time.Time) bool {
	for _, w := range ws {
		if !w.from.After(to) && !w.to.Before(from) {
			return true
		}
	}
	return false
}

// ecrStats counts the ECR endpoint's answers for the report.
type ecrStats struct {
	Calls         int `json:"calls"`
	Failed        int `json:"failed"`
	Tokens        int `json:"tokens"`
	ShortTokens   int `json:"short_tokens"`   // lifetime under 10 minutes
	ExpiredTokens int `json:"expired_tokens"` // expired when issued
}

func countECR(answers []fakeecr.Answer) ecrStats {
	var s ecrStats
	for _, a := range answers {
		s.Calls++
		switch {
		case !a.OK():
			s.Failed++
		case !a.ExpiresAt.After(a.Time):
			s.Tokens++
			s.ExpiredTokens++
		case a.ExpiresAt.Sub(a.Time) < 10*time.Minute:
			s.Tokens++
			s.ShortTokens++
		default:
			s.Tokens++
		}
	}
	return s
}

// checkECRStorm is invariant 5 for ECR calls: per process, the first call
// is free, a call after a failed one is a retry, and a call after a
// successful one must wait until the best token it holds is due for
// refresh (or MIN_REFRESH_INTERVAL, whichever is later).
//
// paused holds, per access key, the spans its process was SIGSTOPped: a
// process that wakes finds its ECR request timed out on its own clock, and
// asks again, although the endpoint had answered.
func checkECRStorm(answers []fakeecr.Answer, fraction float64, minInterval time.Duration, paused map[string][]window) []Violation {
	byKey := map[string][]fakeecr.Answer{}
	for _, a := range answers {
		byKey[a.AccessKeyID] = append(byKey[a.AccessKeyID], a)
	}
	var out []Violation
	for key, as := range byKey {
		slices.SortFunc(as, func(a, b fakeecr.Answer) int { return a.Time.Compare(b.Time) })
		var (
			best      *fakeecr.Answer // the token with the latest expiry
			lastOK    time.Time
			prevError bool
		)
		for i := range as {
			a := &as[i]
			if i > 0 && !prevError && best != nil && !overlaps(paused[key], as[i-1].Time, a.Time) {
				life := best.ExpiresAt.Sub(best.Time)
				due := maxTime(best.Time.Add(time.Duration(float64(life)*(1-fraction))), lastOK.Add(minInterval))
				if a.Time.Add(dueSlack).Before(due) {
					out = append(out, Violation{Invariant: InvNoStorm, Time: a.Time,
						Detail: fmt.Sprintf("ECR call by %s at %s, before its token was due at %s",
							key, a.Time.Format(time.RFC3339Nano), due.Format(time.RFC3339Nano))})
				}
			}
			prevError = !a.OK()
			if a.OK() {
				lastOK = a.Time
				if best == nil || a.ExpiresAt.After(best.ExpiresAt) || !best.ExpiresAt.After(a.Time) {
					best = a
				}
			}
		}
	}
	slices.SortFunc(out, func(a, b Violation) int { return a.Time.Compare(b.Time) })
	return out
}
