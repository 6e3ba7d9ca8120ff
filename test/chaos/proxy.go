package main

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"time"
)

// ProxyMode is what a Proxy does with the bytes it carries.
type ProxyMode int

// Proxy modes.
const (
	// Pass forwards every byte both ways.
	Pass ProxyMode = iota
	// Blackhole accepts connections and reads what is sent, but forwards
	// nothing either way: requests hang, as behind a dropped route. The
	// connections that lost bytes are reset when the mode changes, since
	// their TLS streams cannot resume.
	Blackhole
	// Reset resets every open connection and each new one at once.
	Reset
	// Latency forwards every chunk after a delay, in order.
	Latency
)

var proxyModeNames = [...]string{Pass: "pass", Blackhole: "blackhole", Reset: "reset", Latency: "latency"}

func (m ProxyMode) String() string { return proxyModeNames[m] }

// Proxy is a TCP proxy on 127.0.0.1 in front of one upstream address; the
// harness switches its mode to partition the one replica that uses it.
type Proxy struct {
	ln       net.Listener
	upstream string

	mu      sync.Mutex
	mode    ProxyMode
	latency time.Duration
	conns   map[*proxyConn]struct{}
	closed  bool
	wg      sync.WaitGroup
}

type proxyConn struct {
	client, server net.Conn
	dirty          bool // lost bytes to a blackhole; guarded by Proxy.mu
}

// NewProxy listens on a free port of 127.0.0.1 and forwards to upstream.
func NewProxy(upstream string) (*Proxy, error) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("proxy listen: %w", err)
	}
	p := &Proxy{ln: ln, upstream: upstream, conns: map[*proxyConn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	return p, nil
}

// Addr is the address clients dial.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// SetMode switches the mode; latency is used by Latency only. Leaving
// Blackhole resets the connections that lost bytes; entering Reset resets
// every open connection.
func (p *Proxy) SetMode(m ProxyMode, latency time.Duration) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.mode, p.latency = m, latency
	for c := range p.conns {
		if m == Reset || (m != Blackhole && c.dirty) {
			c.reset()
			delete(p.conns, c)
		}
	}
}

// Mode returns the current mode.
func (p *Proxy) Mode() ProxyMode {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.mode
}

// Close stops listening and closes every connection.
func (p *Proxy) Close() {
	p.mu.Lock()
	p.closed = true
	for c := range p.conns {
		c.reset()
	}
	clear(p.conns)
	p.mu.Unlock()
	_ = p.ln.Close()
	p.wg.Wait()
}

func (p *Proxy) accept() {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return // closed
		}
		p.mu.Lock()
		mode, closed := p.mode, p.closed
		p.mu.Unlock()
		if closed || mode == Reset {
			resetConn(client)
			continue
		}
		server, err := net.DialTimeout("tcp4", p.upstream, 5*time.Second)
		if err != nil {
			resetConn(client) // upstream down: as a refused connection
			continue
		}
		c := &proxyConn{client: client, server: server}
		p.mu.Lock()
		if p.closed {
			p.mu.Unlock()
			c.reset()
			continue
		}
		p.conns[c] = struct{}{}
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pump(c, client, server)
		go p.pump(c, server, client)
	}
}

// pump copies src to dst chunk by chunk, as the mode at each chunk says.
func (p *Proxy) pump(c *proxyConn, src, dst net.Conn) {
	defer p.wg.Done()
	defer func() {
		p.mu.Lock()
		delete(p.conns, c)
		p.mu.Unlock()
		_ = src.Close()
		_ = dst.Close()
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if n > 0 {
			p.mu.Lock()
			mode, latency := p.mode, p.latency
			if mode == Blackhole {
				c.dirty = true
			}
			p.mu.Unlock()
			switch mode {
			case Blackhole, Reset:
				continue // dropped
			case Latency:
				time.Sleep(latency)
			}
			if _, werr := dst.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				if tc, ok := dst.(*net.TCPConn); ok {
					_ = tc.CloseWrite()
				}
			}
			return
		}
	}
}

func (c *proxyConn) reset() {
	resetConn(c.client)
	resetConn(c.server)
}

// resetConn closes conn with an RST rather than a FIN.
func resetConn(conn net.Conn) {
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}
