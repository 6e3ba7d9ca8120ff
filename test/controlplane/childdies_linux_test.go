package controlplane

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"
)

// orphanHelperEnv makes TestChildDiesWithParent act as the parent process.
const orphanHelperEnv = "TESTENV_PDEATHSIG_HELPER_LOG"

// TestChildDiesWithParent runs this test binary as a parent that starts a
// child with startProcess, SIGKILLs the parent, and checks that the kernel
// killed the child too, as it must when a test binary crashes or times out.
func TestChildDiesWithParent(t *testing.T) {
	if logPath := os.Getenv(orphanHelperEnv); logPath != "" {
		p, err := startProcess("sleep", logPath, "/bin/sleep", []string{"300"})
		if err != nil {
			fmt.Println("error:", err)
			os.Exit(1)
		}
		fmt.Println(p.Pid())
		time.Sleep(time.Hour) // until killed
	}

	parent := exec.Command(os.Args[0], "-test.run=^TestChildDiesWithParent$")
	parent.Env = append(os.Environ(), orphanHelperEnv+"="+filepath.Join(t.TempDir(), "sleep.log"))
	out, err := parent.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := parent.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatalf("read child pid: %v", err)
	}
	child, err := strconv.Atoi(string(bytes.TrimSpace([]byte(line))))
	if err != nil {
		t.Fatalf("parent printed %q, want a pid", line)
	}
	if !alive(child) {
		t.Fatalf("child %d not running before the parent died", child)
	}
	if err := parent.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = parent.Wait() // killed: the error is expected

	deadline := time.Now().Add(10 * time.Second)
	for alive(child) {
		if time.Now().After(deadline) {
			t.Fatalf("child %d still running 10s after its parent was killed", child)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// alive reports whether pid is a process that has not exited; a zombie
// (exited, not yet reaped by whoever inherited it) counts as gone.
func alive(pid int) bool {
	stat, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
	if err != nil {
		return false
	}
	// The state follows the parenthesised command name: "pid (comm) S ...".
	i := bytes.LastIndexByte(stat, ')')
	return i >= 0 && i+2 < len(stat) && stat[i+2] != 'Z' && stat[i+2] != 'X'
}
