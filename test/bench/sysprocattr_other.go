//go:build unix && !linux

package main

import "syscall"

// sysProcAttr puts a controller in its own process group, away from the
// terminal's Ctrl-C. Only Linux can also kill it when the bench dies.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
