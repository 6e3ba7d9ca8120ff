package ecr_test

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/smithy-go"
	"github.com/google/go-cmp/cmp"

	"github.com/kube-ecr-refresher/kube-ecr-refresher/internal/ecr"
	"github.com/kube-ecr-refresher/kube-ecr-refresher/internal/registry"
	"github.com/kube-ecr-refresher/kube-ecr-refresher/test/fakeecr"
)

// setAWSEnv points the SDK's default configuration at endpoint only: static
// dummy keys, no IMDS, no profile or shared files, no CA bundle.
func setAWSEnv(t *testing.T, endpoint string) {
	t.Helper()
	empty := filepath.Join(t.TempDir(), "empty")
	if err := os.WriteFile(empty, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{
		"AWS_REGION":                             "eu-west-1",
		"AWS_DEFAULT_REGION":                     "",
		"AWS_ACCESS_KEY_ID":                      "AKIDTEST",
		"AWS_SECRET_ACCESS_KEY":                  "dummy-secret",
		"AWS_SESSION_TOKEN":                      "",
		"AWS_EC2_METADATA_DISABLED":              "true",
		"AWS_CA_BUNDLE":                          "",
		"AWS_PROFILE":                            "",
		"AWS_DEFAULT_PROFILE":                    "",
		"AWS_CONFIG_FILE":                        empty,
		"AWS_SHARED_CREDENTIALS_FILE":            empty,
		"AWS_ENDPOINT_URL":                       "",
		"AWS_ENDPOINT_URL_ECR":                   endpoint,
		"AWS_ENDPOINT_URL_ECR_PUBLIC":            "",
		"AWS_ENDPOINT_URL_STS":                   "",
		"AWS_ROLE_ARN":                           "",
		"AWS_WEB_IDENTITY_TOKEN_FILE":            "",
		"AWS_CONTAINER_CREDENTIALS_FULL_URI":     "",
		"AWS_CONTAINER_CREDENTIALS_RELATIVE_URI": "",
		"AWS_IGNORE_CONFIGURED_ENDPOINT_URLS":    "",
		"AWS_USE_FIPS_ENDPOINT":                  "",
		"AWS_USE_DUALSTACK_ENDPOINT":             "",
		"AWS_MAX_ATTEMPTS":                       "",
		"AWS_RETRY_MODE":                         "",
	} {
		t.Setenv(k, v)
	}
}

func TestFetchWithTheSDKAgainstALocalEndpoint(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	srv := fakeecr.New(fakeecr.WithNow(func() time.Time { return now }))
	t.Cleanup(srv.Close)
	setAWSEnv(t, srv.URL)

	src, err := ecr.NewSource(t.Context(), ecr.SourceOptions{Timeout: 5 * time.Second, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatalf("NewSource: %v", err)
	}
	creds, err := src.Fetch(t.Context())
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}

	// AWS_ENDPOINT_URL_ECR is the only endpoint setting, so the server seeing
	// the call proves the SDK honours it.
	wantReqs := []fakeecr.Request{{
		Target:      "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken",
		ContentType: "application/x-amz-json-1.1",
		Signed:      true,
		Region:      "eu-west-1",
		AccessKeyID: "AKIDTEST",
	}}
	if diff := cmp.Diff(wantReqs, srv.Requests()); diff != "" {
		t.Errorf("requests seen by the server (-want +got):\n%s", diff)
	}
	expiry := now.Add(fakeecr.DefaultLifetime)
	want := []string{"123456789012.dkr.ecr.eu-west-1.amazonaws.com", "AWS", srv.LastPassword(), expiry.String()}
	if len(creds.Auths) != 1 {
		t.Fatalf("got %d auths, want 1", len(creds.Auths))
	}
	a := creds.Auths[0]
	if diff := cmp.Diff(want, []string{a.Host, a.Username, a.Password, a.ExpiresAt.UTC().String()}); diff != "" {
		t.Errorf("auth (-want +got):\n%s", diff)
	}
	if !creds.ExpiresAt.Equal(expiry) || !creds.FetchedAt.Equal(now) {
		t.Errorf("credentials expire %v fetched %v, want %v and %v", creds.ExpiresAt, creds.FetchedAt, expiry, now)
	}
}

func TestFetchWithTheSDKReadsTheServersClockFromItsDateHeader(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) // whole seconds: Date has no more
	tests := []struct {
		name string
		// serverAhead is how far the server's clock runs ahead of the local one.
		serverAhead, lifetime time.Duration
	}{
		{name: "A server clock 24 h behind changes nothing", serverAhead: -24 * time.Hour, lifetime: 12 * time.Hour},
		{name: "A server clock 13 h behind changes nothing", serverAhead: -13 * time.Hour, lifetime: 12 * time.Hour},
		{name: "A server clock 7 h behind changes nothing", serverAhead: -7 * time.Hour, lifetime: 12 * time.Hour},
		{name: "A server clock in step changes nothing", lifetime: 12 * time.Hour},
		{name: "A server clock 7 h ahead changes nothing", serverAhead: 7 * time.Hour, lifetime: 12 * time.Hour},
		{name: "A server clock 13 h ahead changes nothing", serverAhead: 13 * time.Hour, lifetime: 12 * time.Hour},
		{name: "A server clock 24 h ahead changes nothing", serverAhead: 24 * time.Hour, lifetime: 12 * time.Hour},
		{name: "A token expired by the server's own clock is returned with a negative lifetime", serverAhead: 13 * time.Hour, lifetime: -time.Minute},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := fakeecr.New(fakeecr.WithNow(func() time.Time { return now }),
				fakeecr.WithClockSkew(tt.serverAhead), fakeecr.WithLifetime(tt.lifetime))
			t.Cleanup(srv.Close)
			setAWSEnv(t, srv.URL)
			t.Setenv("AWS_ENDPOINT_URL_ECR_PUBLIC", srv.URL)

			fetch := func(opts ecr.SourceOptions) registry.Credentials {
				t.Helper()
				opts.Timeout, opts.Now = 5*time.Second, func() time.Time { return now }
				src, err := ecr.NewSource(t.Context(), opts)
				if err != nil {
					t.Fatalf("NewSource: %v", err)
				}
				creds, err := src.Fetch(t.Context())
				if err != nil {
					t.Fatalf("Fetch: %v", err)
				}
				return creds
			}
			single, several := fetch(ecr.SourceOptions{}), fetch(ecr.SourceOptions{Public: true})
			for _, creds := range []registry.Credentials{single, several} {
				if got := creds.ExpiresAt.Sub(creds.FetchedAt); got != tt.lifetime {
					t.Errorf("%v: lifetime %v, want %v", creds, got, tt.lifetime)
				}
				if !creds.FetchedAt.Equal(now) || creds.ClockSkew != -tt.serverAhead {
					t.Errorf("%v: fetched at %v with skew %v, want %v and %v", creds, creds.FetchedAt, creds.ClockSkew, now, -tt.serverAhead)
				}
				for _, a := range creds.Auths {
					if want := now.Add(tt.serverAhead + tt.lifetime); !a.ServerExpiresAt.Equal(want) || !a.ExpiresAt.Equal(now.Add(tt.lifetime)) {
						t.Errorf("%v: want server expiry %v and local expiry %v", a, want, now.Add(tt.lifetime))
					}
				}
			}
		})
	}
}

func TestAccessDeniedStaysInspectable(t *testing.T) {
	srv := fakeecr.New(fakeecr.WithFailure(fakeecr.FailureAccessDenied))
	t.Cleanup(srv.Close)
	setAWSEnv(t, srv.URL)

	src, err := ecr.NewSource(t.Context(), ecr.SourceOptions{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("NewSource: %v", err)
	}
	_, err = src.Fetch(t.Context())
	var apiErr smithy.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode() != "AccessDeniedException" {
		t.Fatalf("Fetch error %v: want an AccessDeniedException API error", err)
	}
	if apiErr.ErrorFault() == smithy.FaultServer {
		t.Errorf("fault %v, want a client fault or unknown", apiErr.ErrorFault())
	}
	if !strings.HasPrefix(err.Error(), "default registry in eu-west-1: get ecr authorization token: ") {
		t.Errorf("error %q lacks the call's name and the operation prefix", err)
	}
	if got := srv.Calls(); got != 1 {
		t.Errorf("server saw %d calls, want 1 (access denied is not retried)", got)
	}
}

func TestTimeoutBoundsTheCall(t *testing.T) {
	srv := fakeecr.New(fakeecr.WithLatency(time.Minute))
	t.Cleanup(srv.Close)
	setAWSEnv(t, srv.URL)

	src, err := ecr.NewSource(t.Context(), ecr.SourceOptions{Timeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatalf("NewSource: %v", err)
	}
	begin := time.Now()
	_, err = src.Fetch(t.Context())
	elapsed := time.Since(begin)
	var netErr net.Error
	if !errors.As(err, &netErr) || !netErr.Timeout() {
		t.Fatalf("Fetch error %v: want a timeout", err)
	}
	// The SDK's retryer repeats timed-out requests (3 attempts, short
	// backoff); the whole call still ends long before the server answers.
	if elapsed > 10*time.Second {
		t.Errorf("Fetch gave up after %v, want a few hundred milliseconds per attempt", elapsed)
	}
	t.Logf("gave up after %v and %d attempts", elapsed, srv.Calls())
}

func TestNewSourceRejectsAMissingRegionBeforeAnyCall(t *testing.T) {
	srv := fakeecr.New()
	t.Cleanup(srv.Close)
	setAWSEnv(t, srv.URL)
	t.Setenv("AWS_REGION", "")

	_, err := ecr.NewSource(t.Context(), ecr.SourceOptions{Timeout: time.Second})
	if err == nil || !strings.Contains(err.Error(), "AWS_REGION is not set") {
		t.Fatalf("NewSource error %v, want AWS_REGION is not set", err)
	}
	if got := srv.Calls(); got != 0 {
		t.Errorf("server saw %d calls, want 0", got)
	}
}

func TestNewSourceRejectsANonPositiveTimeout(t *testing.T) {
	setAWSEnv(t, "http://127.0.0.1:1")
	for _, d := range []time.Duration{0, -time.Second} {
		if _, err := ecr.NewSource(t.Context(), ecr.SourceOptions{Timeout: d}); err == nil {
			t.Errorf("NewSource with timeout %v succeeded, want an error", d)
		}
	}
}
