package controlplane

import (
	"context"
	"log/slog"
	"strings"
)

// TB is the part of testing.TB that StartForTest uses; *testing.T and
// *testing.B satisfy it, and this package need not import testing.
type TB interface {
	Helper()
	Context() context.Context
	Cleanup(func())
	Failed() bool
	Logf(format string, args ...any)
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
}

// StartForTest starts a control plane with the zero Options, or fails t.
// See StartForTestWith.
func StartForTest(t TB) *ControlPlane {
	t.Helper()
	return StartForTestWith(t, Options{})
}

// StartForTestWith starts a control plane, or fails t. Progress goes to
// t.Logf unless opts.Log is set. When t ends, the component logs are printed
// if t failed, and the control plane is stopped.
func StartForTestWith(t TB, opts Options) *ControlPlane {
	t.Helper()
	if opts.Log == nil {
		opts.Log = slog.New(slog.NewTextHandler(tbWriter{t}, nil))
	}
	cp, err := Start(t.Context(), opts)
	if err != nil {
		t.Fatalf("%v", err)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("control plane logs:\n%s", cp.Logs())
		}
		if err := cp.Stop(); err != nil {
			t.Errorf("stop control plane: %v", err)
		}
	})
	return cp
}

// tbWriter writes each slog record to t.Logf.
type tbWriter struct{ t TB }

func (w tbWriter) Write(p []byte) (int, error) {
	w.t.Logf("%s", strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}
