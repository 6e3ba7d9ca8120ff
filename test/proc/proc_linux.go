package proc

import "syscall"

// sysProcAttr puts a child in its own process group, so Stop can signal
// everything it spawned, and has the kernel SIGKILL it when the thread that
// started it dies. The Go runtime only ends threads locked with
// runtime.LockOSThread, so in practice that is when this process dies.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
