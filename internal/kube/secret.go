package kube

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	typedcorev1 "k8s.io/client-go/kubernetes/typed/core/v1"
	"k8s.io/client-go/util/retry"
)

// Labels and annotations the controller puts on the Secrets it owns.
const (
	ManagedByLabel       = "app.kubernetes.io/managed-by"
	ManagedByValue       = "kube-ecr-refresher"
	ExpiresAtAnnotation  = "kube-ecr-refresher/expires-at"
	FetchedAtAnnotation  = "kube-ecr-refresher/fetched-at"
	RegistriesAnnotation = "kube-ecr-refresher/registries"
	// ChecksumAnnotation seals what we wrote: a SHA-256 over the data and the
	// three annotations above. A Secret whose seal does not match was changed
	// by someone else and is rewritten at once, so an edited expires-at
	// cannot postpone a refresh and edited data cannot stay until it is due.
	ChecksumAnnotation = "kube-ecr-refresher/checksum"
)

// Annotations that exist only on the informer's cached copy of a Secret (see
// TransformSecret); they are never written to the API server.
const (
	cacheDigestAnnotation = "cache.kube-ecr-refresher/data-sha256"
	cacheHostsAnnotation  = "cache.kube-ecr-refresher/hosts"
	cacheInvalidHosts     = "!invalid"
)

// ErrNotOurs is returned when a Secret of the configured name exists but does not
// carry our managed-by label: it is never modified.
var ErrNotOurs = errors.New("secret exists and is not managed by kube-ecr-refresher")

// Owned reports whether obj carries our managed-by label.
func Owned(obj metav1.Object) bool {
	return obj.GetLabels()[ManagedByLabel] == ManagedByValue
}

// TransformSecret is the informer transform for the Secret cache. It drops the
// Secret's data and managed fields and keeps, in cache-only annotations, the
// data's digest and the registry hosts it holds ("!invalid" when it does not
// parse). That is all the controller compares, and it keeps the cache small
// (no token bytes held for thousands of namespaces).
func TransformSecret(obj any) (any, error) {
	s, ok := obj.(*corev1.Secret)
	if !ok {
		return obj, nil
	}
	if _, done := s.Annotations[cacheHostsAnnotation]; done && s.Data == nil {
		// Already transformed: informers may pass an object through twice,
		// so the transform must be idempotent.
		return s, nil
	}
	s.ManagedFields = nil
	s.Name = strs.get(s.Name)
	s.Labels = strs.internKeys(s.Labels, true)
	if !Owned(s) {
		s.Data, s.StringData = nil, nil
		s.Annotations = strs.internKeys(s.Annotations, true)
		return s, nil
	}
	ann := make(map[string]string, len(s.Annotations)+2)
	maps.Copy(ann, s.Annotations)
	data, ok := s.Data[corev1.DockerConfigJsonKey]
	if !ok {
		ann[cacheHostsAnnotation] = cacheInvalidHosts
	} else if hosts, err := ParseDockerConfigJSON(data); err != nil {
		ann[cacheHostsAnnotation] = cacheInvalidHosts
	} else {
		ann[cacheHostsAnnotation] = strings.Join(hosts, ",")
	}
	if ok {
		ann[cacheDigestAnnotation] = digest(data)
	}
	if len(s.Data) != 1 {
		// Extra or missing keys: make sure the digest never matches.
		ann[cacheDigestAnnotation] = "!keys"
	}
	s.Annotations = strs.internKeys(ann, true) // one token: the same values in every namespace
	s.Data, s.StringData = nil, nil
	return s, nil
}

// SecretAction is what a namespace's Secret needs.
type SecretAction int

// Secret actions returned by PlanSecret.
const (
	SecretUpToDate SecretAction = iota
	SecretCreate
	SecretUpdate
	// SecretRecreate: ours, but of another type, which is immutable.
	SecretRecreate
	// SecretForeign: a Secret of that name exists and is not ours.
	SecretForeign
)

func (a SecretAction) String() string {
	switch a {
	case SecretUpToDate:
		return "up-to-date"
	case SecretCreate:
		return "create"
	case SecretUpdate:
		return "update"
	case SecretRecreate:
		return "recreate"
	case SecretForeign:
		return "foreign"
	}
	return fmt.Sprintf("SecretAction(%d)", int(a))
}

// RefreshDue reports whether a token fetched at fetched and expiring at expires
// is due for refresh at now: less than fraction of its lifetime remains.
func RefreshDue(fetched, expires, now time.Time, fraction float64) bool {
	return !now.Before(RefreshAt(fetched, expires, fraction))
}

// RefreshAt is when a token fetched at fetched and expiring at expires becomes
// due: when fraction of its lifetime remains.
func RefreshAt(fetched, expires time.Time, fraction float64) time.Time {
	lifetime := expires.Sub(fetched)
	if lifetime <= 0 {
		return fetched
	}
	return expires.Add(-time.Duration(float64(lifetime) * fraction))
}

// SecretPlan is what PlanSecret decided, why (for logs), and, for a valid
// Secret kept in place, when it becomes due and must be looked at again.
type SecretPlan struct {
	Action    SecretAction
	Reason    string
	RecheckAt time.Time
}

// PlanSecret decides what the cached Secret (nil when absent; transformed by
// TransformSecret) needs so that it carries a valid token for p's registries.
// A valid Secret for the right registries that is not yet due keeps its token:
// restarts and leader changes make no writes.
func PlanSecret(cached *corev1.Secret, p *Payload, now time.Time, fraction float64) SecretPlan {
	if cached == nil {
		return SecretPlan{Action: SecretCreate, Reason: "missing"}
	}
	if !Owned(cached) {
		return SecretPlan{Action: SecretForeign, Reason: "not managed by kube-ecr-refresher"}
	}
	if cached.Type != corev1.SecretTypeDockerConfigJson {
		return SecretPlan{Action: SecretRecreate, Reason: fmt.Sprintf("type is %q", cached.Type)}
	}
	expires, fetched, broken := intact(cached)
	if broken != "" {
		if !now.Before(p.Token.ExpiresAt) && now.Before(expires) {
			// Never an expired token over a Secret that may still work
			// (a Secret of 0.1 has no seal): repaired with the next valid one.
			return SecretPlan{Action: SecretUpToDate, Reason: broken + ", kept until a valid token"}
		}
		return SecretPlan{Action: SecretUpdate, Reason: broken}
	}
	ann := cached.Annotations
	if ann[cacheDigestAnnotation] == p.Digest && ann[ExpiresAtAnnotation] == formatTime(p.Token.ExpiresAt) &&
		ann[FetchedAtAnnotation] == formatTime(p.Token.FetchedAt) && ann[RegistriesAnnotation] == p.Hosts {
		return SecretPlan{Action: SecretUpToDate, Reason: "current token"}
	}
	if ann[cacheHostsAnnotation] != p.Hosts || ann[RegistriesAnnotation] != p.Hosts {
		return SecretPlan{Action: SecretUpdate, Reason: "registries changed"}
	}
	if RefreshDue(fetched, expires, now, fraction) {
		if !p.Token.ExpiresAt.After(expires) || ann[cacheDigestAnnotation] == p.Digest {
			// Our token is no newer than the one in place, or is the same
			// token: keep it.
			return SecretPlan{Action: SecretUpToDate, Reason: "due, but no newer token yet"}
		}
		if !now.Before(expires) {
			return SecretPlan{Action: SecretUpdate, Reason: "expired"}
		}
		return SecretPlan{Action: SecretUpdate, Reason: "due for refresh"}
	}
	return SecretPlan{Action: SecretUpToDate, Reason: "valid until refresh", RecheckAt: RefreshAt(fetched, expires, fraction)}
}

// intact checks a cached Secret of ours of the right type: its data parses,
// and its seal matches its data and annotations. It returns the token's
// expiry and fetch time, or why the Secret is broken; the expiry is returned
// with a broken fetch time or seal too, whenever the data parses and the
// expiry annotation does (the Secret may still work).
func intact(cached *corev1.Secret) (expires, fetched time.Time, broken string) {
	ann := cached.Annotations
	if hosts, ok := ann[cacheHostsAnnotation]; !ok || hosts == cacheInvalidHosts {
		return time.Time{}, time.Time{}, "malformed data"
	}
	if ann[cacheDigestAnnotation] == "!keys" {
		return time.Time{}, time.Time{}, "unexpected data keys"
	}
	expires, err := time.Parse(time.RFC3339, ann[ExpiresAtAnnotation])
	if err != nil {
		return time.Time{}, time.Time{}, "missing or malformed expiry annotations"
	}
	fetched, err = time.Parse(time.RFC3339, ann[FetchedAtAnnotation])
	if err != nil {
		return expires, time.Time{}, "missing or malformed expiry annotations"
	}
	if ann[ChecksumAnnotation] != Checksum(ann[cacheDigestAnnotation], ann[ExpiresAtAnnotation], ann[FetchedAtAnnotation], ann[RegistriesAnnotation]) {
		return expires, fetched, "data or annotations changed by someone else"
	}
	return expires, fetched, ""
}

// Errors of CheckSecret, beside ErrNotOurs.
var (
	ErrNoSecret      = errors.New("no secret")
	ErrSecretBroken  = errors.New("secret is broken")
	ErrSecretExpired = errors.New("secret holds an expired token")
)

// CheckSecret reports whether the cached Secret (nil when absent) is a usable
// Secret of ours at now: ours (else ErrNotOurs), of the dockerconfigjson type,
// intact, and holding a token that has not expired.
func CheckSecret(cached *corev1.Secret, now time.Time) error {
	switch {
	case cached == nil:
		return ErrNoSecret
	case !Owned(cached):
		return ErrNotOurs
	case cached.Type != corev1.SecretTypeDockerConfigJson:
		return fmt.Errorf("%w: type is %q", ErrSecretBroken, cached.Type)
	}
	expires, _, broken := intact(cached)
	if broken != "" {
		return fmt.Errorf("%w: %s", ErrSecretBroken, broken)
	}
	if !now.Before(expires) {
		return fmt.Errorf("%w (expired at %s)", ErrSecretExpired, formatTime(expires))
	}
	return nil
}

// Checksum is the seal of ChecksumAnnotation: the SHA-256 of the data's
// digest and the expiry, fetch time and registries annotations.
func Checksum(dataDigest, expiresAt, fetchedAt, registries string) string {
	return digest([]byte(strings.Join([]string{dataDigest, expiresAt, fetchedAt, registries}, "\n")))
}

func formatTime(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// DesiredSecret is the Secret we write for p in namespace ns.
func DesiredSecret(ns, name string, p *Payload) *corev1.Secret {
	s := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
	}
	setSecretContent(s, p)
	return s
}

func setSecretContent(s *corev1.Secret, p *Payload) {
	if s.Labels == nil {
		s.Labels = map[string]string{}
	}
	s.Labels[ManagedByLabel] = ManagedByValue
	if s.Annotations == nil {
		s.Annotations = map[string]string{}
	}
	delete(s.Annotations, cacheDigestAnnotation)
	delete(s.Annotations, cacheHostsAnnotation)
	s.Annotations[ExpiresAtAnnotation] = formatTime(p.Token.ExpiresAt)
	s.Annotations[FetchedAtAnnotation] = formatTime(p.Token.FetchedAt)
	s.Annotations[RegistriesAnnotation] = p.Hosts
	s.Annotations[ChecksumAnnotation] = Checksum(p.Digest, formatTime(p.Token.ExpiresAt), formatTime(p.Token.FetchedAt), p.Hosts)
	s.Type = corev1.SecretTypeDockerConfigJson
	s.Data = map[string][]byte{corev1.DockerConfigJsonKey: p.Data}
	s.StringData = nil
}

// ApplySecret carries out action on the Secret ns/name and returns the Secret
// the API server stored (nil when nothing was written, or in a dry run).
// cached is the informer's copy (nil for create); after a conflict the live
// object is read again and ownership is checked again: a Secret that is not
// ours is never modified.
func ApplySecret(ctx context.Context, client typedcorev1.SecretsGetter, ns, name string, cached *corev1.Secret, action SecretAction, p *Payload, dryRun bool) (*corev1.Secret, error) {
	secrets := client.Secrets(ns)
	switch action {
	case SecretUpToDate:
		return nil, nil
	case SecretForeign:
		return nil, ErrNotOurs
	case SecretCreate:
		if dryRun {
			return nil, nil
		}
		created, err := secrets.Create(ctx, DesiredSecret(ns, name, p), metav1.CreateOptions{})
		if err != nil {
			return nil, fmt.Errorf("create secret %s/%s: %w", ns, name, err)
		}
		return created, nil
	case SecretRecreate:
		if dryRun {
			return nil, nil
		}
		uid, rv := cached.UID, cached.ResourceVersion
		err := secrets.Delete(ctx, name, metav1.DeleteOptions{Preconditions: &metav1.Preconditions{UID: &uid, ResourceVersion: &rv}})
		if err != nil && !apierrors.IsNotFound(err) {
			return nil, fmt.Errorf("delete secret %s/%s of the wrong type: %w", ns, name, err)
		}
		created, err := secrets.Create(ctx, DesiredSecret(ns, name, p), metav1.CreateOptions{})
		if err != nil {
			return nil, fmt.Errorf("create secret %s/%s: %w", ns, name, err)
		}
		return created, nil
	case SecretUpdate:
		var updated *corev1.Secret
		first := true
		err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
			cur := cached
			if !first {
				live, err := secrets.Get(ctx, name, metav1.GetOptions{})
				if err != nil {
					return err
				}
				cur = live
			}
			first = false
			if !Owned(cur) {
				return ErrNotOurs
			}
			if cur.Type != corev1.SecretTypeDockerConfigJson {
				return fmt.Errorf("type changed to %q", cur.Type)
			}
			next := cur.DeepCopy()
			setSecretContent(next, p)
			if cur != cached && apiequality.Semantic.DeepEqual(cur, next) {
				// The live Secret holds what we would write already: our
				// earlier write whose answer was lost (a connection reset
				// after the server applied it). Nothing to send.
				updated = cur
				return nil
			}
			if dryRun {
				return nil
			}
			var err error
			updated, err = secrets.Update(ctx, next, metav1.UpdateOptions{})
			return err
		})
		if err != nil {
			return nil, fmt.Errorf("update secret %s/%s: %w", ns, name, err)
		}
		return updated, nil
	}
	return nil, fmt.Errorf("unknown secret action %v", action)
}

// DeleteOwnedSecret deletes the cached Secret if it is ours, with UID and
// resourceVersion preconditions so that a Secret replaced meanwhile (perhaps
// by someone else's) is never deleted. It reports whether it deleted.
func DeleteOwnedSecret(ctx context.Context, client typedcorev1.SecretsGetter, cached *corev1.Secret, dryRun bool) (bool, error) {
	if cached == nil || !Owned(cached) {
		return false, nil
	}
	if dryRun {
		return true, nil
	}
	uid, rv := cached.UID, cached.ResourceVersion
	err := client.Secrets(cached.Namespace).Delete(ctx, cached.Name, metav1.DeleteOptions{
		Preconditions: &metav1.Preconditions{UID: &uid, ResourceVersion: &rv},
	})
	switch {
	case apierrors.IsNotFound(err):
		return false, nil
	case err != nil:
		return false, fmt.Errorf("delete secret %s/%s: %w", cached.Namespace, cached.Name, err)
	}
	return true, nil
}
