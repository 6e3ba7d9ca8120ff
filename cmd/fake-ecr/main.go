// Command fake-ecr serves a local ECR-compatible endpoint on 127.0.0.1 for the demo and
// manual tests: it prints its URL on stdout, logs calls on stderr, stops on SIGINT/SIGTERM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"

	"github.com/kube-ecr-refresher/kube-ecr-refresher/internal/ecrserver"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	if err != nil {
		fmt.Fprintln(os.Stderr, "fake-ecr:", err)
		os.Exit(1)
	}
}

// run serves until ctx is done.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("fake-ecr", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(fs.Output(), "Usage: fake-ecr [flags]\n\n"+
			"Serves ECR's GetAuthorizationToken on 127.0.0.1 and prints the URL to use as\n"+
			"AWS_ENDPOINT_URL_ECR. POST %s with form values failure, latency, lifetime,\n"+
			"clock_skew, account or region changes them while running; GET it shows them.\n\nFlags:\n", ecrserver.ControlPath)
		fs.PrintDefaults()
	}
	addr := fs.String("addr", "127.0.0.1:0", "listen `address`, 127.0.0.1 only; port 0 picks a free port")
	lifetime := fs.Duration("lifetime", ecrserver.DefaultLifetime, "lifetime of the tokens issued; negative issues tokens already expired by the server's own clock")
	skew := fs.Duration("clock-skew", 0, "run the server's clock this far ahead (negative: behind): skews both the Date header and expiresAt")
	latency := fs.Duration("latency", 0, "delay before every answer")
	failure := ecrserver.FailureNone
	fs.TextVar(&failure, "failure", ecrserver.FailureNone, "failure `mode`: none, server-error, throttling, access-denied or timeout")
	account := fs.String("account", ecrserver.DefaultAccount, "account `id` of the registry in proxy endpoints")
	region := fs.String("region", "", "region of proxy endpoints; empty uses the request's signing region")
	urlFile := fs.String("url-file", "", "also write the URL to this `file` (atomically), for scripts")
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil
		}
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	if *lifetime == 0 || *latency < 0 {
		return fmt.Errorf("lifetime %v and latency %v: want a non-zero lifetime and a non-negative latency", *lifetime, *latency)
	}

	log := slog.New(slog.NewTextHandler(stderr, nil))
	srv, err := ecrserver.Start(*addr,
		ecrserver.WithLifetime(*lifetime),
		ecrserver.WithClockSkew(*skew),
		ecrserver.WithLatency(*latency),
		ecrserver.WithFailure(failure),
		ecrserver.WithAccount(*account),
		ecrserver.WithRegion(*region),
		ecrserver.WithLogger(log),
	)
	if err != nil {
		return fmt.Errorf("start server: %w", err)
	}
	defer srv.Close()

	if *urlFile != "" {
		if err := writeAtomically(*urlFile, srv.URL+"\n"); err != nil {
			return err
		}
	}
	if _, err := fmt.Fprintln(stdout, srv.URL); err != nil {
		return fmt.Errorf("print url: %w", err)
	}
	log.Info("serving", "url", srv.URL, "lifetime", *lifetime, "clock_skew", *skew, "latency", *latency, "failure", failure.String())

	<-ctx.Done()
	srv.Close()
	log.Info("stopped", "calls", srv.Calls())
	return nil
}

// writeAtomically writes content to a temporary file next to path and
// renames it, so a script polling path never reads half a URL.
func writeAtomically(path, content string) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".fake-ecr-url-*")
	if err != nil {
		return fmt.Errorf("write url file: %w", err)
	}
	defer os.Remove(tmp.Name()) // no-op after a successful rename
	if _, err := tmp.WriteString(content); err != nil {
		tmp.Close()
		return fmt.Errorf("write url file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write url file: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("write url file: %w", err)
	}
	return nil
}
