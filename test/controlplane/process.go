package controlplane

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"
)

// errPortInUse reports that a component exited because one of its ports was
// taken between choosing it and binding it; the caller retries on new ports.
var errPortInUse = errors.New("port already in use")

// process is one child process with its own log file and process group.
type process struct {
	name     string
	logPath  string
	logStart int64 // where this run's output starts in the log file
	cmd      *exec.Cmd
	done     chan struct{} // closed once the process has exited and been reaped
	err      error         // result of Wait; read only after done is closed
}

// startProcess starts bin in its own process group, with stdout and stderr
// appended to logPath, and with SIGKILL delivered to it if this process dies.
// The command line is written to the log first.
func startProcess(name, logPath, bin string, args []string) (*process, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open %s log: %w", name, err)
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("stat %s log: %w", name, err)
	}
	if _, err := fmt.Fprintf(f, "$ %s %s\n", bin, strings.Join(args, " ")); err != nil {
		f.Close()
		return nil, fmt.Errorf("write %s log: %w", name, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout = f
	cmd.Stderr = f
	cmd.SysProcAttr = sysProcAttr()
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &process{name: name, logPath: logPath, logStart: fi.Size(), cmd: cmd, done: make(chan struct{})}
	go func() {
		p.err = cmd.Wait()
		f.Close()
		close(p.done)
	}()
	return p, nil
}

// exited returns the error to report for a process that ended on its own:
// errPortInUse when its log says so, otherwise its exit status.
func (p *process) exited() error {
	if logContains(p.logPath, p.logStart, "address already in use") {
		return fmt.Errorf("%s exited: %w", p.name, errPortInUse)
	}
	return fmt.Errorf("%s exited: %v", p.name, p.exitStatus())
}

func (p *process) exitStatus() string {
	if p.err == nil {
		return "exit status 0"
	}
	return p.err.Error()
}

// stop ends the process group: SIGTERM, then SIGKILL if the process is still
// there after grace. It returns an error if the process had already exited
// on its own, since nothing should have ended it before stop.
func (p *process) stop(grace time.Duration) error {
	select {
	case <-p.done:
		return fmt.Errorf("%s had exited before stop: %s", p.name, p.exitStatus())
	default:
	}
	pgid := p.cmd.Process.Pid // Setpgid: the group id is the leader's pid
	if err := signalGroup(pgid, syscall.SIGTERM); err != nil {
		return fmt.Errorf("terminate %s: %w", p.name, err)
	}
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case <-p.done:
		return nil
	case <-timer.C:
	}
	if err := signalGroup(pgid, syscall.SIGKILL); err != nil {
		return fmt.Errorf("kill %s: %w", p.name, err)
	}
	<-p.done
	return nil
}

// signalGroup sends sig to every process in the group; a group that is
// already gone is not an error.
func signalGroup(pgid int, sig syscall.Signal) error {
	if err := syscall.Kill(-pgid, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
		return err
	}
	return nil
}

// tailBytes bounds how much of a log file tail reads.
const tailBytes = 512 << 10

// tail returns the last n lines of the file at path, or a note saying why
// it could not be read.
func tail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Sprintf("(%v)\n", err)
	}
	defer f.Close()
	if fi, err := f.Stat(); err == nil && fi.Size() > tailBytes {
		if _, err := f.Seek(-tailBytes, io.SeekEnd); err != nil {
			return fmt.Sprintf("(%v)\n", err)
		}
	}
	data, err := io.ReadAll(f)
	if err != nil {
		return fmt.Sprintf("(%v)\n", err)
	}
	return lastLines(data, n)
}

// lastLines returns the last n lines of data, each ending in a newline.
func lastLines(data []byte, n int) string {
	data = bytes.TrimRight(data, "\n")
	if len(data) == 0 || n <= 0 {
		return ""
	}
	i := len(data)
	for range n {
		j := bytes.LastIndexByte(data[:i], '\n')
		if j < 0 {
			i = 0
			break
		}
		i = j
	}
	if i > 0 {
		i++ // skip the newline that ends the line before the tail
	}
	return string(data[i:]) + "\n"
}

// logContains reports whether the file at path contains s after offset.
func logContains(path string, offset int64, s string) bool {
	data, err := os.ReadFile(path)
	return err == nil && offset <= int64(len(data)) && bytes.Contains(data[offset:], []byte(s))
}
