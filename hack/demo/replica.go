package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/kube-ecr-refresher/kube-ecr-refresher/test/proc"
)

// stopGrace is how long a replica has to exit after SIGTERM before SIGKILL.
const stopGrace = 20 * time.Second

// replica is one kube-ecr-refresher process writing to its own log file.
type replica struct {
	name    string
	logPath string
	proc    *proc.Process

	stopping atomic.Bool // set before the demo signals it, so its exit is not news
}

// startReplica starts bin with exactly env. The process gets its own process
// group, so the terminal's Ctrl-C reaches only the demo, which stops the
// replicas in order. The demo narrates an exit it did not ask for.
func startReplica(name, bin, logPath string, env []string, say *narrator) (*replica, error) {
	f, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("create %s log: %w", name, err)
	}
	cmd := exec.Command(bin)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = f, f
	r := &replica{name: name, logPath: logPath}
	// The narration comes before Done is closed: whoever waits on it may
	// read the output.
	pr, err := proc.Start(cmd, func(error) {
		f.Close()
		if !r.stopping.Load() {
			say.event("%s (pid %d) exited: %s; log %s", name, r.pid(), r.proc.ExitStatus(), logPath)
		}
	})
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	r.proc = pr
	return r, nil
}

func (r *replica) pid() int { return r.proc.Pid() }

func (r *replica) exited() bool { return r.proc.Exited() }

// stop sends SIGTERM, waits up to grace, then sends SIGKILL. It returns an
// error if the replica did not exit cleanly on SIGTERM. A replica that had
// already exited is not an error: its exit was narrated when it happened.
func (r *replica) stop(grace time.Duration) (string, error) {
	r.stopping.Store(true)
	if r.exited() {
		return fmt.Sprintf("%s had already exited (%s)", r.name, r.proc.ExitStatus()), nil
	}
	killed, err := r.proc.Stop(grace)
	switch {
	case err != nil:
		return "", fmt.Errorf("stop %s: %w", r.name, err)
	case killed:
		return "", fmt.Errorf("%s (pid %d) ignored SIGTERM for %s and was killed; see %s", r.name, r.pid(), grace, r.logPath)
	case r.proc.Err() != nil:
		return "", fmt.Errorf("%s (pid %d) exited with %v after SIGTERM; see %s", r.name, r.pid(), r.proc.Err(), r.logPath)
	}
	return fmt.Sprintf("%s (pid %d) stopped", r.name, r.pid()), nil
}

// stopReplicas stops every replica at once and waits for all of them.
func stopReplicas(reps []*replica, say *narrator) error {
	var wg sync.WaitGroup
	msgs := make([]string, len(reps))
	errs := make([]error, len(reps))
	for i, r := range reps {
		wg.Go(func() { msgs[i], errs[i] = r.stop(stopGrace) })
	}
	wg.Wait()
	for _, m := range msgs {
		if m != "" {
			say.line("    %s", m)
		}
	}
	return errors.Join(errs...)
}

func allExited(reps []*replica) bool {
	if len(reps) == 0 {
		return false
	}
	for _, r := range reps {
		if !r.exited() {
			return false
		}
	}
	return true
}

func logPaths(reps []*replica) string {
	paths := make([]string, len(reps))
	for i, r := range reps {
		paths[i] = r.logPath
	}
	return strings.Join(paths, ", ")
}
