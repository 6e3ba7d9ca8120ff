package controlplane

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestLastLines(t *testing.T) {
	tests := []struct {
		name string
		data string
		n    int
		want string
	}{
		{name: "Empty input gives nothing", data: "", n: 3, want: ""},
		{name: "Fewer lines than asked gives them all", data: "a\nb\n", n: 3, want: "a\nb\n"},
		{name: "More lines than asked gives the last ones", data: "a\nb\nc\nd\n", n: 2, want: "c\nd\n"},
		{name: "A missing final newline is added", data: "a\nb\nc", n: 2, want: "b\nc\n"},
		{name: "Exactly as many lines as asked gives them all", data: "a\nb\n", n: 2, want: "a\nb\n"},
		{name: "Zero lines gives nothing", data: "a\n", n: 0, want: ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := lastLines([]byte(tt.data), tt.n); got != tt.want {
				t.Errorf("lastLines(%q, %d) = %q, want %q", tt.data, tt.n, got, tt.want)
			}
		})
	}
}

func TestProcessStop(t *testing.T) {
	tests := []struct {
		name    string
		script  string
		wait    time.Duration // before stop
		grace   time.Duration
		wantErr string
		minTook time.Duration
	}{
		{
			name:   "A process that honours SIGTERM ends without waiting for the grace period",
			script: "exec sleep 300",
			grace:  time.Minute,
		},
		{
			name: "A process group that ignores SIGTERM is killed after the grace period",
			// Ignored signals stay ignored across exec, so the sleeps ignore it too.
			script:  `trap "" TERM; while :; do sleep 1; done`,
			wait:    200 * time.Millisecond, // let the shell install its trap
			grace:   300 * time.Millisecond,
			minTook: 300 * time.Millisecond,
		},
		{
			name:    "A process that already exited is reported",
			script:  "exit 3",
			wait:    500 * time.Millisecond,
			grace:   time.Second,
			wantErr: "had exited before stop: exit status 3",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := startProcess("sh", filepath.Join(t.TempDir(), "sh.log"), "/bin/sh", []string{"-c", tt.script})
			if err != nil {
				t.Fatal(err)
			}
			time.Sleep(tt.wait)
			began := time.Now()
			err = p.stop(tt.grace)
			took := time.Since(began)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Fatalf("stop: %v", err)
			case tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)):
				t.Fatalf("stop error = %v, want one containing %q", err, tt.wantErr)
			}
			if took < tt.minTook {
				t.Errorf("stop took %s, want at least %s", took, tt.minTook)
			}
			if tt.minTook == 0 && took > tt.grace/2 {
				t.Errorf("stop took %s, want well under the grace period %s", took, tt.grace)
			}
			select {
			case <-p.Done():
			default:
				t.Error("process still running after stop")
			}
		})
	}
}

func TestProcessExited(t *testing.T) {
	tests := []struct {
		name       string
		previous   string // already in the log from an earlier attempt
		output     string
		wantInUse  bool
		wantSubstr string
	}{
		{
			name:      "A bind failure is reported as a port in use",
			output:    "listen tcp 127.0.0.1:2379: bind: address already in use",
			wantInUse: true,
		},
		{
			name:       "Any other failure is reported with its exit status",
			output:     "something else broke",
			wantSubstr: "exit status 1",
		},
		{
			name:       "A bind failure of an earlier attempt in the same log does not count",
			previous:   "listen tcp 127.0.0.1:2379: bind: address already in use\n",
			output:     "something else broke",
			wantSubstr: "exit status 1",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logPath := filepath.Join(t.TempDir(), "x.log")
			if err := os.WriteFile(logPath, []byte(tt.previous), 0o600); err != nil {
				t.Fatal(err)
			}
			p, err := startProcess("x", logPath, "/bin/sh", []string{"-c", "echo '" + tt.output + "' >&2; exit 1"})
			if err != nil {
				t.Fatal(err)
			}
			<-p.Done()
			err = p.exited()
			if got := errors.Is(err, errPortInUse); got != tt.wantInUse {
				t.Errorf("exited() = %v; is errPortInUse = %v, want %v", err, got, tt.wantInUse)
			}
			if !strings.Contains(err.Error(), tt.wantSubstr) {
				t.Errorf("exited() = %v, want it to contain %q", err, tt.wantSubstr)
			}
		})
	}
}
