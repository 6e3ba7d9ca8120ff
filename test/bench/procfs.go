package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// clockTicksPerSecond is USER_HZ, the unit of utime and stime in
// /proc/<pid>/stat: 100 on every Linux architecture Go supports.
const clockTicksPerSecond = 100

// procStats is what /proc says about one process.
type procStats struct {
	// CPU is user plus system time used so far.
	CPU time.Duration
	// PeakRSS is VmHWM, the peak resident set size, in bytes.
	PeakRSS int64
	// RSS is VmRSS, the current resident set size, in bytes; RSSFile is
	// the part that maps files (the binary's own pages), RSS - RSSFile the
	// anonymous part (Go heap, stacks, runtime).
	RSS     int64
	RSSFile int64
}

// readProcStats reads the CPU time and memory of process pid.
func readProcStats(pid int) (procStats, error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procStats{}, fmt.Errorf("read stat of pid %d: %w", pid, err)
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return procStats{}, fmt.Errorf("read status of pid %d: %w", pid, err)
	}
	f, err := parseStat(stat)
	if err != nil {
		return procStats{}, fmt.Errorf("parse stat of pid %d: %w", pid, err)
	}
	hwm, err1 := statusBytes(status, "VmHWM")
	rss, err2 := statusBytes(status, "VmRSS")
	file, err3 := statusBytes(status, "RssFile")
	if err := errors.Join(err1, err2, err3); err != nil {
		return procStats{}, fmt.Errorf("parse status of pid %d: %w", pid, err)
	}
	return procStats{CPU: f.cpu, PeakRSS: hwm, RSS: rss, RSSFile: file}, nil
}

// statFields are the fields of /proc/<pid>/stat the bench reads.
type statFields struct {
	comm string
	ppid int
	cpu  time.Duration // utime + stime
}

// parseStat parses /proc/<pid>/stat. The command name is in parentheses and
// may itself hold spaces and parentheses, so fields are counted from the last ')'.
func parseStat(b []byte) (statFields, error) {
	open, end := bytes.IndexByte(b, '('), bytes.LastIndexByte(b, ')')
	if open < 0 || end < open {
		return statFields{}, errors.New("no command name in parentheses")
	}
	// After the name: state(3) ppid(4) ... utime(14) stime(15), 1-based.
	rest := strings.Fields(string(b[end+1:]))
	const ppidIdx, utimeIdx, stimeIdx = 1, 11, 12
	if len(rest) <= stimeIdx {
		return statFields{}, fmt.Errorf("%d fields after the command name, want more than %d", len(rest), stimeIdx)
	}
	ppid, err := strconv.Atoi(rest[ppidIdx])
	if err != nil {
		return statFields{}, fmt.Errorf("ppid: %w", err)
	}
	var ticks int64
	for _, i := range []int{utimeIdx, stimeIdx} {
		v, err := strconv.ParseInt(rest[i], 10, 64)
		if err != nil {
			return statFields{}, fmt.Errorf("cpu time: %w", err)
		}
		ticks += v
	}
	return statFields{
		comm: string(b[open+1 : end]),
		ppid: ppid,
		cpu:  time.Duration(ticks) * time.Second / clockTicksPerSecond,
	}, nil
}

// statusBytes returns a "Key:   123 kB" line of /proc/<pid>/status in bytes.
func statusBytes(status []byte, key string) (int64, error) {
	for line := range strings.Lines(string(status)) {
		rest, ok := strings.CutPrefix(line, key+":")
		if !ok {
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return 0, fmt.Errorf("%s: unexpected value %q", key, strings.TrimSpace(rest))
		}
		kb, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("%s: %w", key, err)
		}
		return kb << 10, nil
	}
	return 0, fmt.Errorf("no %s line", key)
}

// childPIDs returns the pid of each direct child of parent by command name
// (as the kernel truncates it, 15 bytes). The control plane's processes are
// children of the bench, which is how their CPU time is found.
func childPIDs(parent int) (map[string]int, error) {
	paths, err := filepath.Glob("/proc/[0-9]*/stat")
	if err != nil {
		return nil, err
	}
	out := map[string]int{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			continue // exited meanwhile
		}
		f, err := parseStat(b)
		if err != nil || f.ppid != parent {
			continue
		}
		pid, err := strconv.Atoi(filepath.Base(filepath.Dir(p)))
		if err != nil {
			continue
		}
		out[f.comm] = pid
	}
	return out, nil
}
