// Package ecr owns the AWS side: the subset of the ECR API the controller calls and
// the token fetch that turns GetAuthorizationToken into registry.Credentials.
package ecr

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/smithy-go/middleware"

	"github.com/kube-ecr-refresher/kube-ecr-refresher/internal/registry"
)

// API is the subset of the ECR client a Source calls; *ecr.Client
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

// fetch makes exactly one GetAuthorizationToken call for registryIDs (nil:
// the default registry of the caller; the SDK's retryer may repeat the HTTP
// request) and decodes its answer. AWS errors are wrapped and stay
// inspectable with errors.As (smithy.APIError, *types.ServerException);
// answers that cannot be decoded yield one of the package's Err* sentinels.
// No error message ever contains a token or password.
//
// The times returned are on the local clock, as registry.Credentials
// documents: a token's lifetime is ECR's expiresAt minus the answer's Date
// header, or minus the local arrival time when there is no Date header. A
// token already expired by ECR's own clock is returned without error.
//
// The SDK marks RegistryIds deprecated: the token is valid for every registry
// the principal may read, whatever the IDs. They are still sent because ECR
// answers one entry per ID whose proxyEndpoint is that registry's host, in
// the right partition's domain, so that no host has to be built here.
func fetch(ctx context.Context, api API, registryIDs []string, clk clocks) (registry.Credentials, error) {
	//lint:ignore SA1019 deliberate: see the doc comment above (one proxyEndpoint per registry ID).
	out, err := api.GetAuthorizationToken(ctx, &ecr.GetAuthorizationTokenInput{RegistryIds: registryIDs})
	if err != nil {
		return registry.Credentials{}, fmt.Errorf("get ecr authorization token: %w", err)
	}
	if out == nil {
		return registry.Credentials{}, fmt.Errorf("decode ecr authorization token: %w", ErrNilOutput)
	}
	fetchedAt, skew := clk.received(out.ResultMetadata)
	if len(out.AuthorizationData) == 0 {
		return registry.Credentials{}, fmt.Errorf("decode ecr authorization token: %w", ErrNoAuthorizationData)
	}
	creds := registry.Credentials{Auths: make([]registry.Auth, 0, len(out.AuthorizationData)), FetchedAt: fetchedAt, ClockSkew: skew}
	for i, d := range out.AuthorizationData {
		a, err := decodeAuth(d.AuthorizationToken, d.ProxyEndpoint, d.ExpiresAt, skew)
		if err != nil {
			return registry.Credentials{}, fmt.Errorf("decode ecr authorization data %d: %w", i, err)
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
func decodeAuth(token, endpoint *string, expiresAt *time.Time, skew time.Duration) (registry.Auth, error) {
	tok := strings.TrimSpace(aws.ToString(token))
	if tok == "" {
		return registry.Auth{}, ErrNilToken
	}
	raw, err := base64.StdEncoding.DecodeString(tok)
	if err != nil {
		return registry.Auth{}, fmt.Errorf("%w: %w", ErrMalformedToken, err)
	}
	user, password, ok := strings.Cut(string(raw), ":")
	if !ok || user == "" || password == "" {
		return registry.Auth{}, ErrTokenFormat
	}
	host := hostOf(aws.ToString(endpoint))
	if host == "" {
		return registry.Auth{}, ErrNoEndpoint
	}
	if expiresAt == nil || expiresAt.IsZero() {
		return registry.Auth{}, ErrNoExpiry
	}
	return registry.Auth{Host: host, Username: user, Password: password, ExpiresAt: expiresAt.Add(skew), ServerExpiresAt: *expiresAt}, nil
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
