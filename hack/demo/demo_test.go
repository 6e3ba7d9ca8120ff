//go:build integration

package main

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

func TestRunExitAfterReadyTellsTheStoryAndLeavesNothingBehind(t *testing.T) {
	var out strings.Builder
	err := run(t.Context(), options{exitAfterReady: true}, &out)
	output := out.String()
	t.Logf("demo output:\n%s", output)
	if err != nil {
		t.Fatalf("run: %v", err)
	}

	checks := []struct {
		name    string
		pattern string
	}{
		{"A replica is named as the leader", `(?m)^Leader: replica-[12] \(pid \d+\) holds the Lease default/kube-ecr-refresher`},
		{"The namespace created while running is reported served", `(?m)demo-a served \S+ after it was created`},
		{"The namespace with a foreign Secret is reported left alone", `(?m)demo-c left alone: its Secret ecr-pull-secret is not labelled`},
		{"demo-a has our Secret and its ServiceAccount lists it", `(?m)^demo-a\s+ecr-pull-secret\s+\d{4}-\d\d-\d\dT\S+Z\s+ecr-pull-secret$`},
		{"demo-b keeps its own entry next to ours", `(?m)^demo-b\s+ecr-pull-secret\s+\d{4}-\d\d-\d\dT\S+Z\s+team-registry, ecr-pull-secret$`},
		{"demo-c keeps its foreign Secret and gets no entry", `(?m)^demo-c\s+ecr-pull-secret \(not ours: left alone\)\s+-\s+-$`},
		{"The kubeconfig is printed", `(?m)^  export KUBECONFIG=\S+/admin\.kubeconfig$`},
		{"Both replicas are stopped by the demo", `(?s)replica-1 \(pid \d+\) stopped.*replica-2 \(pid \d+\) stopped`},
		{"The demo says it cleaned up", `(?m)^cleaned up$`},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			if !regexp.MustCompile(c.pattern).MatchString(output) {
				t.Errorf("output does not match %s", c.pattern)
			}
		})
	}

	t.Run("Every process the demo printed is gone", func(t *testing.T) {
		pids := regexp.MustCompile(`pid (\d+)`).FindAllStringSubmatch(output, -1)
		if len(pids) == 0 {
			t.Fatal("output names no pid")
		}
		for _, m := range pids {
			pid, _ := strconv.Atoi(m[1])
			if err := syscall.Kill(pid, 0); !errors.Is(err, syscall.ESRCH) {
				t.Errorf("process %d still exists (kill 0: %v)", pid, err)
			}
		}
	})

	t.Run("No child process of the test remains", func(t *testing.T) {
		if runtime.GOOS != "linux" {
			t.Skip("reads /proc")
		}
		if children := childProcesses(t, os.Getpid()); len(children) > 0 {
			t.Errorf("child processes remain: %v", children)
		}
	})

	t.Run("The working dir is removed", func(t *testing.T) {
		m := regexp.MustCompile(`working dir: (\S+)`).FindStringSubmatch(output)
		if m == nil {
			t.Fatal("output names no working dir")
		}
		if _, err := os.Stat(m[1]); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("stat %s: %v, want it gone", m[1], err)
		}
	})
}

// childProcesses lists "pid command" of every process whose parent is ppid.
func childProcesses(t *testing.T, ppid int) []string {
	t.Helper()
	stats, err := filepath.Glob("/proc/[0-9]*/stat")
	if err != nil {
		t.Fatalf("list /proc: %v", err)
	}
	var out []string
	for _, path := range stats {
		b, err := os.ReadFile(path)
		if err != nil {
			continue // exited meanwhile
		}
		// pid (comm) state ppid ...; comm may hold spaces and parentheses.
		s := string(b)
		end := strings.LastIndexByte(s, ')')
		start := strings.IndexByte(s, '(')
		if start < 0 || end < start {
			continue
		}
		fields := strings.Fields(s[end+1:])
		if len(fields) < 2 || fields[1] != strconv.Itoa(ppid) {
			continue
		}
		out = append(out, strings.TrimSpace(s[:start])+" "+s[start+1:end])
	}
	return out
}
