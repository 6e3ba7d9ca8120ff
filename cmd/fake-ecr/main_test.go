package main

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/kube-ecr-refresher/kube-ecr-refresher/internal/ecrserver"
)

func TestRunPrintsTheURLAndStopsWhenCancelled(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	urlFile := filepath.Join(t.TempDir(), "url")
	stdout, w := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"-lifetime=-2m", "-clock-skew=-13h", "-failure=throttling", "-url-file=" + urlFile}, w, io.Discard)
		w.Close()
	}()

	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("read url: %v", err)
	}
	url := strings.TrimSpace(line)
	if !strings.HasPrefix(url, "http://127.0.0.1:") {
		t.Fatalf("printed %q, want an http://127.0.0.1 URL", line)
	}
	if b, err := os.ReadFile(urlFile); err != nil || string(b) != line {
		t.Errorf("url file holds %q (%v), want %q", b, err, line)
	}

	resp, err := http.Get(url + ecrserver.ControlPath)
	if err != nil {
		t.Fatalf("get state: %v", err)
	}
	var st ecrserver.State
	err = json.NewDecoder(resp.Body).Decode(&st)
	resp.Body.Close()
	if err != nil || st.Failure != "throttling" || st.Lifetime != "-2m0s" || st.ClockSkew != "-13h0m0s" {
		t.Errorf("state %+v (%v), want the flags' failure, lifetime and clock skew", st, err)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("run: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("run still serving 5s after cancel")
	}
}

func TestRunRejectsBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-failure=flaky"},
		{"-addr=0.0.0.0:0"},
		{"-lifetime=0s"},
		{"-clock-skew=soon"},
		{"-latency=-1s"},
		{"extra"},
	} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			if err := run(t.Context(), args, io.Discard, io.Discard); err == nil {
				t.Errorf("run(%q) succeeded, want an error", args)
			}
		})
	}
}
