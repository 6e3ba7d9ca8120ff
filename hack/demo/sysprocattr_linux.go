package main

import "syscall"

// sysProcAttr puts a replica in its own process group, away from the
// terminal's Ctrl-C, and has the kernel SIGKILL it if the demo dies.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
