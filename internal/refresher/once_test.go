package refresher

import (
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/runtime"

	"github.com/kube-ecr-refresher/kube-ecr-refresher/internal/registry"
)

func TestRunOnceFailsUnlessEveryTargetIsServed(t *testing.T) {
	t0 := testT0()
	tests := []struct {
		name  string
		token func(int, time.Time) (registry.Credentials, error)
		// foreignIn holds a Secret of our name that is someone else's.
		foreignIn string
		wantErr   bool
		// want are substrings of the error, in order; notWant must not appear.
		want    []string
		notWant []string
	}{
		{
			name:  "A pass that serves every namespace succeeds",
			token: freshTokens(12 * time.Hour),
		},
		{
			name: "A token already expired by ECR's clock is written but the pass fails, naming every namespace",
			token: func(_ int, now time.Time) (registry.Credentials, error) {
				return token(now, -time.Minute, "pw-1"), nil
			},
			wantErr: true,
			want:    []string{"sync failed in 2 of 2 namespaces (a, b)", "a: secret holds an expired token", "b: secret holds an expired token"},
		},
		{
			name:      "A namespace whose Secret is someone else's fails the pass and is listed apart",
			token:     freshTokens(12 * time.Hour),
			foreignIn: "b",
			wantErr:   true,
			want:      []string{"secret ecr-pull exists but is not managed by kube-ecr-refresher in 1 namespaces (b)"},
			notWant:   []string{"sync failed"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs := []runtime.Object{namespace("a"), namespace("b"), serviceAccount("a", "default"), serviceAccount("b", "default")}
			if tt.foreignIn != "" {
				objs = append(objs, foreignSecret(tt.foreignIn))
			}
			e := newEnv(t, testOptions(), objs...)
			e.clk.SetTime(t0)
			e.tokens.set(tt.token)
			err := e.c.RunOnce(t.Context())
			if (err != nil) != tt.wantErr {
				t.Fatalf("RunOnce = %v, want error: %t", err, tt.wantErr)
			}
			if err == nil {
				return
			}
			msg := err.Error()
			rest := msg
			for _, w := range tt.want {
				i := strings.Index(rest, w)
				if i < 0 {
					t.Fatalf("RunOnce error lacks %q (in order):\n%s", w, msg)
				}
				rest = rest[i+len(w):]
			}
			for _, w := range tt.notWant {
				if strings.Contains(msg, w) {
					t.Errorf("RunOnce error has %q:\n%s", w, msg)
				}
			}
		})
	}
}
