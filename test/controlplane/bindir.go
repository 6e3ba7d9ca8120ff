package controlplane

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
)

const (
	// BinDirEnv names the environment variable that points at a directory
	// holding the control plane binaries; when set, BinDir does not build.
	BinDirEnv = "KUBE_ECR_REFRESHER_CONTROLPLANE_BIN"

	// modulePath identifies the repository root: the directory whose go.mod
	// declares this module.
	modulePath = "github.com/kube-ecr-refresher/kube-ecr-refresher"

	// buildScript builds the binaries, relative to the repository root.
	buildScript = "hack/controlplane/build.sh"
)

// requiredBinaries are the programs Start runs; build.sh also builds kubectl.
func requiredBinaries() []string {
	return []string{"etcd", "kube-apiserver", "kube-controller-manager"}
}

// BinDir returns the directory holding etcd, kube-apiserver,
// kube-controller-manager and kubectl: $KUBE_ECR_REFRESHER_CONTROLPLANE_BIN
// if set, otherwise the cache directory printed by hack/controlplane/build.sh,
// which builds the pinned versions first if needed (about ten minutes on two
// cores the first time, well under a second once cached).
func BinDir() (string, error) {
	return resolveBinDir(slog.New(slog.DiscardHandler))
}

// resolveBinDir is BinDir with build.sh's progress lines logged to log.
func resolveBinDir(log *slog.Logger) (string, error) {
	if dir := os.Getenv(BinDirEnv); dir != "" {
		if err := checkBinDir(dir); err != nil {
			return "", fmt.Errorf("check %s: %w", BinDirEnv, err)
		}
		return dir, nil
	}
	root, err := repoRoot()
	if err != nil {
		return "", err
	}
	script := filepath.Join(root, buildScript)
	var stdout, stderr bytes.Buffer
	cmd := exec.Command("bash", script)
	cmd.Dir = root
	cmd.Stdout = &stdout
	cmd.Stderr = io.MultiWriter(&stderr, &lineLogger{log: log, msg: "build.sh"})
	// No context: a cancelled caller must not kill a half-done build that
	// holds the cache lock; it finishes and fills the cache for the next run.
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("run %s: %w: %s", buildScript, err, strings.TrimSpace(stderr.String()))
	}
	dir := strings.TrimSpace(lastLines(stdout.Bytes(), 1))
	if err := checkBinDir(dir); err != nil {
		return "", fmt.Errorf("check output of %s: %w", buildScript, err)
	}
	return dir, nil
}

// checkBinDir reports an error unless dir holds every required binary.
func checkBinDir(dir string) error {
	var errs []error
	for _, name := range requiredBinaries() {
		fi, err := os.Stat(filepath.Join(dir, name))
		switch {
		case err != nil:
			errs = append(errs, err)
		case fi.IsDir() || fi.Mode().Perm()&0o111 == 0:
			errs = append(errs, fmt.Errorf("%s is not an executable file", filepath.Join(dir, name)))
		}
	}
	return errors.Join(errs...)
}

// repoRoot finds the repository root above the working directory, or else
// above this source file (which helps a binary run from outside the tree
// when it was built without -trimpath).
func repoRoot() (string, error) {
	var starts []string
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		starts = append(starts, filepath.Dir(file))
	}
	for _, start := range starts {
		if root, ok := findModuleRoot(start, modulePath); ok {
			return root, nil
		}
	}
	return "", fmt.Errorf("find repository root: no go.mod for module %s above %s; run from the repository or set %s",
		modulePath, strings.Join(starts, " or "), BinDirEnv)
}

// findModuleRoot walks up from dir to the first directory whose go.mod
// declares module path.
func findModuleRoot(dir, path string) (string, bool) {
	for {
		if data, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && goModPath(data) == path {
			return dir, true
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", false
		}
		dir = parent
	}
}

// goModPath returns the module path declared in a go.mod file, or "".
func goModPath(data []byte) string {
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		rest, ok := strings.CutPrefix(line, "module")
		if !ok || (rest != "" && rest[0] != ' ' && rest[0] != '\t') {
			continue
		}
		rest, _, _ = strings.Cut(rest, "//")
		return strings.Trim(strings.TrimSpace(rest), `"`)
	}
	return ""
}

// lineLogger logs each complete line written to it at info level.
type lineLogger struct {
	log *slog.Logger
	msg string
	buf []byte
}

func (l *lineLogger) Write(p []byte) (int, error) {
	l.buf = append(l.buf, p...)
	for {
		i := bytes.IndexByte(l.buf, '\n')
		if i < 0 {
			return len(p), nil
		}
		if line := strings.TrimSpace(string(l.buf[:i])); line != "" {
			l.log.Info(l.msg, "line", line)
		}
		l.buf = l.buf[i+1:]
	}
}
