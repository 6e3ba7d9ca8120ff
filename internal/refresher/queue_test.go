package refresher

import (
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8sruntime "k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/util/workqueue"
)

// A create that finds the Secret already there means our cache was behind
// (often our own write): the namespace is retried without an error log line.
func TestProcessNextRetriesQuietlyWhenTheCacheIsBehind(t *testing.T) {
	tests := []struct {
		name      string
		err       error
		wantError bool
	}{
		{name: "already exists is retried quietly", err: apierrors.NewAlreadyExists(schema.GroupResource{Resource: "secrets"}, "s")},
		{name: "a conflict is retried quietly", err: apierrors.NewConflict(schema.GroupResource{Resource: "secrets"}, "s", nil)},
		{name: "forbidden is logged as an error", err: apierrors.NewForbidden(schema.GroupResource{Resource: "secrets"}, "s", nil), wantError: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-a"}}
			opts := testOptions()
			events := &recordingEvents{}
			opts.Events = events
			e := newEnv(t, opts, ns)
			e.client.PrependReactor("create", "secrets", func(k8stesting.Action) (bool, k8sruntime.Object, error) {
				return true, nil, tt.err
			})
			e.setPayload(t, token(e.clk.Now(), 12*time.Hour, "pw"))
			q := workqueue.NewTypedRateLimitingQueue(workqueue.DefaultTypedControllerRateLimiter[string]())
			defer q.ShutDown()
			q.Add("team-a")
			if !e.c.processNext(t.Context(), q) {
				t.Fatal("processNext reported a shut-down queue")
			}
			if got := q.NumRequeues("team-a"); got != 1 {
				t.Errorf("requeues = %d, want 1", got)
			}
			if got := strings.Contains(e.logs.String(), `"level":"ERROR"`); got != tt.wantError {
				t.Errorf("error logged = %v, want %v; logs:\n%s", got, tt.wantError, e.logs.String())
			}
			// Only a real failure is worth a SecretWriteFailed Event.
			if got, want := events.count("SecretFailed") > 0, tt.wantError; got != want {
				t.Errorf("SecretWriteFailed Event posted = %v, want %v", got, want)
			}
		})
	}
}
