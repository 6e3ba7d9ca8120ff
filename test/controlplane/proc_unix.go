//go:build unix && !linux

package controlplane

import "syscall"

// sysProcAttr puts a child in its own process group, so stop can signal
// everything it spawned. Only Linux can also kill it when this process dies.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
