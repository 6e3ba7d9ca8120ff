package proc

import (
	"os/exec"
	"syscall"
	"testing"
	"time"
)

func TestStop(t *testing.T) {
	tests := []struct {
		name       string
		script     string
		wantKilled bool
	}{
		{name: "A process that exits on SIGTERM is not killed", script: "sleep 60 & wait"},
		{name: "A process that ignores SIGTERM is killed after the grace period", script: `trap "" TERM; sleep 60 & wait; sleep 60`, wantKilled: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Start(exec.Command("/bin/sh", "-c", tt.script), nil)
			if err != nil {
				t.Fatal(err)
			}
			time.Sleep(100 * time.Millisecond) // let the shell set its trap
			killed, err := p.Stop(500 * time.Millisecond)
			if err != nil || killed != tt.wantKilled {
				t.Fatalf("Stop = %v, %v; want killed %v", killed, err, tt.wantKilled)
			}
			if !p.Exited() {
				t.Error("Stop returned before the process exited")
			}
			// The whole group is gone, the shell's sleep child too (once
			// its new parent has reaped it).
			deadline := time.Now().Add(5 * time.Second)
			for syscall.Kill(-p.Pid(), 0) == nil {
				if time.Now().After(deadline) {
					t.Fatal("the process group still has members")
				}
				time.Sleep(20 * time.Millisecond)
			}
		})
	}
}

func TestOnExitRunsBeforeDone(t *testing.T) {
	ran := make(chan error, 1)
	p, err := Start(exec.Command("/bin/sh", "-c", "exit 3"), func(err error) { ran <- err })
	if err != nil {
		t.Fatal(err)
	}
	<-p.Done()
	select {
	case err := <-ran:
		if err == nil {
			t.Error("onExit got a nil error for exit status 3")
		}
	default:
		t.Fatal("Done closed before onExit ran")
	}
	if p.ExitCode() != 3 {
		t.Errorf("ExitCode = %d, want 3", p.ExitCode())
	}
}
