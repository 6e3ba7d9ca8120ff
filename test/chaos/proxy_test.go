package main

import (
	"bufio"
	"io"
	"net"
	"testing"
	"time"
)

// echoServer answers each line with itself.
func echoServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()
	return ln.Addr().String()
}

// roundTrip sends a line on c and waits up to d for it to come back.
func roundTrip(c net.Conn, r *bufio.Reader, d time.Duration) error {
	_ = c.SetDeadline(time.Now().Add(d))
	if _, err := c.Write([]byte("ping\n")); err != nil {
		return err
	}
	_, err := r.ReadString('\n')
	return err
}

func dial(t *testing.T, p *Proxy) (net.Conn, *bufio.Reader) {
	t.Helper()
	c, err := net.Dial("tcp4", p.Addr())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, bufio.NewReader(c)
}

func TestProxyModes(t *testing.T) {
	p, err := NewProxy(echoServer(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.Close)

	c, r := dial(t, p)
	if err := roundTrip(c, r, 2*time.Second); err != nil {
		t.Fatalf("pass: %v", err)
	}

	p.SetMode(Blackhole, 0)
	if err := roundTrip(c, r, 300*time.Millisecond); err == nil {
		t.Fatal("blackhole: the answer came through")
	}
	p.SetMode(Pass, 0)
	// The connection that lost bytes is reset; a new one works.
	if err := roundTrip(c, r, time.Second); err == nil {
		t.Error("the blackholed connection still works after healing; want it reset")
	}
	c2, r2 := dial(t, p)
	if err := roundTrip(c2, r2, 2*time.Second); err != nil {
		t.Fatalf("after heal: %v", err)
	}

	p.SetMode(Latency, 200*time.Millisecond)
	began := time.Now()
	if err := roundTrip(c2, r2, 3*time.Second); err != nil {
		t.Fatalf("latency: %v", err)
	}
	if took := time.Since(began); took < 400*time.Millisecond {
		t.Errorf("latency: round trip took %s, want at least 400ms (200ms each way)", took)
	}

	p.SetMode(Reset, 0)
	if err := roundTrip(c2, r2, time.Second); err == nil {
		t.Error("reset: the open connection still works")
	}
	c3, r3 := dial(t, p)
	if err := roundTrip(c3, r3, time.Second); err == nil {
		t.Error("reset: a new connection works")
	}
	p.SetMode(Pass, 0)
	c4, r4 := dial(t, p)
	if err := roundTrip(c4, r4, 2*time.Second); err != nil {
		t.Fatalf("pass after reset: %v", err)
	}
}
