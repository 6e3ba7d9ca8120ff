package controlplane

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fakeComponent is a shell script standing in for a control plane binary.
// Run number n (from 1) behaves as runs[min(n, len(runs))-1] says.
const fakeComponent = `#!/bin/sh
n=$(($(cat "$0.runs" 2>/dev/null || echo 0) + 1))
echo "$n" > "$0.runs"
case "$n" in
%s
esac
`

func TestLaunch(t *testing.T) {
	const (
		portTaken = `echo "listen tcp 127.0.0.1:1: bind: address already in use" >&2; exit 1`
		broken    = `echo "bad flag" >&2; exit 2`
		serving   = `touch "$0.serving"; exec sleep 300`
	)
	tests := []struct {
		name         string
		runs         []string // what run 1, 2, ... does; the last repeats
		ready        bool     // whether the readiness check passes once serving
		wantPrepares int
		wantErr      string
		wantRunning  int // processes left in procs for Stop
	}{
		{
			name:         "A component that serves at once is started once",
			runs:         []string{serving},
			ready:        true,
			wantPrepares: 1,
			wantRunning:  1,
		},
		{
			name:         "A component that loses its port is started again on new ports",
			runs:         []string{portTaken, serving},
			ready:        true,
			wantPrepares: 2,
			wantRunning:  1,
		},
		{
			name:         "A component that keeps losing its port is given up after a few attempts",
			runs:         []string{portTaken},
			ready:        true,
			wantPrepares: portAttempts,
			wantErr:      errPortInUse.Error(),
		},
		{
			name:         "A component that fails for another reason is not retried",
			runs:         []string{broken, serving},
			ready:        true,
			wantPrepares: 1,
			wantErr:      "exit status 2",
		},
		{
			name:         "A component that never becomes ready is left running for Stop",
			runs:         []string{serving},
			ready:        false,
			wantPrepares: 1,
			wantErr:      context.DeadlineExceeded.Error(),
			wantRunning:  1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			var cases strings.Builder
			for i, run := range tt.runs {
				pattern := string(rune('1' + i))
				if i == len(tt.runs)-1 {
					pattern = "*"
				}
				cases.WriteString(pattern + ") " + run + " ;;\n")
			}
			script := strings.Replace(fakeComponent, "%s", cases.String(), 1)
			if err := os.WriteFile(filepath.Join(dir, "fake"), []byte(script), 0o755); err != nil {
				t.Fatal(err)
			}
			cp := &ControlPlane{log: slog.New(slog.DiscardHandler), binDir: dir, dir: dir}
			t.Cleanup(func() { _ = cp.Stop() })

			ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
			defer cancel()
			prepares := 0
			err := cp.launch(ctx, "fake", func() ([]string, func(context.Context) error, error) {
				prepares++
				ready := func(context.Context) error {
					if _, err := os.Stat(filepath.Join(dir, "fake.serving")); err != nil || !tt.ready {
						return errors.New("not ready")
					}
					return nil
				}
				return nil, ready, nil
			})

			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("launch: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Errorf("launch error = %v, want one containing %q", err, tt.wantErr)
			}
			if prepares != tt.wantPrepares {
				t.Errorf("prepare called %d times, want %d", prepares, tt.wantPrepares)
			}
			if len(cp.procs) != tt.wantRunning {
				t.Errorf("%d processes left for Stop, want %d", len(cp.procs), tt.wantRunning)
			}
			if err := cp.Stop(); err != nil {
				t.Errorf("Stop: %v", err)
			}
		})
	}
}
