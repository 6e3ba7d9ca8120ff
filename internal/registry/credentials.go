package registry

import (
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"time"
)

// Auth is the pull credential of one registry host.
//
// Its String, Format, LogValue and MarshalJSON methods show the host and
// expiries only, never the password, so that printing or logging it by
// mistake is safe (slog's JSON handler marshals nested values such as []Auth).
type Auth struct {
	// Host is the registry host, without scheme: 123.dkr.ecr.us-east-1.amazonaws.com.
	Host string
	// Username is the user of the decoded token; ECR's is AWS.
	Username string
	// Password is the secret part of the decoded token.
	Password string
	// ExpiresAt is when ECR stops accepting the token, on the local clock:
	// the local time its answer arrived plus the token's lifetime measured
	// on ECR's own clock (ServerExpiresAt minus the answer's Date header).
	// It is ServerExpiresAt plus the answer's clock skew (see
	// Credentials.ClockSkew), so that a local clock hours away from AWS's
	// changes nothing. It may be at or before the arrival time: a token
	// expired even by ECR's clock is still returned.
	ExpiresAt time.Time
	// ServerExpiresAt is the expiresAt ECR answered, on ECR's clock. It is
	// for logs only: never compare it with a local time.
	ServerExpiresAt time.Time
}

// String shows the host and expiries only.
func (a Auth) String() string {
	return fmt.Sprintf("{host=%s expires_at=%s server_expires_at=%s}", a.Host,
		a.ExpiresAt.UTC().Format(time.RFC3339), a.ServerExpiresAt.UTC().Format(time.RFC3339))
}

// Format makes every fmt verb, %#v and %+v included, print String.
func (a Auth) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(a.String())) }

// LogValue logs the host and expiries only.
func (a Auth) LogValue() slog.Value {
	return slog.GroupValue(slog.String("host", a.Host), slog.Time("expires_at", a.ExpiresAt),
		slog.Time("server_expires_at", a.ServerExpiresAt))
}

// MarshalJSON encodes the host and expiries only.
func (a Auth) MarshalJSON() ([]byte, error) {
	return json.Marshal(struct {
		Host            string    `json:"host"`
		ExpiresAt       time.Time `json:"expires_at"`
		ServerExpiresAt time.Time `json:"server_expires_at"`
	}{a.Host, a.ExpiresAt, a.ServerExpiresAt})
}

// Credentials is the result of one token fetch, as internal/ecr returns it
// and internal/kube writes it into Secrets. Every time in it is on the
// local clock, ready to compare with time.Now:
//
//	lifetime := creds.ExpiresAt.Sub(creds.FetchedAt)
//
// is the remaining lifetime, as of FetchedAt, of the first token to expire,
// measured on ECR's own clock, whatever the skew between the two clocks.
// lifetime <= 0 means a token expired even by ECR's clock; such credentials
// are still returned, without error, for the caller to decide.
//
// Its String, Format and LogValue methods, and JSON encoding (through
// Auth's), show hosts, times and skew only, never a password.
type Credentials struct {
	// Auths holds one entry per registry, in the order ECR returned them.
	Auths []Auth
	// ExpiresAt is the earliest ExpiresAt of Auths, on the local clock.
	ExpiresAt time.Time
	// FetchedAt is the local time the answer arrived (of several calls, the
	// time the last one arrived).
	FetchedAt time.Time
	// ClockSkew is the local clock minus ECR's: the local time an answer
	// arrived minus its Date header, positive when the local clock is ahead.
	// It is 0 when no answer had a Date header (then the lifetime of a token
	// is measured from its local arrival time instead); of several answers,
	// it is the one of largest magnitude. The Date header's one-second
	// resolution and network latency make it accurate to about a second.
	ClockSkew time.Duration
}

// Hosts returns the registry hosts, in the order of Auths.
func (c Credentials) Hosts() []string {
	hosts := make([]string, len(c.Auths))
	for i, a := range c.Auths {
		hosts[i] = a.Host
	}
	return hosts
}

// String shows hosts, times and skew only.
func (c Credentials) String() string {
	return fmt.Sprintf("{hosts=[%s] expires_at=%s fetched_at=%s clock_skew=%s}", strings.Join(c.Hosts(), " "),
		c.ExpiresAt.UTC().Format(time.RFC3339), c.FetchedAt.UTC().Format(time.RFC3339), c.ClockSkew)
}

// Format makes every fmt verb, %#v and %+v included, print String.
func (c Credentials) Format(f fmt.State, _ rune) { _, _ = f.Write([]byte(c.String())) }

// LogValue logs hosts, times and skew only.
func (c Credentials) LogValue() slog.Value {
	return slog.GroupValue(
		slog.Any("hosts", c.Hosts()),
		slog.Time("expires_at", c.ExpiresAt),
		slog.Time("fetched_at", c.FetchedAt),
		slog.Duration("clock_skew", c.ClockSkew),
	)
}
