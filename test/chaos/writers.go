package main

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/util/retry"
)

// ledger is what the other writers know they put in the default
// ServiceAccounts: invariant 2 holds if every entry they added and have not
// removed is in every version of the ServiceAccount seen after the add.
type ledger struct {
	w  *world
	mu sync.Mutex
	// entries by namespace, then name.
	entries map[string]map[string]*ledgerEntry
	edits   atomic.Int64
	failed  atomic.Int64
}

type ledgerEntry struct {
	addRV    int64 // resourceVersion of the write that added it
	removing bool  // its writer is removing it: no longer checked
	lost     bool  // reported once
}

func newLedger(w *world) *ledger {
	return &ledger{w: w, entries: map[string]map[string]*ledgerEntry{}}
}

// observe checks one version of a default ServiceAccount against the ledger.
func (l *ledger) observe(sa *corev1.ServiceAccount) {
	rv, err := strconv.ParseInt(sa.ResourceVersion, 10, 64)
	if err != nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for name, e := range l.entries[sa.Namespace] {
		if e.removing || e.lost || e.addRV == 0 || rv < e.addRV {
			continue
		}
		if !hasEntry(sa, name) {
			e.lost = true
			l.w.violate(Violation{Invariant: InvEntriesKept, Time: time.Now(), Namespace: sa.Namespace,
				Detail: fmt.Sprintf("entry %s added at resourceVersion %d is missing at %d", name, e.addRV, rv)})
		}
	}
}

func hasEntry(sa *corev1.ServiceAccount, name string) bool {
	return slices.ContainsFunc(sa.ImagePullSecrets, func(r corev1.LocalObjectReference) bool { return r.Name == name })
}

// forget drops a namespace's entries (the namespace is being deleted).
func (l *ledger) forget(ns string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.entries, ns)
}

func (l *ledger) added(ns, name string, rv string) {
	n, _ := strconv.ParseInt(rv, 10, 64)
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.entries[ns] == nil {
		l.entries[ns] = map[string]*ledgerEntry{}
	}
	l.entries[ns][name] = &ledgerEntry{addRV: n}
}

// take picks one of writer's entries in ns to remove and marks it removing.
func (l *ledger) take(ns, prefix string, rng *rand.Rand) (string, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var mine []string
	for name, e := range l.entries[ns] {
		if !e.removing && len(name) > len(prefix) && name[:len(prefix)] == prefix {
			mine = append(mine, name)
		}
	}
	if len(mine) == 0 {
		return "", false
	}
	slices.Sort(mine)
	name := mine[rng.IntN(len(mine))]
	l.entries[ns][name].removing = true
	return name, true
}

func (l *ledger) count(ns, prefix string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	n := 0
	for name := range l.entries[ns] {
		if len(name) > len(prefix) && name[:len(prefix)] == prefix {
			n++
		}
	}
	return n
}

func (l *ledger) removed(ns, name string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.entries[ns], name)
}

// lostOnRemove reports an entry its writer found gone when it came to remove it.
func (l *ledger) lostOnRemove(ns, name string) {
	l.mu.Lock()
	e := l.entries[ns][name]
	already := e == nil || e.lost
	if e != nil {
		e.lost = true
	}
	l.mu.Unlock()
	if !already {
		l.w.violate(Violation{Invariant: InvEntriesKept, Time: time.Now(), Namespace: ns,
			Detail: fmt.Sprintf("entry %s was gone when its writer came to remove it", name)})
	}
}

// otherWriter is one "other controller" that adds and removes its own
// imagePullSecrets entries in default ServiceAccounts: half the time with a
// read-modify-Update carrying the read's resourceVersion, half the time with
// a JSON patch whose test operations make it safe.
type otherWriter struct {
	id       int
	client   kubernetes.Interface
	ledger   *ledger
	rng      *rand.Rand
	interval time.Duration
	pick     func(*rand.Rand) string // a namespace to edit, or ""
	seq      int
}

func (o *otherWriter) prefix() string { return fmt.Sprintf("other-w%02d-", o.id) }

func (o *otherWriter) run(ctx context.Context) {
	for {
		d := time.Duration(float64(o.interval) * (0.5 + o.rng.Float64()))
		select {
		case <-ctx.Done():
			return
		case <-time.After(d):
		}
		ns := o.pick(o.rng)
		if ns == "" {
			continue
		}
		var err error
		patch := o.rng.IntN(2) == 0
		if o.ledger.count(ns, o.prefix()) < 2 || o.rng.IntN(2) == 0 {
			o.seq++
			name := fmt.Sprintf("%s%d", o.prefix(), o.seq)
			err = o.add(ctx, ns, name, patch)
		} else if name, ok := o.ledger.take(ns, o.prefix(), o.rng); ok {
			err = o.remove(ctx, ns, name, patch)
		}
		o.ledger.edits.Add(1)
		if err != nil {
			o.ledger.failed.Add(1)
		}
	}
}

func (o *otherWriter) add(ctx context.Context, ns, name string, patch bool) error {
	sas := o.client.CoreV1().ServiceAccounts(ns)
	return retry.RetryOnConflict(retry.DefaultRetry, func() error {
		sa, err := sas.Get(ctx, "default", metav1.GetOptions{})
		if err != nil {
			return err
		}
		var out *corev1.ServiceAccount
		if patch {
			ops := []map[string]any{{"op": "test", "path": "/metadata/resourceVersion", "value": sa.ResourceVersion}}
			if sa.ImagePullSecrets == nil {
				ops = append(ops, map[string]any{"op": "add", "path": "/imagePullSecrets", "value": []map[string]string{{"name": name}}})
			} else {
				ops = append(ops, map[string]any{"op": "add", "path": "/imagePullSecrets/-", "value": map[string]string{"name": name}})
			}
			b, _ := json.Marshal(ops)
			out, err = sas.Patch(ctx, "default", types.JSONPatchType, b, metav1.PatchOptions{})
			if apierrors.IsInvalid(err) || isTestFailed(err) {
				return apierrors.NewConflict(corev1.Resource("serviceaccounts"), "default", err)
			}
		} else {
			sa.ImagePullSecrets = append(sa.ImagePullSecrets, corev1.LocalObjectReference{Name: name})
			out, err = sas.Update(ctx, sa, metav1.UpdateOptions{})
		}
		if err != nil {
			return err
		}
		o.ledger.added(ns, name, out.ResourceVersion)
		return nil
	})
}

func (o *otherWriter) remove(ctx context.Context, ns, name string, patch bool) error {
	sas := o.client.CoreV1().ServiceAccounts(ns)
	// After an attempt that may have been applied (a 500, a lost answer),
	// finding the entry gone is that attempt's doing, not a loss.
	uncertain := false
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		sa, err := sas.Get(ctx, "default", metav1.GetOptions{})
		if err != nil {
			return err
		}
		i := slices.IndexFunc(sa.ImagePullSecrets, func(r corev1.LocalObjectReference) bool { return r.Name == name })
		if i < 0 {
			if !uncertain {
				o.ledger.lostOnRemove(ns, name)
			}
			return nil
		}
		if patch {
			ops := []map[string]any{
				{"op": "test", "path": fmt.Sprintf("/imagePullSecrets/%d/name", i), "value": name},
				{"op": "remove", "path": fmt.Sprintf("/imagePullSecrets/%d", i)},
			}
			b, _ := json.Marshal(ops)
			_, err = sas.Patch(ctx, "default", types.JSONPatchType, b, metav1.PatchOptions{})
			if isTestFailed(err) { // not applied: read again and retry
				return apierrors.NewConflict(corev1.Resource("serviceaccounts"), "default", err)
			}
			uncertain = uncertain || (err != nil && !apierrors.IsConflict(err))
			return err
		}
		sa.ImagePullSecrets = slices.Delete(sa.ImagePullSecrets, i, i+1)
		_, err = sas.Update(ctx, sa, metav1.UpdateOptions{})
		uncertain = uncertain || (err != nil && !apierrors.IsConflict(err))
		return err
	})
	if err == nil || apierrors.IsNotFound(err) {
		o.ledger.removed(ns, name)
	}
	return err
}

// isTestFailed reports a JSON patch whose test operation failed: the
// object changed since it was read.
func isTestFailed(err error) bool {
	var st apierrors.APIStatus
	if err == nil {
		return false
	}
	if s, ok := err.(apierrors.APIStatus); ok {
		st = s
	} else {
		return false
	}
	return st.Status().Code == 422 || (st.Status().Code == 500 && strings.Contains(st.Status().Message, "test"))
}
