package ecr

//lint:file-ignore SA1019 RegistryIds is sent on purpose (see ecr.fetch), so the tests check it.

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/aws-sdk-go-v2/service/ecr/types"
	"github.com/aws/smithy-go/middleware"
	"github.com/google/go-cmp/cmp"

	"github.com/kube-ecr-refresher/kube-ecr-refresher/internal/registry"
)

// fakeAPI answers GetAuthorizationToken with out and err and counts calls.
type fakeAPI struct {
	out    *ecr.GetAuthorizationTokenOutput
	err    error
	calls  int
	inputs []*ecr.GetAuthorizationTokenInput
}

func (f *fakeAPI) GetAuthorizationToken(_ context.Context, in *ecr.GetAuthorizationTokenInput, _ ...func(*ecr.Options)) (*ecr.GetAuthorizationTokenOutput, error) {
	f.calls++
	f.inputs = append(f.inputs, in)
	return f.out, f.err
}

// The SDK client must satisfy the consumer-side interface.
var _ API = (*ecr.Client)(nil)

const secret = "s3cr3t-password-value"

var (
	now       = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	expiry    = now.Add(12 * time.Hour)
	goodToken = base64.StdEncoding.EncodeToString([]byte("AWS:" + secret))
)

func data(token, endpoint *string, expiresAt *time.Time) types.AuthorizationData {
	return types.AuthorizationData{AuthorizationToken: token, ProxyEndpoint: endpoint, ExpiresAt: expiresAt}
}

func output(d ...types.AuthorizationData) *ecr.GetAuthorizationTokenOutput {
	return &ecr.GetAuthorizationTokenOutput{AuthorizationData: d}
}

func b64(s string) *string { return aws.String(base64.StdEncoding.EncodeToString([]byte(s))) }

// dateKey is where fake answers keep their Date header: the SDK's own
// metadata key is private.
type dateKey struct{}

// fakeServerTime reads the Date header fake answers keep under dateKey.
func fakeServerTime(md middleware.Metadata) (time.Time, bool) {
	v, ok := md.Get(dateKey{}).(time.Time)
	return v, ok
}

// fakeClocks is the local clock now and fake answers' Date header.
func fakeClocks(now time.Time) clocks {
	return clocks{now: func() time.Time { return now }, serverTime: fakeServerTime}
}

// dated gives out a Date header.
func dated(out *ecr.GetAuthorizationTokenOutput, date time.Time) *ecr.GetAuthorizationTokenOutput {
	out.ResultMetadata.Set(dateKey{}, date)
	return out
}

// skewCase is one row of the clock skew tables.
type skewCase struct {
	name string
	// date is the answer's Date header (zero: none) and expiresAt its
	// token's expiry, for a local receipt time of now.
	date, expiresAt time.Time
	// wantLifetime is ExpiresAt - FetchedAt, wantSkew ClockSkew.
	wantLifetime, wantSkew time.Duration
}

// skewCases are a 12 h token received at now while the server's clock is
// off by every skew of the issue, one token expired by the server's own
// clock, and one answer without a Date header.
func skewCases() []skewCase {
	var cases []skewCase
	for _, h := range []int{-24, -13, -7, 0, 7, 13, 24} {
		skew := time.Duration(h) * time.Hour // local minus server
		date := now.Add(-skew)
		cases = append(cases, skewCase{
			name:      fmt.Sprintf("A 12 h token lives 12 h on the local clock when the local clock is %+dh off the server's", h),
			date:      date,
			expiresAt: date.Add(12 * time.Hour),
			// FetchedAt+lifetime is exactly 12 h after local receipt.
			wantLifetime: 12 * time.Hour,
			wantSkew:     skew,
		})
	}
	return append(cases,
		skewCase{
			name:         "A token expired by the server's own clock is returned with a negative lifetime",
			date:         now.Add(-3 * time.Hour),
			expiresAt:    now.Add(-3*time.Hour - time.Minute),
			wantLifetime: -time.Minute,
			wantSkew:     3 * time.Hour,
		},
		skewCase{
			name:         "Without a Date header the lifetime is measured from the local receipt time",
			expiresAt:    now.Add(5 * time.Hour),
			wantLifetime: 5 * time.Hour,
		},
	)
}

func TestFetchMeasuresTheLifetimeOnTheServersClock(t *testing.T) {
	const host = "123456789012.dkr.ecr.us-east-1.amazonaws.com"
	for _, tt := range skewCases() {
		t.Run(tt.name, func(t *testing.T) {
			out := output(data(&goodToken, aws.String("https://"+host), &tt.expiresAt))
			if !tt.date.IsZero() {
				out = dated(out, tt.date)
			}
			got, err := fetch(t.Context(), &fakeAPI{out: out}, nil, fakeClocks(now))
			if err != nil {
				t.Fatalf("Fetch: %v", err)
			}
			want := registry.Credentials{
				Auths:     []registry.Auth{{Host: host, Username: "AWS", Password: secret, ExpiresAt: now.Add(tt.wantLifetime), ServerExpiresAt: tt.expiresAt}},
				ExpiresAt: now.Add(tt.wantLifetime),
				FetchedAt: now,
				ClockSkew: tt.wantSkew,
			}
			if diff := cmp.Diff(want, got, authCmp); diff != "" {
				t.Errorf("credentials (-want +got):\n%s", diff)
			}
			if lifetime := got.ExpiresAt.Sub(got.FetchedAt); lifetime != tt.wantLifetime {
				t.Errorf("lifetime %v, want %v", lifetime, tt.wantLifetime)
			}
		})
	}
}

func TestFetchRejectsMalformedAnswers(t *testing.T) {
	endpoint := aws.String("https://123456789012.dkr.ecr.us-east-1.amazonaws.com")
	tests := []struct {
		name string
		out  *ecr.GetAuthorizationTokenOutput
		want error
	}{
		{name: "A nil output is rejected", out: nil, want: ErrNilOutput},
		{name: "An output without authorization data is rejected", out: output(), want: ErrNoAuthorizationData},
		{name: "A nil token is rejected", out: output(data(nil, endpoint, &expiry)), want: ErrNilToken},
		{name: "An empty token is rejected", out: output(data(aws.String(""), endpoint, &expiry)), want: ErrNilToken},
		{name: "A token that is not base64 is rejected", out: output(data(aws.String("AWS:"+secret), endpoint, &expiry)), want: ErrMalformedToken},
		{name: "A decoded token without a colon is rejected", out: output(data(b64("AWS"+secret), endpoint, &expiry)), want: ErrTokenFormat},
		{name: "A decoded token without a user is rejected", out: output(data(b64(":"+secret), endpoint, &expiry)), want: ErrTokenFormat},
		{name: "A decoded token without a password is rejected", out: output(data(b64("AWS:"), endpoint, &expiry)), want: ErrTokenFormat},
		{name: "A nil proxy endpoint is rejected", out: output(data(&goodToken, nil, &expiry)), want: ErrNoEndpoint},
		{name: "An empty proxy endpoint is rejected", out: output(data(&goodToken, aws.String(""), &expiry)), want: ErrNoEndpoint},
		{name: "A proxy endpoint that is only a scheme is rejected", out: output(data(&goodToken, aws.String("https://"), &expiry)), want: ErrNoEndpoint},
		{name: "A nil expiry is rejected", out: output(data(&goodToken, endpoint, nil)), want: ErrNoExpiry},
		{name: "A zero expiry is rejected", out: output(data(&goodToken, endpoint, &time.Time{})), want: ErrNoExpiry},
		{
			name: "A bad second entry rejects the whole answer",
			out:  output(data(&goodToken, endpoint, &expiry), data(&goodToken, endpoint, nil)),
			want: ErrNoExpiry,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			api := &fakeAPI{out: tt.out}
			creds, err := fetch(t.Context(), api, nil, newClocks(func() time.Time { return now }))
			if !errors.Is(err, tt.want) {
				t.Fatalf("Fetch error = %v, want %v", err, tt.want)
			}
			if msg := err.Error(); strings.Contains(msg, secret) || strings.Contains(msg, goodToken) {
				t.Errorf("error message %q leaks the token", msg)
			}
			if diff := cmp.Diff(registry.Credentials{}, creds); diff != "" {
				t.Errorf("credentials on error (-want +got):\n%s", diff)
			}
			if api.calls != 1 {
				t.Errorf("GetAuthorizationToken called %d times, want 1", api.calls)
			}
		})
	}
}

func TestFetchDecodesAnswers(t *testing.T) {
	later := expiry.Add(time.Hour)
	tests := []struct {
		name string
		out  *ecr.GetAuthorizationTokenOutput
		want registry.Credentials
	}{
		{
			name: "The scheme is stripped from the proxy endpoint",
			out:  output(data(&goodToken, aws.String("https://123456789012.dkr.ecr.us-east-1.amazonaws.com"), &expiry)),
			want: registry.Credentials{
				Auths:     []registry.Auth{{Host: "123456789012.dkr.ecr.us-east-1.amazonaws.com", Username: "AWS", Password: secret, ExpiresAt: expiry}},
				ExpiresAt: expiry,
				FetchedAt: now,
			},
		},
		{
			name: "An endpoint without scheme but with a trailing slash gives the bare host",
			out:  output(data(&goodToken, aws.String("123456789012.dkr.ecr.us-east-1.amazonaws.com/"), &expiry)),
			want: registry.Credentials{
				Auths:     []registry.Auth{{Host: "123456789012.dkr.ecr.us-east-1.amazonaws.com", Username: "AWS", Password: secret, ExpiresAt: expiry}},
				ExpiresAt: expiry,
				FetchedAt: now,
			},
		},
		{
			name: "A password containing colons is kept whole",
			out:  output(data(b64("AWS:a:b:c"), aws.String("https://1.dkr.ecr.eu-west-1.amazonaws.com/"), &expiry)),
			want: registry.Credentials{
				Auths:     []registry.Auth{{Host: "1.dkr.ecr.eu-west-1.amazonaws.com", Username: "AWS", Password: "a:b:c", ExpiresAt: expiry}},
				ExpiresAt: expiry,
				FetchedAt: now,
			},
		},
		{
			name: "Several registries keep their order and the earliest expiry wins",
			out: output(
				data(&goodToken, aws.String("https://111111111111.dkr.ecr.us-east-1.amazonaws.com"), &later),
				data(&goodToken, aws.String("https://222222222222.dkr.ecr.us-east-1.amazonaws.com"), &expiry),
			),
			want: registry.Credentials{
				Auths: []registry.Auth{
					{Host: "111111111111.dkr.ecr.us-east-1.amazonaws.com", Username: "AWS", Password: secret, ExpiresAt: later},
					{Host: "222222222222.dkr.ecr.us-east-1.amazonaws.com", Username: "AWS", Password: secret, ExpiresAt: expiry},
				},
				ExpiresAt: expiry,
				FetchedAt: now,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			api := &fakeAPI{out: tt.out}
			got, err := fetch(t.Context(), api, nil, newClocks(func() time.Time { return now }))
			if err != nil {
				t.Fatalf("Fetch: %v", err)
			}
			// Compare fields, not through String: Format hides the password.
			for i := range tt.want.Auths {
				// Without a Date header the expiry is ECR's as answered.
				tt.want.Auths[i].ServerExpiresAt = tt.want.Auths[i].ExpiresAt
			}
			if diff := cmp.Diff(tt.want, got, authCmp); diff != "" {
				t.Errorf("credentials (-want +got):\n%s", diff)
			}
			if api.calls != 1 {
				t.Errorf("GetAuthorizationToken called %d times, want 1", api.calls)
			}
			if in := api.inputs[0]; in == nil || len(in.RegistryIds) != 0 {
				t.Errorf("input %+v, want an empty input", in)
			}
		})
	}
}

func TestFetchWrapsAPIErrors(t *testing.T) {
	apiErr := &types.ServerException{Message: aws.String("boom")}
	_, err := fetch(t.Context(), &fakeAPI{err: apiErr}, nil, newClocks(nil))
	var got *types.ServerException
	if !errors.As(err, &got) || got != apiErr {
		t.Fatalf("Fetch error %v: want the ServerException wrapped", err)
	}
	if !strings.HasPrefix(err.Error(), "get ecr authorization token: ") {
		t.Errorf("error %q lacks the operation prefix", err)
	}
}

func TestFetchedAtDefaultsToTheWallClock(t *testing.T) {
	before := time.Now()
	creds, err := fetch(t.Context(), &fakeAPI{out: output(data(&goodToken, aws.String("h"), &expiry))}, nil, newClocks(nil))
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	if creds.FetchedAt.Before(before) || creds.FetchedAt.After(time.Now()) {
		t.Errorf("FetchedAt %v is not the wall clock", creds.FetchedAt)
	}
}
