// Package status reads what the controller has done in a cluster, for the
// `kube-ecr-refresher status` command: per target namespace, our Secret (its
// registries and expiry) and the ServiceAccount entries, then the Lease
// holder and the last refresh. It only reads: the named Secrets and
// ServiceAccounts, Namespaces and the Lease.
package status

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"

	"github.com/kube-ecr-refresher/kube-ecr-refresher/internal/kube"
)

// Options say what to look at: the controller's own settings.
type Options struct {
	SecretName      string
	ServiceAccounts []string // kube.AllServiceAccounts for every one
	Target          func(*corev1.Namespace) bool
	LeaseNamespace  string
	LeaseName       string
	// Now is the time Secrets are judged at (time.Now when zero).
	Now time.Time
}

// Report is what status prints.
type Report struct {
	Namespaces  []Namespace `json:"namespaces"`
	Targets     int         `json:"targets"`
	Served      int         `json:"served"`
	Lease       Lease       `json:"lease"`
	LastRefresh *time.Time  `json:"lastRefresh,omitempty"` // newest fetched-at of our Secrets
}

// Namespace is one target namespace.
type Namespace struct {
	Name            string           `json:"name"`
	Served          bool             `json:"served"`
	Secret          string           `json:"secret"` // ours, missing, foreign, broken, expired
	Registries      []string         `json:"registries,omitempty"`
	ExpiresAt       *time.Time       `json:"expiresAt,omitempty"`
	ServiceAccounts []ServiceAccount `json:"serviceAccounts"`
	Problems        []string         `json:"problems,omitempty"`
}

// ServiceAccount is one ServiceAccount that should list our Secret.
type ServiceAccount struct {
	Name   string `json:"name"`
	Listed bool   `json:"listed"`
}

// Lease is the leader election Lease.
type Lease struct {
	Namespace string     `json:"namespace"`
	Name      string     `json:"name"`
	Found     bool       `json:"found"`
	Holder    string     `json:"holder,omitempty"`
	RenewedAt *time.Time `json:"renewedAt,omitempty"`
	Valid     bool       `json:"valid"` // renewed within its duration
}

// concurrency bounds the GETs made when listing is not allowed.
const concurrency = 16

// Collect reads the cluster.
func Collect(ctx context.Context, client kubernetes.Interface, o Options) (*Report, error) {
	now := o.Now
	if now.IsZero() {
		now = time.Now()
	}
	nsList, err := client.CoreV1().Namespaces().List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("list namespaces: %w", err)
	}
	var targets []string
	for i := range nsList.Items {
		ns := &nsList.Items[i]
		if ns.DeletionTimestamp == nil && o.Target(ns) {
			targets = append(targets, ns.Name)
		}
	}
	slices.Sort(targets)

	secrets, err := secretsIn(ctx, client, targets, o.SecretName)
	if err != nil {
		return nil, err
	}
	sas, err := serviceAccountsIn(ctx, client, targets, o.ServiceAccounts)
	if err != nil {
		return nil, err
	}

	r := &Report{Targets: len(targets)}
	for _, name := range targets {
		n := judge(name, secrets[name], sas[name], o, now)
		if n.Served {
			r.Served++
		}
		if s := secrets[name]; s != nil && kube.Owned(s) {
			if t, err := time.Parse(time.RFC3339, s.Annotations[kube.FetchedAtAnnotation]); err == nil &&
				(r.LastRefresh == nil || t.After(*r.LastRefresh)) {
				r.LastRefresh = &t
			}
		}
		r.Namespaces = append(r.Namespaces, n)
	}
	r.Lease, err = lease(ctx, client, o.LeaseNamespace, o.LeaseName, now)
	if err != nil {
		return nil, err
	}
	return r, nil
}

// judge reports on one namespace.
func judge(name string, secret *corev1.Secret, sas []*corev1.ServiceAccount, o Options, now time.Time) Namespace {
	n := Namespace{Name: name, ServiceAccounts: []ServiceAccount{}}
	var cached *corev1.Secret
	if secret != nil {
		t, _ := kube.TransformSecret(secret.DeepCopy())
		cached = t.(*corev1.Secret)
	}
	secretOK := false
	switch err := kube.CheckSecret(cached, now); {
	case err == nil:
		n.Secret, secretOK = "ours", true
	case errors.Is(err, kube.ErrNoSecret):
		n.Secret = "missing"
		n.Problems = append(n.Problems, "no Secret "+o.SecretName)
	case errors.Is(err, kube.ErrNotOurs):
		n.Secret = "foreign"
		n.Problems = append(n.Problems, "Secret "+o.SecretName+" is not managed by kube-ecr-refresher (left alone)")
	case errors.Is(err, kube.ErrSecretExpired):
		n.Secret = "expired"
		n.Problems = append(n.Problems, err.Error())
	default:
		n.Secret = "broken"
		n.Problems = append(n.Problems, err.Error())
	}
	if secret != nil && kube.Owned(secret) {
		if hosts := secret.Annotations[kube.RegistriesAnnotation]; hosts != "" {
			n.Registries = strings.Split(hosts, ",")
		}
		if t, err := time.Parse(time.RFC3339, secret.Annotations[kube.ExpiresAtAnnotation]); err == nil {
			n.ExpiresAt = &t
		}
	}
	listedAll := true
	for _, sa := range sas {
		listed := kube.HasPullSecret(sa, o.SecretName)
		n.ServiceAccounts = append(n.ServiceAccounts, ServiceAccount{Name: sa.Name, Listed: listed})
		if !listed {
			listedAll = false
			n.Problems = append(n.Problems, "ServiceAccount "+sa.Name+" does not list "+o.SecretName)
		}
	}
	for _, want := range o.ServiceAccounts {
		if want != kube.AllServiceAccounts && !slices.ContainsFunc(sas, func(sa *corev1.ServiceAccount) bool { return sa.Name == want }) {
			listedAll = false
			n.Problems = append(n.Problems, "no ServiceAccount "+want)
		}
	}
	n.Served = secretOK && listedAll
	return n
}

// secretsIn returns the Secret named name in each namespace that has one:
// one list by field selector when allowed, else a GET per namespace (a Role
// may grant get on the named Secret only).
func secretsIn(ctx context.Context, client kubernetes.Interface, namespaces []string, name string) (map[string]*corev1.Secret, error) {
	out := map[string]*corev1.Secret{}
	list, err := client.CoreV1().Secrets(metav1.NamespaceAll).List(ctx, metav1.ListOptions{
		FieldSelector: fields.OneTermEqualSelector("metadata.name", name).String()})
	switch {
	case err == nil:
		for i := range list.Items {
			out[list.Items[i].Namespace] = &list.Items[i]
		}
		return out, nil
	case !apierrors.IsForbidden(err):
		return nil, fmt.Errorf("list secrets %s: %w", name, err)
	}
	err = each(ctx, namespaces, func(ns string) (func(), error) {
		s, err := client.CoreV1().Secrets(ns).Get(ctx, name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("get secret %s/%s: %w", ns, name, err)
		}
		return func() { out[ns] = s }, nil
	})
	return out, err
}

// serviceAccountsIn returns, per namespace, the ServiceAccounts that should
// list our Secret.
func serviceAccountsIn(ctx context.Context, client kubernetes.Interface, namespaces, names []string) (map[string][]*corev1.ServiceAccount, error) {
	out := map[string][]*corev1.ServiceAccount{}
	for _, name := range names {
		opts := metav1.ListOptions{}
		if name != kube.AllServiceAccounts {
			opts.FieldSelector = fields.OneTermEqualSelector("metadata.name", name).String()
		}
		list, err := client.CoreV1().ServiceAccounts(metav1.NamespaceAll).List(ctx, opts)
		if err == nil {
			for i := range list.Items {
				sa := &list.Items[i]
				out[sa.Namespace] = append(out[sa.Namespace], sa)
			}
			continue
		}
		if !apierrors.IsForbidden(err) || name == kube.AllServiceAccounts {
			return nil, fmt.Errorf("list serviceaccounts: %w", err)
		}
		err = each(ctx, namespaces, func(ns string) (func(), error) {
			sa, err := client.CoreV1().ServiceAccounts(ns).Get(ctx, name, metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				return nil, nil
			}
			if err != nil {
				return nil, fmt.Errorf("get serviceaccount %s/%s: %w", ns, name, err)
			}
			return func() { out[ns] = append(out[ns], sa) }, nil
		})
		if err != nil {
			return nil, err
		}
	}
	for ns := range out {
		slices.SortFunc(out[ns], func(a, b *corev1.ServiceAccount) int { return cmp.Compare(a.Name, b.Name) })
	}
	return out, nil
}

// each calls get for every namespace, a few at a time, and runs the apply
// functions it returns one at a time; the first error wins.
func each(ctx context.Context, namespaces []string, get func(ns string) (func(), error)) error {
	var (
		mu       sync.Mutex
		firstErr error
		wg       sync.WaitGroup
	)
	sem := make(chan struct{}, concurrency)
	for _, ns := range namespaces {
		if ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			apply, err := get(ns)
			mu.Lock()
			defer mu.Unlock()
			if err != nil && firstErr == nil {
				firstErr = err
			}
			if apply != nil {
				apply()
			}
		})
	}
	wg.Wait()
	if firstErr == nil {
		firstErr = ctx.Err()
	}
	return firstErr
}

func lease(ctx context.Context, client kubernetes.Interface, ns, name string, now time.Time) (Lease, error) {
	l := Lease{Namespace: ns, Name: name}
	got, err := client.CoordinationV1().Leases(ns).Get(ctx, name, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return l, nil
	}
	if err != nil {
		return l, fmt.Errorf("get lease %s/%s: %w", ns, name, err)
	}
	l.Found = true
	if got.Spec.HolderIdentity != nil {
		l.Holder = *got.Spec.HolderIdentity
	}
	if got.Spec.RenewTime != nil {
		t := got.Spec.RenewTime.Time
		l.RenewedAt = &t
		if got.Spec.LeaseDurationSeconds != nil && l.Holder != "" {
			l.Valid = now.Before(t.Add(time.Duration(*got.Spec.LeaseDurationSeconds) * time.Second))
		}
	}
	return l, nil
}

// WriteJSON prints r as indented JSON.
func WriteJSON(w io.Writer, r *Report) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteTable prints r for a terminal.
func WriteTable(w io.Writer, r *Report, now time.Time) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAMESPACE\tSERVED\tSECRET\tREGISTRIES\tEXPIRES\tSERVICEACCOUNTS\tPROBLEMS")
	for _, n := range r.Namespaces {
		expires := "-"
		if n.ExpiresAt != nil {
			expires = relative(*n.ExpiresAt, now)
		}
		var sas []string
		for _, sa := range n.ServiceAccounts {
			mark := ""
			if !sa.Listed {
				mark = " (not listed)"
			}
			sas = append(sas, sa.Name+mark)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", n.Name, yesNo(n.Served), n.Secret,
			orDash(strings.Join(n.Registries, ",")), expires, orDash(strings.Join(sas, ",")), orDash(strings.Join(n.Problems, "; ")))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	switch l := r.Lease; {
	case !l.Found:
		fmt.Fprintf(w, "Lease %s/%s: not found (no replica has led yet, or another lease namespace or name)\n", l.Namespace, l.Name)
	case l.Holder == "":
		fmt.Fprintf(w, "Lease %s/%s: released, no holder\n", l.Namespace, l.Name)
	default:
		state := "expired"
		if l.Valid {
			state = "valid"
		}
		renewed := "never renewed"
		if l.RenewedAt != nil {
			renewed = "renewed " + relative(*l.RenewedAt, now)
		}
		fmt.Fprintf(w, "Lease %s/%s: held by %s, %s (%s)\n", l.Namespace, l.Name, l.Holder, renewed, state)
	}
	if r.LastRefresh != nil {
		fmt.Fprintf(w, "Last refresh: %s (%s)\n", r.LastRefresh.UTC().Format(time.RFC3339), relative(*r.LastRefresh, now))
	} else {
		fmt.Fprintln(w, "Last refresh: none found")
	}
	_, err := fmt.Fprintf(w, "%d of %d target namespaces served\n", r.Served, r.Targets)
	return err
}

func relative(t, now time.Time) string {
	d := t.Sub(now).Round(time.Second)
	if d >= 0 {
		return "in " + d.String()
	}
	return (-d).String() + " ago"
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
