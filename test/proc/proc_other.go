//go:build unix && !linux

package proc

import "syscall"

// sysProcAttr puts a child in its own process group, so Stop can signal
// everything it spawned. Only Linux can also kill it when this process dies.
func sysProcAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Setpgid: true}
}
