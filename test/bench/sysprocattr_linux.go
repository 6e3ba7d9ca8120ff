package main

import "syscall"

// sysProcAttr puts a controller in its own process group, away from the
// terminal's Ctrl-C (the bench stops it itself), and has the kernel SIGKILL
// it if the bench dies.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
}
