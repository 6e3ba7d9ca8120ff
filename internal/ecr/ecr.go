// Package ecr owns the AWS side: the subset of the ECR API the controller calls and
// the token fetch that turns GetAuthorizationToken into a plain Credentials value.
package ecr

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/smithy-go/middleware"
)

// API is the subset of the ECR client the Fetcher calls; *ecr.Client
// implements it. The signature matches the SDK's exactly.
type API interface {
	GetAuthorizationToken(ctx context.Context, in *ecr.GetAuthorizationTokenInput, optFns ...func(*ecr.Options)) (*ecr.GetAuthorizationTokenOutput, error)
}

// Errors for GetAuthorizationToken answers that cannot be turned into
// credentials. None of them is worth an immediate retry of the same call
// beyond the caller's usual backoff.
var (
	ErrNilOutput           = errors.New("nil output")
	ErrNoAuthorizationData = errors.New("no authorization data")
	ErrNilToken            = errors.New("nil or empty authorization token")
	ErrMalformedToken      = errors.New("authorization token is not base64")
	ErrTokenFormat         = errors.New("decoded authorization token is not user:password")
	ErrNoEndpoint          = errors.New("nil or empty proxy endpoint")
	ErrNoExpiry            = errors.New("nil or zero expiry")
)

// NewAPI returns an ECR client configured from the environment the way the
// AWS SDK does it (AWS_REGION, credentials chain, AWS_ENDPOINT_URL_ECR, ...)
// whose HTTP requests time out after timeout. It fails when no region is
// configured, before any call is made.
func NewAPI(ctx context.Context, timeout time.Duration) (API, error) {
	cfg, err := loadConfig(ctx, timeout)
	if err != nil {
		return nil, err
	}
	if cfg.Region == "" {
		return nil, errNoRegion
	}
	return ecr.NewFromConfig(cfg), nil
}

// errNoRegion is the error of a default registry without a region.
var errNoRegion = errors.New("load aws config: AWS_REGION is not set")

// loadConfig loads the SDK's default configuration with an HTTP client whose
// requests time out after timeout. The region may be empty.
func loadConfig(ctx context.Context, timeout time.Duration) (aws.Config, error) {
	if timeout <= 0 {
		return aws.Config{}, fmt.Errorf("ecr timeout %v: want a positive duration", timeout)
	}
	cfg, err := config.LoadDefaultConfig(ctx,
		config.WithHTTPClient(awshttp.NewBuildableClient().WithTimeout(timeout)))
	if err != nil {
		return aws.Config{}, fmt.Errorf("load aws config: %w", err)
	}
	return cfg, nil
}

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

// Credentials is the result of one token fetch. Every time in it is on the
// local clock, ready to compare with time.Now:
//
//	lifetime := creds.ExpiresAt.Sub(creds.FetchedAt)
//
// is the remaining lifetime, as of FetchedAt, of the first token to expire,
// measured on ECR's own clock, whatever the skew between the two clocks.
// lifetime <= 0 means a token expired even by ECR's clock; such credentials
// are still returned, without error, for the caller to decide.
//
// Its String, Format and LogValue methods, and JSON encoding, show hosts,
// times and skew only, never a password.
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

// clocks reads the two clocks of a fetch: the local one, and ECR's from the
// Date header of an answer.
type clocks struct {
	// now is the local clock.
	now func() time.Time
	// serverTime returns the Date header of the HTTP response an output's
	// ResultMetadata describes; tests replace it, as the SDK's key is private.
	serverTime func(middleware.Metadata) (time.Time, bool)
}

// newClocks returns the local clock now (nil: time.Now) and the SDK's
// record of the Date header.
func newClocks(now func() time.Time) clocks {
	if now == nil {
		now = time.Now
	}
	return clocks{now: now, serverTime: awsmiddleware.GetServerTime}
}

// received returns the local time an answer arrived, which is now, and the
// local clock minus ECR's: that time minus the answer's Date header, or 0
// without one.
func (c clocks) received(md middleware.Metadata) (time.Time, time.Duration) {
	at := c.now()
	server, ok := c.serverTime(md)
	if !ok || server.IsZero() {
		return at, 0
	}
	return at, at.Sub(server)
}

// Fetcher fetches ECR pull credentials.
type Fetcher struct {
	api API
	clk clocks
}

// NewFetcher returns a Fetcher calling api; now is the local clock, which
// stamps FetchedAt and the expiries, and may be nil for time.Now.
func NewFetcher(api API, now func() time.Time) *Fetcher {
	return &Fetcher{api: api, clk: newClocks(now)}
}

// Fetch makes exactly one GetAuthorizationToken call (the SDK's retryer may
// repeat the HTTP request) and decodes its answer. AWS errors are wrapped
// and stay inspectable with errors.As (smithy.APIError, *types.ServerException);
// answers that cannot be decoded yield one of the package's Err* sentinels.
// No error message ever contains a token or password.
//
// The times returned are on the local clock, as Credentials documents: a
// token's lifetime is ECR's expiresAt minus the answer's Date header, or
// minus the local arrival time when there is no Date header. A token
// already expired by ECR's own clock is returned without error.
func (f *Fetcher) Fetch(ctx context.Context) (Credentials, error) {
	return fetch(ctx, f.api, nil, f.clk)
}

// fetch makes one GetAuthorizationToken call for registryIDs (nil: the
// default registry of the caller) and decodes its answer, as Fetch documents.
//
// The SDK marks RegistryIds deprecated: the token is valid for every registry
// the principal may read, whatever the IDs. They are still sent because ECR
// answers one entry per ID whose proxyEndpoint is that registry's host, in
// the right partition's domain, so that no host has to be built here.
func fetch(ctx context.Context, api API, registryIDs []string, clk clocks) (Credentials, error) {
	out, err := api.GetAuthorizationToken(ctx, &ecr.GetAuthorizationTokenInput{RegistryIds: registryIDs})
	if err != nil {
		return Credentials{}, fmt.Errorf("get ecr authorization token: %w", err)
	}
	if out == nil {
		return Credentials{}, fmt.Errorf("decode ecr authorization token: %w", ErrNilOutput)
	}
	fetchedAt, skew := clk.received(out.ResultMetadata)
	if len(out.AuthorizationData) == 0 {
		return Credentials{}, fmt.Errorf("decode ecr authorization token: %w", ErrNoAuthorizationData)
	}
	creds := Credentials{Auths: make([]Auth, 0, len(out.AuthorizationData)), FetchedAt: fetchedAt, ClockSkew: skew}
	for i, d := range out.AuthorizationData {
		a, err := decodeAuth(d.AuthorizationToken, d.ProxyEndpoint, d.ExpiresAt, skew)
		if err != nil {
			return Credentials{}, fmt.Errorf("decode ecr authorization data %d: %w", i, err)
		}
		if creds.ExpiresAt.IsZero() || a.ExpiresAt.Before(creds.ExpiresAt) {
			creds.ExpiresAt = a.ExpiresAt
		}
		creds.Auths = append(creds.Auths, a)
	}
	return creds, nil
}

// decodeAuth checks one authorization data entry and moves its expiry to the
// local clock by adding skew, the local clock minus ECR's. Its errors never
// quote the token: base64's errors give a byte offset only.
func decodeAuth(token, endpoint *string, expiresAt *time.Time, skew time.Duration) (Auth, error) {
	tok := strings.TrimSpace(aws.ToString(token))
	if tok == "" {
		return Auth{}, ErrNilToken
	}
	raw, err := base64.StdEncoding.DecodeString(tok)
	if err != nil {
		return Auth{}, fmt.Errorf("%w: %w", ErrMalformedToken, err)
	}
	user, password, ok := strings.Cut(string(raw), ":")
	if !ok || user == "" || password == "" {
		return Auth{}, ErrTokenFormat
	}
	host := hostOf(aws.ToString(endpoint))
	if host == "" {
		return Auth{}, ErrNoEndpoint
	}
	if expiresAt == nil || expiresAt.IsZero() {
		return Auth{}, ErrNoExpiry
	}
	return Auth{Host: host, Username: user, Password: password, ExpiresAt: expiresAt.Add(skew), ServerExpiresAt: *expiresAt}, nil
}

// hostOf strips the scheme and any path from a proxy endpoint:
// https://123.dkr.ecr.us-east-1.amazonaws.com/ gives 123.dkr.ecr.us-east-1.amazonaws.com.
func hostOf(endpoint string) string {
	e := strings.TrimSpace(endpoint)
	if _, rest, ok := strings.Cut(e, "://"); ok {
		e = rest
	}
	host, _, _ := strings.Cut(e, "/")
	return host
}
