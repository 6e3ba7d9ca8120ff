package main

import (
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/kube-ecr-refresher/kube-ecr-refresher/test/proc"
)

// restartDelay is how long a slot waits after its process exits before it
// starts the next one, as a kubelet's first restart backoff would.
const restartDelay = time.Second

// slot is one replica of the Deployment: its own proxy to kube-apiserver
// and a process that is restarted whenever it exits, each time with a new
// generation in its identity (chaos-r1-g4), so the audit log and the ECR
// endpoint tell one process's writes and calls from the next one's.
type slot struct {
	index int
	proxy *Proxy
	bin   string
	dir   string
	env   []string // everything but the identity and the AWS access key
	log   *slog.Logger

	mu       sync.Mutex
	gen      int
	cur      *replica
	all      []*replica
	stopping bool
	running  bool // run was called: done will be closed
	done     chan struct{}
}

// replica is one process of a slot.
type replica struct {
	slot     int
	identity string
	keyID    string
	proc     *proc.Process
	started  time.Time
	logPath  string

	mu      sync.Mutex
	stopped bool // SIGSTOPped and not yet continued
	peakRSS int64
	exited  time.Time
}

// accessKeyFor is the AWS access key a process signs with: the ECR
// endpoint's answer log names the process by it.
func accessKeyFor(identity string) string {
	return "AKID" + strings.ToUpper(strings.NewReplacer("-", "").Replace(identity))
}

func newSlot(index int, proxy *Proxy, bin, dir string, env []string, log *slog.Logger) *slot {
	return &slot{index: index, proxy: proxy, bin: bin, dir: dir, env: env, log: log, done: make(chan struct{})}
}

// launch starts the slot's restart loop.
func (s *slot) launch() {
	s.mu.Lock()
	s.running = true
	s.mu.Unlock()
	go s.run()
}

// run starts the slot's processes one after another until stop.
func (s *slot) run() {
	defer close(s.done)
	for {
		r, err := s.start()
		if err != nil {
			s.log.Error("start replica", "slot", s.index, "error", err)
		} else {
			<-r.proc.Done()
			r.mu.Lock()
			r.exited = time.Now()
			r.mu.Unlock()
			s.log.Info("replica exited", "identity", r.identity, "status", r.proc.ExitStatus())
		}
		s.mu.Lock()
		stopping := s.stopping
		s.mu.Unlock()
		if stopping {
			return
		}
		time.Sleep(restartDelay)
		s.mu.Lock()
		stopping = s.stopping
		s.mu.Unlock()
		if stopping {
			return
		}
	}
}

func (s *slot) start() (*replica, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopping {
		return nil, fmt.Errorf("stopping")
	}
	s.gen++
	id := fmt.Sprintf("chaos-r%d-g%d", s.index, s.gen)
	r := &replica{slot: s.index, identity: id, keyID: accessKeyFor(id), logPath: filepath.Join(s.dir, id+".log")}
	f, err := os.Create(r.logPath)
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(s.bin)
	cmd.Env = append(append([]string(nil), s.env...),
		"KUBE_ECR_REFRESHER_LEADER_ELECTION_IDENTITY="+id,
		"AWS_ACCESS_KEY_ID="+r.keyID)
	cmd.Stdout, cmd.Stderr = f, f
	p, err := proc.Start(cmd, func(error) { f.Close() })
	if err != nil {
		f.Close()
		return nil, err
	}
	r.proc, r.started = p, time.Now()
	s.cur = r
	s.all = append(s.all, r)
	return r, nil
}

// current is the running process, or nil between two.
func (s *slot) current() *replica {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cur == nil || s.cur.proc.Exited() {
		return nil
	}
	return s.cur
}

// replicas returns every process the slot started.
func (s *slot) replicas() []*replica {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*replica(nil), s.all...)
}

// stop ends the slot: no more restarts, SIGCONT then SIGTERM to the current
// process, SIGKILL after grace.
func (s *slot) stop(grace time.Duration) {
	s.mu.Lock()
	s.stopping = true
	cur, running := s.cur, s.running
	s.mu.Unlock()
	if cur != nil {
		_ = cur.proc.Signal(syscall.SIGCONT)
		_, _ = cur.proc.Stop(grace)
	}
	if running {
		<-s.done
	}
}

// signal sends sig to the process and tracks SIGSTOP/SIGCONT.
func (r *replica) signal(sig syscall.Signal) error {
	r.mu.Lock()
	switch sig {
	case syscall.SIGSTOP:
		r.stopped = true
	case syscall.SIGCONT:
		r.stopped = false
	}
	r.mu.Unlock()
	return r.proc.Signal(sig)
}

func (r *replica) isStopped() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.stopped
}

// sampleRSS reads VmHWM (peak RSS) from /proc and keeps the largest.
func (r *replica) sampleRSS() {
	if r.proc.Exited() {
		return
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", r.proc.Pid()))
	if err != nil {
		return
	}
	for line := range strings.Lines(string(b)) {
		v, ok := strings.CutPrefix(line, "VmHWM:")
		if !ok {
			continue
		}
		f := strings.Fields(v)
		if len(f) == 2 && f[1] == "kB" {
			if kb, err := strconv.ParseInt(f[0], 10, 64); err == nil {
				r.mu.Lock()
				r.peakRSS = max(r.peakRSS, kb<<10)
				r.mu.Unlock()
			}
		}
	}
}

func (r *replica) peak() int64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.peakRSS
}
