package kube

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"sigs.k8s.io/yaml"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

const (
	testNamespace = "team-a"
	testSecret    = "ecr-pull"
)

// cacheCopy is what the Secret informer holds for s.
func cacheCopy(t *testing.T, s *corev1.Secret) *corev1.Secret {
	t.Helper()
	out, err := TransformSecret(s.DeepCopy())
	if err != nil {
		t.Fatalf("TransformSecret: %v", err)
	}
	return out.(*corev1.Secret)
}

// writes returns the create, update, patch and delete actions on resource.
func writes(client *fake.Clientset, resource string) []k8stesting.Action {
	var out []k8stesting.Action
	for _, a := range client.Actions() {
		switch a.GetVerb() {
		case "create", "update", "patch", "delete":
			if a.GetResource().Resource == resource {
				out = append(out, a)
			}
		}
	}
	return out
}

func verbs(actions []k8stesting.Action) []string {
	out := make([]string, 0, len(actions))
	for _, a := range actions {
		out = append(out, a.GetVerb()+" "+a.GetResource().Resource)
	}
	return out
}

func secretsResource() schema.GroupResource { return corev1.Resource("secrets") }

func TestDesiredSecretGolden(t *testing.T) {
	tok := testToken(testT0(), 12*time.Hour, "eyJwYXlsb2FkIjoiZmFrZSJ9-not-a-real-token")
	got := DesiredSecret(testNamespace, testSecret, mustPayload(t, tok))

	b, err := yaml.Marshal(got)
	if err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("testdata", "secret.golden.yaml")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(golden, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatalf("read golden file (run go test -update to create it): %v", err)
	}
	if diff := cmp.Diff(string(want), string(b)); diff != "" {
		t.Errorf("DesiredSecret differs from %s (-want +got); if intended, run go test -update:\n%s", golden, diff)
	}

	// The golden file could be regenerated wrong: check the contract too.
	if got.Type != corev1.SecretTypeDockerConfigJson {
		t.Errorf("type = %q, want %q", got.Type, corev1.SecretTypeDockerConfigJson)
	}
	if got.Labels[ManagedByLabel] != ManagedByValue || ManagedByLabel != "app.kubernetes.io/managed-by" || ManagedByValue != "kube-ecr-refresher" {
		t.Errorf("labels = %v, want app.kubernetes.io/managed-by=kube-ecr-refresher", got.Labels)
	}
	if len(got.Data) != 1 {
		t.Errorf("data keys = %d, want only %s", len(got.Data), corev1.DockerConfigJsonKey)
	}
	var doc struct {
		Auths map[string]map[string]string `json:"auths"`
	}
	if err := json.Unmarshal(got.Data[".dockerconfigjson"], &doc); err != nil {
		t.Fatalf(".dockerconfigjson is not JSON: %v", err)
	}
	wantAuths := map[string]map[string]string{testHost: {
		"username": "AWS",
		"password": tok.Auths[0].Password,
		"auth":     base64.StdEncoding.EncodeToString([]byte("AWS:" + tok.Auths[0].Password)),
	}}
	if diff := cmp.Diff(wantAuths, doc.Auths); diff != "" {
		t.Errorf(".dockerconfigjson auths mismatch (-want +got):\n%s", diff)
	}
	for key, want := range map[string]time.Time{ExpiresAtAnnotation: tok.ExpiresAt, FetchedAtAnnotation: tok.FetchedAt} {
		at, err := time.Parse(time.RFC3339, got.Annotations[key])
		if err != nil || !at.Equal(want) {
			t.Errorf("annotation %s = %q, want %s in RFC 3339", key, got.Annotations[key], want.Format(time.RFC3339))
		}
	}
	for key := range got.Annotations {
		if strings.HasPrefix(key, "cache.") {
			t.Errorf("desired Secret carries cache-only annotation %s", key)
		}
	}
}

func TestTransformSecret(t *testing.T) {
	p := mustPayload(t, testToken(testT0(), 12*time.Hour, "pw", testHost2, testHost))
	managed := []metav1.ManagedFieldsEntry{{Manager: "kubectl", Operation: metav1.ManagedFieldsOperationUpdate}}
	ours := func(data map[string][]byte) *corev1.Secret {
		return &corev1.Secret{
			ObjectMeta: metav1.ObjectMeta{
				Namespace: testNamespace, Name: testSecret, ManagedFields: managed,
				Labels:      map[string]string{ManagedByLabel: ManagedByValue},
				Annotations: map[string]string{ExpiresAtAnnotation: "2026-01-02T15:04:05Z", "team": "a"},
			},
			Type: corev1.SecretTypeDockerConfigJson,
			Data: data,
		}
	}
	withAnnotations := func(s *corev1.Secret, kv ...string) *corev1.Secret {
		s = s.DeepCopy()
		s.ManagedFields, s.Data = nil, nil
		for i := 0; i < len(kv); i += 2 {
			s.Annotations[kv[i]] = kv[i+1]
		}
		return s
	}
	bad := []byte(`{"auths":{"h":{}}}`)

	tests := []struct {
		name string
		in   *corev1.Secret
		want *corev1.Secret
	}{
		{
			name: "Our Secret keeps its data digest and hosts in annotations and drops the data",
			in:   ours(map[string][]byte{corev1.DockerConfigJsonKey: p.Data}),
			want: withAnnotations(ours(nil), cacheDigestAnnotation, p.Digest, cacheHostsAnnotation, testHost+","+testHost2),
		},
		{
			name: "Our Secret with data that does not parse is flagged invalid",
			in:   ours(map[string][]byte{corev1.DockerConfigJsonKey: bad}),
			want: withAnnotations(ours(nil), cacheDigestAnnotation, digest(bad), cacheHostsAnnotation, "!invalid"),
		},
		{
			name: "Our Secret without the dockerconfigjson key is flagged invalid",
			in:   ours(map[string][]byte{"token": []byte("x")}),
			want: withAnnotations(ours(nil), cacheHostsAnnotation, "!invalid"),
		},
		{
			name: "Our Secret without data is flagged invalid",
			in:   ours(nil),
			want: withAnnotations(ours(nil), cacheDigestAnnotation, "!keys", cacheHostsAnnotation, "!invalid"),
		},
		{
			name: "Our Secret with an extra key never matches a digest",
			in:   ours(map[string][]byte{corev1.DockerConfigJsonKey: p.Data, "extra": []byte("x")}),
			want: withAnnotations(ours(nil), cacheDigestAnnotation, "!keys", cacheHostsAnnotation, testHost+","+testHost2),
		},
		{
			name: "A foreign Secret's data is dropped and no cache annotation is added",
			in: &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Namespace: testNamespace, Name: testSecret, ManagedFields: managed, Annotations: map[string]string{"team": "a"}},
				Type:       corev1.SecretTypeOpaque,
				Data:       map[string][]byte{"password": []byte("hunter2")},
				StringData: map[string]string{"more": "secret"},
			},
			want: &corev1.Secret{
				ObjectMeta: metav1.ObjectMeta{Namespace: testNamespace, Name: testSecret, Annotations: map[string]string{"team": "a"}},
				Type:       corev1.SecretTypeOpaque,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := TransformSecret(tt.in.DeepCopy())
			if err != nil {
				t.Fatalf("TransformSecret: %v", err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("TransformSecret mismatch (-want +got):\n%s", diff)
			}
		})
	}

	for _, tt := range tests {
		t.Run("Transforming twice gives the same as once: "+tt.name, func(t *testing.T) {
			once, err := TransformSecret(tt.in.DeepCopy())
			if err != nil {
				t.Fatal(err)
			}
			twice, err := TransformSecret(once.(*corev1.Secret).DeepCopy())
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(once, twice); diff != "" {
				t.Errorf("second transform changed the object (-once +twice):\n%s", diff)
			}
		})
	}

	t.Run("Objects that are not Secrets pass through unchanged", func(t *testing.T) {
		sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default", ManagedFields: managed}}
		got, err := TransformSecret(sa)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(&corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "default", ManagedFields: managed}}, got); diff != "" {
			t.Errorf("TransformSecret changed a ServiceAccount (-want +got):\n%s", diff)
		}
	})
}

func TestRefreshAt(t *testing.T) {
	t0 := testT0()
	tests := []struct {
		name     string
		fetched  time.Time
		expires  time.Time
		fraction float64
		want     time.Time
	}{
		{name: "Half of a 12 hour lifetime remaining is 6 hours after the fetch", fetched: t0, expires: t0.Add(12 * time.Hour), fraction: 0.5, want: t0.Add(6 * time.Hour)},
		{name: "A quarter remaining is 9 hours after the fetch", fetched: t0, expires: t0.Add(12 * time.Hour), fraction: 0.25, want: t0.Add(9 * time.Hour)},
		{name: "A token that expires when fetched is due at once", fetched: t0, expires: t0, fraction: 0.5, want: t0},
		{name: "A token that expired before it was fetched is due at once", fetched: t0, expires: t0.Add(-time.Hour), fraction: 0.5, want: t0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := RefreshAt(tt.fetched, tt.expires, tt.fraction)
			if !got.Equal(tt.want) {
				t.Errorf("RefreshAt = %s, want %s", got, tt.want)
			}
			if RefreshDue(tt.fetched, tt.expires, tt.want.Add(-time.Second), tt.fraction) {
				t.Errorf("RefreshDue one second before %s = true, want false", tt.want)
			}
			if !RefreshDue(tt.fetched, tt.expires, tt.want, tt.fraction) {
				t.Errorf("RefreshDue at %s = false, want true", tt.want)
			}
		})
	}
}

func TestPlanSecret(t *testing.T) {
	t0 := testT0()
	const fraction = 0.5
	old := mustPayload(t, testToken(t0, 12*time.Hour, "old"))                      // due at t0+6h
	fresh := mustPayload(t, testToken(t0.Add(7*time.Hour), 12*time.Hour, "fresh")) // newer than old
	stale := mustPayload(t, testToken(t0.Add(-time.Hour), 12*time.Hour, "stale"))  // expires before old
	twoHosts := mustPayload(t, testToken(t0.Add(7*time.Hour), 12*time.Hour, "fresh", testHost, testHost2))

	written := func(p *Payload) *corev1.Secret { return cacheCopy(t, DesiredSecret(testNamespace, testSecret, p)) }
	edit := func(s *corev1.Secret, f func(s *corev1.Secret)) *corev1.Secret {
		s = s.DeepCopy()
		f(s)
		return cacheCopy(t, s)
	}
	desired := func(p *Payload) *corev1.Secret { return DesiredSecret(testNamespace, testSecret, p) }

	tests := []struct {
		name   string
		cached *corev1.Secret
		p      *Payload
		now    time.Time
		want   SecretPlan
	}{
		{
			name: "A missing Secret is created",
			p:    fresh, now: t0,
			want: SecretPlan{Action: SecretCreate, Reason: "missing"},
		},
		{
			name:   "A Secret without our label is foreign",
			cached: edit(desired(old), func(s *corev1.Secret) { delete(s.Labels, ManagedByLabel) }),
			p:      fresh, now: t0,
			want: SecretPlan{Action: SecretForeign, Reason: "not managed by kube-ecr-refresher"},
		},
		{
			name:   "A Secret with another manager's label value is foreign",
			cached: edit(desired(old), func(s *corev1.Secret) { s.Labels[ManagedByLabel] = "Helm" }),
			p:      fresh, now: t0,
			want: SecretPlan{Action: SecretForeign, Reason: "not managed by kube-ecr-refresher"},
		},
		{
			name:   "Our Secret of the wrong type is recreated",
			cached: edit(desired(fresh), func(s *corev1.Secret) { s.Type = corev1.SecretTypeOpaque }),
			p:      fresh, now: t0.Add(7 * time.Hour),
			want: SecretPlan{Action: SecretRecreate, Reason: `type is "Opaque"`},
		},
		{
			name:   "A Secret identical to what we would write is up to date",
			cached: written(fresh),
			p:      fresh, now: t0.Add(7 * time.Hour),
			want: SecretPlan{Action: SecretUpToDate, Reason: "current token"},
		},
		{
			name:   "An identical Secret stays up to date after its refresh time",
			cached: written(old),
			p:      old, now: t0.Add(11 * time.Hour),
			want: SecretPlan{Action: SecretUpToDate, Reason: "current token"},
		},
		{
			name: "Our Secret with malformed data is updated",
			cached: edit(desired(old), func(s *corev1.Secret) {
				s.Data[corev1.DockerConfigJsonKey] = []byte("garbage")
			}),
			p: fresh, now: t0.Add(time.Hour),
			want: SecretPlan{Action: SecretUpdate, Reason: "malformed data"},
		},
		{
			name:   "Our Secret without data is updated",
			cached: edit(desired(old), func(s *corev1.Secret) { s.Data = nil }),
			p:      fresh, now: t0.Add(time.Hour),
			want: SecretPlan{Action: SecretUpdate, Reason: "malformed data"},
		},
		{
			name:   "A valid Secret for other registries is updated",
			cached: written(old),
			p:      twoHosts, now: t0.Add(time.Hour),
			want: SecretPlan{Action: SecretUpdate, Reason: "registries changed"},
		},
		{
			name: "A valid Secret without expiry annotations is updated",
			cached: edit(desired(old), func(s *corev1.Secret) {
				delete(s.Annotations, ExpiresAtAnnotation)
				delete(s.Annotations, FetchedAtAnnotation)
			}),
			p: fresh, now: t0.Add(time.Hour),
			want: SecretPlan{Action: SecretUpdate, Reason: "missing or malformed expiry annotations"},
		},
		{
			name:   "Our current data with an unparsable expiry is updated",
			cached: edit(desired(fresh), func(s *corev1.Secret) { s.Annotations[ExpiresAtAnnotation] = "tomorrow" }),
			p:      fresh, now: t0.Add(8 * time.Hour),
			want: SecretPlan{Action: SecretUpdate, Reason: "missing or malformed expiry annotations"},
		},
		{
			name:   "A valid Secret with an extra data key is updated",
			cached: edit(desired(old), func(s *corev1.Secret) { s.Data["extra"] = []byte("x") }),
			p:      fresh, now: t0.Add(time.Hour),
			want: SecretPlan{Action: SecretUpdate, Reason: "unexpected data keys"},
		},
		{
			name:   "A valid Secret not yet due keeps its token and is looked at again when due",
			cached: written(old),
			p:      fresh, now: t0.Add(time.Hour),
			want: SecretPlan{Action: SecretUpToDate, Reason: "valid until refresh", RecheckAt: t0.Add(6 * time.Hour)},
		},
		{
			name:   "A valid Secret one second before it is due keeps its token",
			cached: written(old),
			p:      fresh, now: t0.Add(6*time.Hour - time.Second),
			want: SecretPlan{Action: SecretUpToDate, Reason: "valid until refresh", RecheckAt: t0.Add(6 * time.Hour)},
		},
		{
			name:   "A due Secret gets our newer token",
			cached: written(old),
			p:      fresh, now: t0.Add(6 * time.Hour),
			want: SecretPlan{Action: SecretUpdate, Reason: "due for refresh"},
		},
		{
			name: "Data edited under our annotations is repaired at once, long before it is due",
			cached: edit(desired(old), func(s *corev1.Secret) {
				s.Data[corev1.DockerConfigJsonKey] = desired(stale).Data[corev1.DockerConfigJsonKey]
			}),
			p: fresh, now: t0.Add(time.Hour),
			want: SecretPlan{Action: SecretUpdate, Reason: "data or annotations changed by someone else"},
		},
		{
			name: "An expiry edited far into the future cannot postpone the refresh",
			cached: edit(desired(old), func(s *corev1.Secret) {
				s.Annotations[ExpiresAtAnnotation] = "2099-01-01T00:00:00Z"
			}),
			p: fresh, now: t0.Add(time.Hour),
			want: SecretPlan{Action: SecretUpdate, Reason: "data or annotations changed by someone else"},
		},
		{
			name:   "A missing registries annotation is restored",
			cached: edit(desired(old), func(s *corev1.Secret) { delete(s.Annotations, RegistriesAnnotation) }),
			p:      fresh, now: t0.Add(time.Hour),
			want: SecretPlan{Action: SecretUpdate, Reason: "data or annotations changed by someone else"},
		},
		{
			name:   "A missing checksum is restored",
			cached: edit(desired(old), func(s *corev1.Secret) { delete(s.Annotations, ChecksumAnnotation) }),
			p:      fresh, now: t0.Add(time.Hour),
			want: SecretPlan{Action: SecretUpdate, Reason: "data or annotations changed by someone else"},
		},
		{
			name:   "Annotations of others do not break the seal",
			cached: edit(desired(old), func(s *corev1.Secret) { s.Annotations["team"] = "a"; s.Labels["env"] = "prod" }),
			p:      fresh, now: t0.Add(time.Hour),
			want: SecretPlan{Action: SecretUpToDate, Reason: "valid until refresh", RecheckAt: t0.Add(6 * time.Hour)},
		},
		{
			name:   "A token already expired by ECR's clock never replaces a valid Secret",
			cached: written(old),
			p:      mustPayload(t, testToken(t0.Add(7*time.Hour), -time.Minute, "expired")), now: t0.Add(7 * time.Hour),
			want: SecretPlan{Action: SecretUpToDate, Reason: "due, but no newer token yet"},
		},
		{
			name:   "A token already expired by ECR's clock replaces a Secret that expired before it",
			cached: written(old),
			p:      mustPayload(t, testToken(t0.Add(13*time.Hour), -time.Minute, "expired")), now: t0.Add(13 * time.Hour),
			want: SecretPlan{Action: SecretUpdate, Reason: "expired"},
		},
		{
			name:   "A token already expired by ECR's clock is not written again over the same token",
			cached: written(mustPayload(t, testToken(t0, -time.Minute, "expired"))),
			p:      mustPayload(t, testToken(t0.Add(time.Minute), -time.Minute, "expired")), now: t0.Add(time.Minute),
			want: SecretPlan{Action: SecretUpToDate, Reason: "due, but no newer token yet"},
		},
		{
			name:   "A token already expired by ECR's clock never replaces an unsealed Secret that may still work",
			cached: edit(desired(old), func(s *corev1.Secret) { delete(s.Annotations, ChecksumAnnotation) }),
			p:      mustPayload(t, testToken(t0.Add(time.Hour), -time.Minute, "expired")), now: t0.Add(time.Hour),
			want: SecretPlan{Action: SecretUpToDate, Reason: "data or annotations changed by someone else, kept until a valid token"},
		},
		{
			name:   "A token already expired by ECR's clock replaces a Secret whose data is broken",
			cached: edit(desired(old), func(s *corev1.Secret) { s.Data[corev1.DockerConfigJsonKey] = []byte("garbage") }),
			p:      mustPayload(t, testToken(t0.Add(time.Hour), -time.Minute, "expired")), now: t0.Add(time.Hour),
			want: SecretPlan{Action: SecretUpdate, Reason: "malformed data"},
		},
		{
			name:   "A due Secret keeps its token when ours is not newer",
			cached: written(old),
			p:      stale, now: t0.Add(7 * time.Hour),
			want: SecretPlan{Action: SecretUpToDate, Reason: "due, but no newer token yet"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var before *corev1.Secret
			if tt.cached != nil {
				before = tt.cached.DeepCopy()
			}
			got := PlanSecret(tt.cached, tt.p, tt.now, fraction)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("PlanSecret mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(before, tt.cached); diff != "" {
				t.Errorf("PlanSecret modified the cached Secret (-before +after):\n%s", diff)
			}
		})
	}
}

func TestApplySecret(t *testing.T) {
	t0 := testT0()
	old := mustPayload(t, testToken(t0, 12*time.Hour, "old"))
	fresh := mustPayload(t, testToken(t0.Add(7*time.Hour), 12*time.Hour, "fresh"))

	// live is our Secret as stored, with a label and annotation someone else added.
	live := DesiredSecret(testNamespace, testSecret, old)
	live.UID, live.ResourceVersion = "uid-1", "41"
	live.Labels["team"] = "a"
	live.Annotations["note"] = "keep me"

	wantFresh := DesiredSecret(testNamespace, testSecret, fresh)
	wantFresh.UID = "uid-1"
	wantFresh.Labels["team"] = "a"
	wantFresh.Annotations["note"] = "keep me"

	opaque := live.DeepCopy()
	opaque.Type = corev1.SecretTypeOpaque

	foreign := &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: testNamespace, Name: testSecret, UID: "uid-2"},
		Type:       corev1.SecretTypeDockerConfigJson,
		Data:       map[string][]byte{corev1.DockerConfigJsonKey: []byte(`{"auths":{"example.com":{"auth":"dTpw"}}}`)},
	}

	conflictOnce := func(client *fake.Clientset) {
		done := false
		client.PrependReactor("update", "secrets", func(k8stesting.Action) (bool, runtime.Object, error) {
			if done {
				return false, nil, nil
			}
			done = true
			return true, nil, apierrors.NewConflict(secretsResource(), testSecret, errors.New("the object has been modified"))
		})
	}

	tests := []struct {
		name       string
		stored     *corev1.Secret // in the API server
		cached     *corev1.Secret // in the informer (transformed)
		action     SecretAction
		dryRun     bool
		react      func(*fake.Clientset)
		wantErr    error
		wantVerbs  []string
		wantStored *corev1.Secret
	}{
		{
			name:       "A missing Secret is created as desired",
			action:     SecretCreate,
			wantVerbs:  []string{"create secrets"},
			wantStored: DesiredSecret(testNamespace, testSecret, fresh),
		},
		{
			name:       "An update keeps other labels and annotations and writes no cache-only annotation",
			stored:     live,
			cached:     cacheCopy(t, live),
			action:     SecretUpdate,
			wantVerbs:  []string{"update secrets"},
			wantStored: wantFresh,
		},
		{
			name:   "An update after a conflict reads the live Secret again",
			stored: live,
			cached: func() *corev1.Secret {
				s := cacheCopy(t, live)
				s.ResourceVersion = "40"
				return s
			}(),
			action:     SecretUpdate,
			react:      conflictOnce,
			wantVerbs:  []string{"update secrets", "update secrets"},
			wantStored: wantFresh,
		},
		{
			// Our earlier write reached the server but its answer was lost.
			name: "An update after a conflict sends nothing when the live Secret holds what we would write",
			stored: func() *corev1.Secret {
				s := wantFresh.DeepCopy()
				s.ResourceVersion = "42"
				return s
			}(),
			cached:     cacheCopy(t, live),
			action:     SecretUpdate,
			react:      conflictOnce,
			wantVerbs:  []string{"update secrets"}, // the attempt that conflicted, nothing after
			wantStored: wantFresh,
		},
		{
			name: "An update after a conflict leaves a Secret that lost our label untouched",
			stored: func() *corev1.Secret {
				s := live.DeepCopy()
				delete(s.Labels, ManagedByLabel)
				return s
			}(),
			cached:    cacheCopy(t, live),
			action:    SecretUpdate,
			react:     conflictOnce,
			wantErr:   ErrNotOurs,
			wantVerbs: []string{"update secrets"}, // the attempt that conflicted, nothing after
			wantStored: func() *corev1.Secret {
				s := live.DeepCopy()
				delete(s.Labels, ManagedByLabel)
				return s
			}(),
		},
		{
			name:       "An update after a conflict leaves a Secret whose type changed untouched",
			stored:     opaque,
			cached:     cacheCopy(t, live),
			action:     SecretUpdate,
			react:      conflictOnce,
			wantErr:    errAny,
			wantVerbs:  []string{"update secrets"},
			wantStored: opaque,
		},
		{
			name:   "An update of a Secret that is gone fails",
			cached: cacheCopy(t, live),
			action: SecretUpdate,
			react: func(client *fake.Clientset) {
				client.PrependReactor("update", "secrets", func(k8stesting.Action) (bool, runtime.Object, error) {
					return true, nil, apierrors.NewNotFound(secretsResource(), testSecret)
				})
			},
			wantErr:   errAny,
			wantVerbs: []string{"update secrets"},
		},
		{
			name:       "Our Secret of the wrong type is deleted and created again",
			stored:     opaque,
			cached:     cacheCopy(t, opaque),
			action:     SecretRecreate,
			wantVerbs:  []string{"delete secrets", "create secrets"},
			wantStored: DesiredSecret(testNamespace, testSecret, fresh),
		},
		{
			name:       "A foreign Secret is never written",
			stored:     foreign,
			cached:     cacheCopy(t, foreign),
			action:     SecretForeign,
			wantErr:    ErrNotOurs,
			wantStored: foreign,
		},
		{
			name:       "An up-to-date Secret is not written",
			stored:     live,
			cached:     cacheCopy(t, live),
			action:     SecretUpToDate,
			wantStored: live,
		},
		{name: "A dry run does not create", action: SecretCreate, dryRun: true},
		{name: "A dry run does not update", stored: live, cached: cacheCopy(t, live), action: SecretUpdate, dryRun: true, wantStored: live},
		{name: "A dry run does not recreate", stored: opaque, cached: cacheCopy(t, opaque), action: SecretRecreate, dryRun: true, wantStored: opaque},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var objs []runtime.Object
			if tt.stored != nil {
				objs = append(objs, tt.stored.DeepCopy())
			}
			client := fake.NewClientset(objs...)
			if tt.react != nil {
				tt.react(client)
			}
			var cachedBefore *corev1.Secret
			if tt.cached != nil {
				cachedBefore = tt.cached.DeepCopy()
			}

			_, err := ApplySecret(t.Context(), client.CoreV1(), testNamespace, testSecret, tt.cached, tt.action, fresh, tt.dryRun)
			switch {
			case tt.wantErr == errAny && err == nil:
				t.Errorf("ApplySecret succeeded, want an error")
			case tt.wantErr != errAny && !errors.Is(err, tt.wantErr):
				t.Errorf("ApplySecret error = %v, want %v", err, tt.wantErr)
			}

			if diff := cmp.Diff(tt.wantVerbs, verbs(writes(client, "secrets")), cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("writes mismatch (-want +got):\n%s", diff)
			}
			got, err := client.CoreV1().Secrets(testNamespace).Get(context.Background(), testSecret, metav1.GetOptions{})
			if apierrors.IsNotFound(err) {
				got = nil
			} else if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.wantStored, got, ignoreServerFields()); diff != "" {
				t.Errorf("stored Secret mismatch (-want +got):\n%s", diff)
			}
			if got != nil {
				for key := range got.Annotations {
					if strings.HasPrefix(key, "cache.kube-ecr-refresher/") {
						t.Errorf("cache-only annotation %s was written to the API server", key)
					}
				}
			}
			if diff := cmp.Diff(cachedBefore, tt.cached); diff != "" {
				t.Errorf("ApplySecret modified the cached Secret (-before +after):\n%s", diff)
			}
		})
	}
}

// errAny in a test table stands for any non-nil error.
var errAny = errors.New("any error")

// ignoreServerFields ignores what the fake API server fills in.
func ignoreServerFields() cmp.Option {
	return cmp.Options{
		cmpopts.IgnoreTypes(metav1.TypeMeta{}),
		cmpopts.IgnoreFields(metav1.ObjectMeta{}, "ResourceVersion", "ManagedFields", "CreationTimestamp", "UID"),
	}
}

func TestCheckSecret(t *testing.T) {
	t0 := testT0()
	p := mustPayload(t, testToken(t0, 12*time.Hour, "pw"))
	ours := cacheCopy(t, DesiredSecret(testNamespace, testSecret, p))
	edited := DesiredSecret(testNamespace, testSecret, p)
	edited.Annotations[ExpiresAtAnnotation] = "2099-01-01T00:00:00Z"
	foreign := DesiredSecret(testNamespace, testSecret, p)
	delete(foreign.Labels, ManagedByLabel)
	tests := []struct {
		name   string
		cached *corev1.Secret
		now    time.Time
		want   error
	}{
		{name: "A missing Secret is not usable", now: t0, want: ErrNoSecret},
		{name: "Someone else's Secret is not ours", cached: cacheCopy(t, foreign), now: t0, want: ErrNotOurs},
		{name: "Our intact Secret before its expiry is usable", cached: ours, now: t0.Add(12*time.Hour - time.Second)},
		{name: "Our Secret at its expiry is expired", cached: ours, now: t0.Add(12 * time.Hour), want: ErrSecretExpired},
		{name: "An edited Secret is broken", cached: cacheCopy(t, edited), now: t0, want: ErrSecretBroken},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := CheckSecret(tt.cached, tt.now)
			if !errors.Is(err, tt.want) || (tt.want == nil) != (err == nil) {
				t.Errorf("CheckSecret = %v, want %v", err, tt.want)
			}
		})
	}
}

func TestDeleteOwnedSecret(t *testing.T) {
	ours := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "s", UID: "u1", ResourceVersion: "7",
		Labels: map[string]string{ManagedByLabel: ManagedByValue}}}
	foreign := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Namespace: "b", Name: "s", UID: "u2", ResourceVersion: "8"}}
	tests := []struct {
		name       string
		secret     *corev1.Secret
		dryRun     bool
		wantDelete bool
		wantGone   bool
	}{
		{name: "our secret is deleted", secret: ours, wantDelete: true, wantGone: true},
		{name: "a foreign secret is never deleted", secret: foreign},
		{name: "a dry run deletes nothing", secret: ours, dryRun: true, wantDelete: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client := fake.NewClientset(tt.secret.DeepCopy())
			deleted, err := DeleteOwnedSecret(t.Context(), client.CoreV1(), tt.secret, tt.dryRun)
			if err != nil || deleted != tt.wantDelete {
				t.Fatalf("DeleteOwnedSecret = %v, %v; want %v, nil", deleted, err, tt.wantDelete)
			}
			_, err = client.CoreV1().Secrets(tt.secret.Namespace).Get(t.Context(), "s", metav1.GetOptions{})
			if gone := apierrors.IsNotFound(err); gone != tt.wantGone {
				t.Errorf("gone = %v, want %v", gone, tt.wantGone)
			}
		})
	}
}
