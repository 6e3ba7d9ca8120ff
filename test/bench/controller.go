package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/kube-ecr-refresher/kube-ecr-refresher/test/proc"
)

// controllerPackage is built into the binary the bench runs.
const controllerPackage = "github.com/kube-ecr-refresher/kube-ecr-refresher/cmd/kube-ecr-refresher"

// buildController builds the controller the way `make build` does, without
// the race detector, into out.
func buildController(ctx context.Context, out string) error {
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags", "-s -w -X main.version=bench", "-o", out, controllerPackage)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if b, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("build %s: %w\n%s", controllerPackage, err, b)
	}
	return nil
}

// gitDescribe names the source tree the controller is built from.
func gitDescribe(ctx context.Context) string {
	out, err := exec.CommandContext(ctx, "git", "describe", "--always", "--dirty").Output()
	if err != nil {
		return "an unknown tree (git describe failed)"
	}
	return "git " + strings.TrimSpace(string(out))
}

// controller is one running kube-ecr-refresher process. Its output goes to
// a log file; the addresses it serves metrics and health on are read from it.
type controller struct {
	name     string
	identity string
	logPath  string
	proc     *proc.Process
	started  time.Time

	mu         sync.Mutex
	metricsURL string
	healthURL  string
	addrsKnown chan struct{} // closed once both are known
}

// startController starts bin with exactly env, its output appended to logPath.
func startController(name, identity, bin, logPath string, env []string) (*controller, error) {
	f, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open %s log: %w", name, err)
	}
	r, w, err := os.Pipe()
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("pipe for %s: %w", name, err)
	}
	cmd := exec.Command(bin)
	cmd.Env = env
	cmd.Stdout, cmd.Stderr = w, w
	c := &controller{name: name, identity: identity, logPath: logPath, addrsKnown: make(chan struct{})}
	c.started = time.Now()
	pr, err := proc.Start(cmd, nil)
	if err != nil {
		r.Close()
		w.Close()
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	c.proc = pr
	w.Close() // the child holds its own copy
	go c.readOutput(r, f)
	return c, nil
}

// readOutput copies the process output to the log file and picks the
// metrics and health addresses from the "serving ..." lines.
func (c *controller) readOutput(r *os.File, f *os.File) {
	defer f.Close()
	defer r.Close()
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		_, _ = f.Write(append(line, '\n'))
		var rec struct {
			Msg     string `json:"msg"`
			Address string `json:"address"`
		}
		if len(line) == 0 || line[0] != '{' || json.Unmarshal(line, &rec) != nil {
			continue
		}
		switch rec.Msg {
		case "serving metrics":
			c.setAddr(&c.metricsURL, "http://"+rec.Address+"/metrics")
		case "serving health":
			c.setAddr(&c.healthURL, "http://"+rec.Address)
		}
	}
}

func (c *controller) setAddr(field *string, url string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	*field = url
	if c.metricsURL != "" && c.healthURL != "" {
		select {
		case <-c.addrsKnown:
		default:
			close(c.addrsKnown)
		}
	}
}

func (c *controller) pid() int { return c.proc.Pid() }

func (c *controller) exited() bool { return c.proc.Exited() }

// waitServing waits until the process has said where it serves metrics and health.
func (c *controller) waitServing(ctx context.Context, timeout time.Duration) error {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case <-c.addrsKnown:
		return nil
	case <-c.proc.Done():
		return fmt.Errorf("%s exited before serving: %s (log %s)", c.name, c.proc.ExitStatus(), c.logPath)
	case <-t.C:
		return fmt.Errorf("%s did not report its metrics and health addresses within %s (log %s)", c.name, timeout, c.logPath)
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (c *controller) metrics() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.metricsURL
}

// waitReady polls /readyz until the caches are synced.
func (c *controller) waitReady(ctx context.Context, client *http.Client, timeout time.Duration) error {
	if err := c.waitServing(ctx, timeout); err != nil {
		return err
	}
	c.mu.Lock()
	url := c.healthURL + "/readyz"
	c.mu.Unlock()
	return waitFor(ctx, timeout, c.name+" ready", func() (bool, string) {
		if c.exited() {
			return false, "exited"
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
		if err != nil {
			return false, err.Error()
		}
		resp, err := client.Do(req)
		if err != nil {
			return false, err.Error()
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK, resp.Status
	})
}

// signal sends sig to the process (not its group: it starts no children).
func (c *controller) signal(sig syscall.Signal) error {
	if err := c.proc.Signal(sig); err != nil {
		return fmt.Errorf("signal %s: %w", c.name, err)
	}
	return nil
}

// stop sends SIGTERM, waits up to grace, then SIGKILL. It returns how long
// the process took to exit after SIGTERM. A process that had already exited
// is not an error.
func (c *controller) stop(grace time.Duration) (time.Duration, error) {
	if c.exited() {
		return 0, nil
	}
	began := time.Now()
	killed, err := c.proc.Stop(grace)
	took := time.Since(began)
	switch {
	case err != nil:
		return 0, fmt.Errorf("stop %s: %w", c.name, err)
	case killed:
		return took, fmt.Errorf("%s did not exit within %s of SIGTERM; killed (log %s)", c.name, grace, c.logPath)
	}
	return took, nil
}
