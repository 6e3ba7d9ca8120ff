//go:build integration

// Package integration runs the compiled kube-ecr-refresher binary, configured
// the way users configure it, against a real kube-apiserver + etcd +
// kube-controller-manager and the real AWS SDK pointed at a local ECR endpoint.
package integration

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/kube-ecr-refresher/kube-ecr-refresher/test/controlplane"
)

// Shared by every test of the package: one control plane and one binary.
var (
	plane  *controlplane.ControlPlane
	binary string
)

func TestMain(m *testing.M) {
	os.Exit(runMain(m))
}

func runMain(m *testing.M) int {
	dir, err := os.MkdirTemp("", "kube-ecr-refresher-it-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	defer os.RemoveAll(dir)

	binary = filepath.Join(dir, "kube-ecr-refresher")
	build := exec.Command("go", "build", "-race", "-o", binary, "../../cmd/kube-ecr-refresher")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build controller:", err)
		return 1
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	start := time.Now()
	plane, err = controlplane.Start(ctx, controlplane.Options{Log: slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))})
	if err != nil {
		fmt.Fprintln(os.Stderr, "start control plane:", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "control plane %s up in %s\n", plane.URL(), time.Since(start).Round(time.Millisecond))
	code := m.Run()
	if code != 0 {
		fmt.Fprintf(os.Stderr, "control plane logs:\n%s\n", plane.Logs())
	}
	if err := plane.Stop(); err != nil {
		fmt.Fprintln(os.Stderr, "stop control plane:", err)
	}
	return code
}
