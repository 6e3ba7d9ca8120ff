// Command kube-ecr-refresher keeps Amazon ECR image pull Secrets fresh in every
// target namespace of a Kubernetes cluster. main is wiring only: see internal/app.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/kube-ecr-refresher/kube-ecr-refresher/internal/app"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := app.Run(ctx, version, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(app.ExitCode(err, os.Stderr))
}
