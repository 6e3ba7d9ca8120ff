// Package proc owns the child processes of the tests, the demo and the bench:
// each in its own process group, killed by the kernel if its parent dies.
package proc

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"syscall"
	"time"
)

// Process is one started child process.
type Process struct {
	cmd  *exec.Cmd
	done chan struct{} // closed once the process has exited and been reaped
	err  error         // Wait's result; read only after done is closed
}

// Start starts cmd (its path, arguments, environment and output set by the
// caller) in its own process group, so Stop reaches everything it spawned
// and a terminal's Ctrl-C reaches only the parent, and, on Linux, with
// SIGKILL delivered to it if the parent dies. onExit, if not nil, runs once
// the process is reaped, with Wait's error, before Done is closed.
func Start(cmd *exec.Cmd, onExit func(error)) (*Process, error) {
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", cmd.Path, err)
	}
	p := &Process{cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		if onExit != nil {
			onExit(p.err)
		}
		close(p.done)
	}()
	return p, nil
}

// Pid is the process id, also its process group id.
func (p *Process) Pid() int { return p.cmd.Process.Pid }

// Done is closed once the process has exited.
func (p *Process) Done() <-chan struct{} { return p.done }

// Exited reports whether the process has exited.
func (p *Process) Exited() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// Err is Wait's result (nil for exit status 0); valid once Done is closed.
func (p *Process) Err() error { return p.err }

// ExitStatus describes how the process ended; valid once Done is closed.
func (p *Process) ExitStatus() string {
	if p.err == nil {
		return "exit status 0"
	}
	return p.err.Error()
}

// ExitCode is the exit code, -1 when a signal ended the process; valid once
// Done is closed.
func (p *Process) ExitCode() int { return p.cmd.ProcessState.ExitCode() }

// Signal sends sig to the process alone; a process that is gone is not an error.
func (p *Process) Signal(sig syscall.Signal) error {
	if err := p.cmd.Process.Signal(sig); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return err
	}
	return nil
}

// Stop sends SIGTERM to the process group, waits up to grace for the process
// to exit, then sends SIGKILL to the group and waits. It reports whether
// SIGKILL was needed. A process that had already exited is left as it is.
func (p *Process) Stop(grace time.Duration) (killed bool, err error) {
	if p.Exited() {
		return false, nil
	}
	if err := signalGroup(p.Pid(), syscall.SIGTERM); err != nil {
		return false, fmt.Errorf("terminate pid %d: %w", p.Pid(), err)
	}
	t := time.NewTimer(grace)
	defer t.Stop()
	select {
	case <-p.done:
		return false, nil
	case <-t.C:
	}
	if err := signalGroup(p.Pid(), syscall.SIGKILL); err != nil {
		return true, fmt.Errorf("kill pid %d: %w", p.Pid(), err)
	}
	<-p.done
	return true, nil
}

// signalGroup sends sig to every process in the group; a group that is
// already gone is not an error.
func signalGroup(pgid int, sig syscall.Signal) error {
	if err := syscall.Kill(-pgid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return err
	}
	return nil
}
