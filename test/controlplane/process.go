package controlplane

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/kube-ecr-refresher/kube-ecr-refresher/test/proc"
)

// errPortInUse reports that a component exited because one of its ports was
// taken between choosing it and binding it; the caller retries on new ports.
var errPortInUse = errors.New("port already in use")

// process is one component with its own log file.
type process struct {
	*proc.Process
	name     string
	logPath  string
	logStart int64 // where this run's output starts in the log file

	args  []string                        // as started, for Restart
	ready func(ctx context.Context) error // the readiness check, for Restart
}

// startProcess starts bin (see proc.Start) with stdout and stderr appended
// to logPath; the command line is written to the log first.
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
	pr, err := proc.Start(cmd, func(error) { f.Close() })
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	return &process{Process: pr, name: name, logPath: logPath, logStart: fi.Size()}, nil
}

// exited returns the error to report for a process that ended on its own:
// errPortInUse when its log says so, otherwise its exit status.
func (p *process) exited() error {
	if logContains(p.logPath, p.logStart, "address already in use") {
		return fmt.Errorf("%s exited: %w", p.name, errPortInUse)
	}
	return fmt.Errorf("%s exited: %v", p.name, p.ExitStatus())
}

// stop ends the process group: SIGTERM, then SIGKILL if the process is still
// there after grace. It returns an error if the process had already exited
// on its own, since nothing should have ended it before stop.
func (p *process) stop(grace time.Duration) error {
	if p.Exited() {
		return fmt.Errorf("%s had exited before stop: %s", p.name, p.ExitStatus())
	}
	if _, err := p.Stop(grace); err != nil {
		return fmt.Errorf("stop %s: %w", p.name, err)
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
