// Package health owns the probe endpoints: /healthz, which fails when this
// replica leads but has stopped renewing its Lease, and /readyz on cache sync.
package health

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"
)

// Checker is one probe's condition; a nil error is healthy. client-go's
// leaderelection.HealthzAdaptor has this shape.
type Checker interface {
	Check(r *http.Request) error
}

// CheckFunc adapts a function to a Checker.
type CheckFunc func(r *http.Request) error

// Check calls f.
func (f CheckFunc) Check(r *http.Request) error { return f(r) }

// ErrNotSynced is /readyz's answer before the caches have synced.
var ErrNotSynced = errors.New("caches not synced")

// Handler serves /healthz from live and /readyz from ready.
func Handler(live, ready Checker) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/healthz", probe(live, http.StatusInternalServerError))
	mux.Handle("/readyz", probe(ready, http.StatusServiceUnavailable))
	return mux
}

func probe(c Checker, failCode int) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := c.Check(r); err != nil {
			http.Error(w, "unhealthy: "+err.Error(), failCode)
			return
		}
		_, _ = io.WriteString(w, "ok\n")
	})
}

// Server is an HTTP server on its own listener.
type Server struct {
	srv  *http.Server
	addr net.Addr
	done chan struct{}
}

// Listen listens on addr (what names it in errors and logs) and serves h in
// the background until Shutdown.
func Listen(what, addr string, h http.Handler, log *slog.Logger) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen on %s address %s: %w", what, addr, err)
	}
	s := &Server{
		srv:  &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second},
		addr: ln.Addr(),
		done: make(chan struct{}),
	}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error(what+" server stopped", "error", err)
		}
	}()
	log.Info("serving "+what, "address", s.addr.String())
	return s, nil
}

// Addr is the address the server listens on (the port chosen for ":0").
func (s *Server) Addr() net.Addr { return s.addr }

// Shutdown stops accepting connections and waits up to two seconds for
// requests in flight.
func (s *Server) Shutdown() {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = s.srv.Shutdown(ctx)
	<-s.done
}
