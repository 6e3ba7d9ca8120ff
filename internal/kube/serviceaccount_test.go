package kube

import (
	"errors"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

func serviceAccount(pullSecrets ...string) *corev1.ServiceAccount {
	sa := &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Namespace: testNamespace, Name: "default", UID: "sa-uid"}}
	for _, s := range pullSecrets {
		sa.ImagePullSecrets = append(sa.ImagePullSecrets, corev1.LocalObjectReference{Name: s})
	}
	return sa
}

// recorded marks sa as having had testSecret added by us.
func recorded(sa *corev1.ServiceAccount) *corev1.ServiceAccount {
	sa.Annotations = map[string]string{AddedPullSecretsAnnotation: testSecret}
	return sa
}

func pullSecretNames(sa *corev1.ServiceAccount) []string {
	var out []string
	for _, r := range sa.ImagePullSecrets {
		out = append(out, r.Name)
	}
	return out
}

func TestEnsurePullSecret(t *testing.T) {
	conflictOnce := func(client *fake.Clientset) {
		done := false
		client.PrependReactor("update", "serviceaccounts", func(k8stesting.Action) (bool, runtime.Object, error) {
			if done {
				return false, nil, nil
			}
			done = true
			return true, nil, apierrors.NewConflict(corev1.Resource("serviceaccounts"), "default", errors.New("the object has been modified"))
		})
	}

	tests := []struct {
		name      string
		stored    *corev1.ServiceAccount // in the API server; nil: gone
		cached    *corev1.ServiceAccount
		dryRun    bool
		react     func(*fake.Clientset)
		wantWrote bool
		wantErr   bool
		wantVerbs []string // get and update actions, in order
		wantNames []string // the stored imagePullSecrets afterwards
	}{
		{
			name:      "Our Secret is appended after the existing entries, which keep their order",
			stored:    serviceAccount("zeta", "alpha"),
			cached:    serviceAccount("zeta", "alpha"),
			wantWrote: true,
			wantVerbs: []string{"update"},
			wantNames: []string{"zeta", "alpha", testSecret},
		},
		{
			name:      "A ServiceAccount without imagePullSecrets gets ours",
			stored:    serviceAccount(),
			cached:    serviceAccount(),
			wantWrote: true,
			wantVerbs: []string{"update"},
			wantNames: []string{testSecret},
		},
		{
			name:      "A ServiceAccount that lists our Secret and records it is not written",
			stored:    recorded(serviceAccount("alpha", testSecret, "zeta")),
			cached:    recorded(serviceAccount("alpha", testSecret, "zeta")),
			wantNames: []string{"alpha", testSecret, "zeta"},
		},
		{
			name:      "An entry for our Secret without our record is adopted: recorded, the list unchanged",
			stored:    serviceAccount("alpha", testSecret, "zeta"),
			cached:    serviceAccount("alpha", testSecret, "zeta"),
			wantWrote: true,
			wantVerbs: []string{"update"},
			wantNames: []string{"alpha", testSecret, "zeta"},
		},
		{
			name:      "A conflict is retried on a fresh read, keeping the entry added meanwhile",
			stored:    serviceAccount("alpha", "added-meanwhile"),
			cached:    serviceAccount("alpha"),
			react:     conflictOnce,
			wantWrote: true,
			wantVerbs: []string{"update", "get", "update"},
			wantNames: []string{"alpha", "added-meanwhile", testSecret},
		},
		{
			name:      "A conflict with a writer that added and recorded our Secret meanwhile needs no second write",
			stored:    recorded(serviceAccount("alpha", testSecret)),
			cached:    serviceAccount("alpha"),
			react:     conflictOnce,
			wantVerbs: []string{"update", "get"},
			wantNames: []string{"alpha", testSecret},
		},
		{
			name:      "A ServiceAccount that is gone is not an error",
			cached:    serviceAccount("alpha"),
			wantVerbs: []string{"update"},
		},
		{
			name:      "A ServiceAccount deleted during a conflict is not an error",
			cached:    serviceAccount("alpha"),
			react:     conflictOnce,
			wantVerbs: []string{"update", "get"},
		},
		{
			name:   "Other update errors are returned",
			stored: serviceAccount("alpha"),
			cached: serviceAccount("alpha"),
			react: func(client *fake.Clientset) {
				client.PrependReactor("update", "serviceaccounts", func(k8stesting.Action) (bool, runtime.Object, error) {
					return true, nil, apierrors.NewForbidden(corev1.Resource("serviceaccounts"), "default", errors.New("denied"))
				})
			},
			wantErr:   true,
			wantVerbs: []string{"update"},
			wantNames: []string{"alpha"},
		},
		{
			name:      "A dry run reports the write without making it",
			stored:    serviceAccount("alpha"),
			cached:    serviceAccount("alpha"),
			dryRun:    true,
			wantWrote: true,
			wantNames: []string{"alpha"},
		},
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
			before := tt.cached.DeepCopy()

			written, err := EnsurePullSecret(t.Context(), client.CoreV1(), tt.cached, testSecret, tt.dryRun)
			wrote := written != nil
			if (err != nil) != tt.wantErr {
				t.Fatalf("EnsurePullSecret error = %v, want error: %t", err, tt.wantErr)
			}
			if wrote != tt.wantWrote {
				t.Errorf("EnsurePullSecret wrote = %t, want %t", wrote, tt.wantWrote)
			}

			var gotVerbs []string
			for _, a := range client.Actions() {
				if a.GetResource().Resource == "serviceaccounts" {
					gotVerbs = append(gotVerbs, a.GetVerb())
				}
			}
			if diff := cmp.Diff(tt.wantVerbs, gotVerbs, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("actions mismatch (-want +got):\n%s", diff)
			}
			if tt.stored != nil {
				got, err := client.CoreV1().ServiceAccounts(testNamespace).Get(t.Context(), "default", metav1.GetOptions{})
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(tt.wantNames, pullSecretNames(got)); diff != "" {
					t.Errorf("imagePullSecrets mismatch (-want +got):\n%s", diff)
				}
			}
			if diff := cmp.Diff(before, tt.cached); diff != "" {
				t.Errorf("EnsurePullSecret modified the cached ServiceAccount (-before +after):\n%s", diff)
			}
		})
	}
}

func TestHasPullSecret(t *testing.T) {
	tests := []struct {
		name string
		sa   *corev1.ServiceAccount
		want bool
	}{
		{name: "An empty list does not have it", sa: serviceAccount(), want: false},
		{name: "A list with other names does not have it", sa: serviceAccount("ecr-pull-2", "other"), want: false},
		{name: "A list naming it has it", sa: serviceAccount("other", testSecret), want: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := HasPullSecret(tt.sa, testSecret); got != tt.want {
				t.Errorf("HasPullSecret = %t, want %t", got, tt.want)
			}
		})
	}
}

func TestRemovePullSecretRemovesOnlyWhatWeAdded(t *testing.T) {
	added := map[string]string{AddedPullSecretsAnnotation: "ecr", "team": "x"}
	tests := []struct {
		name      string
		sa        *corev1.ServiceAccount
		wantWrote bool
		wantNames []string
		wantAnn   map[string]string
	}{
		{
			name: "An entry we added is removed, with its record, and every other entry keeps its place",
			sa: &corev1.ServiceAccount{
				ObjectMeta:       metav1.ObjectMeta{Namespace: "a", Name: "default", ResourceVersion: "1", Annotations: added},
				ImagePullSecrets: []corev1.LocalObjectReference{{Name: "docker-hub"}, {Name: "ecr"}, {Name: "quay"}},
			},
			wantWrote: true,
			wantNames: []string{"docker-hub", "quay"},
			wantAnn:   map[string]string{"team": "x"},
		},
		{
			name: "An entry someone else added under our Secret's name is never removed",
			sa: &corev1.ServiceAccount{
				ObjectMeta:       metav1.ObjectMeta{Namespace: "a", Name: "default", ResourceVersion: "1"},
				ImagePullSecrets: []corev1.LocalObjectReference{{Name: "docker-hub"}, {Name: "ecr"}},
			},
			wantNames: []string{"docker-hub", "ecr"},
		},
		{
			name: "A record of another Secret we added is kept",
			sa: &corev1.ServiceAccount{
				ObjectMeta: metav1.ObjectMeta{Namespace: "a", Name: "default", ResourceVersion: "1",
					Annotations: map[string]string{AddedPullSecretsAnnotation: "ecr,old-ecr"}},
				ImagePullSecrets: []corev1.LocalObjectReference{{Name: "ecr"}, {Name: "old-ecr"}},
			},
			wantWrote: true,
			wantNames: []string{"old-ecr"},
			wantAnn:   map[string]string{AddedPullSecretsAnnotation: "old-ecr"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			client := fake.NewClientset(tt.sa.DeepCopy())
			before := tt.sa.DeepCopy()
			written, err := RemovePullSecret(t.Context(), client.CoreV1(), tt.sa, "ecr", false)
			if err != nil || (written != nil) != tt.wantWrote {
				t.Fatalf("RemovePullSecret = %v, %v; want a write: %t", written, err, tt.wantWrote)
			}
			got, _ := client.CoreV1().ServiceAccounts("a").Get(t.Context(), "default", metav1.GetOptions{})
			if diff := cmp.Diff(tt.wantNames, pullSecretNames(got)); diff != "" {
				t.Errorf("imagePullSecrets (-want +got):\n%s", diff)
			}
			if tt.wantWrote {
				if diff := cmp.Diff(tt.wantAnn, got.Annotations, cmpopts.EquateEmpty()); diff != "" {
					t.Errorf("annotations (-want +got):\n%s", diff)
				}
			}
			if diff := cmp.Diff(before, tt.sa); diff != "" {
				t.Errorf("the cached object was modified (-before +after):\n%s", diff)
			}
			n := len(client.Actions())
			if written, _ := RemovePullSecret(t.Context(), client.CoreV1(), got, "ecr", false); written != nil || len(client.Actions()) != n {
				t.Errorf("a second removal wrote")
			}
		})
	}
}

// Cleanup after serving: what EnsurePullSecret added, RemovePullSecret takes
// away, leaving the ServiceAccount as it was.
func TestEnsureThenRemoveRestoresTheServiceAccount(t *testing.T) {
	orig := &corev1.ServiceAccount{
		ObjectMeta:       metav1.ObjectMeta{Namespace: "a", Name: "default", ResourceVersion: "1", Annotations: map[string]string{"team": "x"}},
		ImagePullSecrets: []corev1.LocalObjectReference{{Name: "docker-hub"}},
	}
	client := fake.NewClientset(orig.DeepCopy())
	added, err := EnsurePullSecret(t.Context(), client.CoreV1(), orig, "ecr", false)
	if err != nil || added == nil {
		t.Fatalf("EnsurePullSecret = %v, %v", added, err)
	}
	if got := added.Annotations[AddedPullSecretsAnnotation]; got != "ecr" {
		t.Errorf("record after adding = %q, want %q", got, "ecr")
	}
	removed, err := RemovePullSecret(t.Context(), client.CoreV1(), added, "ecr", false)
	if err != nil || removed == nil {
		t.Fatalf("RemovePullSecret = %v, %v", removed, err)
	}
	if diff := cmp.Diff(orig.ImagePullSecrets, removed.ImagePullSecrets); diff != "" {
		t.Errorf("imagePullSecrets (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(orig.Annotations, removed.Annotations); diff != "" {
		t.Errorf("annotations (-want +got):\n%s", diff)
	}
}
