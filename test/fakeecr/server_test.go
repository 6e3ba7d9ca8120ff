package fakeecr_test

//lint:file-ignore SA1019 RegistryIds is sent on purpose (see ecr.fetch), so the tests check it.

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	awsmiddleware "github.com/aws/aws-sdk-go-v2/aws/middleware"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/ecr"
	"github.com/aws/aws-sdk-go-v2/service/ecr/types"
	"github.com/aws/smithy-go"
	"github.com/google/go-cmp/cmp"

	"github.com/kube-ecr-refresher/kube-ecr-refresher/test/fakeecr"
)

var fixedNow = time.Date(2026, 1, 2, 3, 4, 5, 678_000_000, time.UTC)

// newClient returns a real SDK client for srv that signs for eu-west-1 with
// static keys, retries without backoff and gives up after attempts.
func newClient(srv *fakeecr.Server, attempts int, timeout time.Duration) *ecr.Client {
	return ecr.New(ecr.Options{
		Region:       "eu-west-1",
		BaseEndpoint: aws.String(srv.URL),
		Credentials: aws.CredentialsProviderFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: "AKIDTEST", SecretAccessKey: "secret", Source: "test"}, nil
		}),
		HTTPClient: awshttp.NewBuildableClient().WithTimeout(timeout),
		Retryer: retry.NewStandard(func(o *retry.StandardOptions) {
			o.MaxAttempts = attempts
			o.Backoff = retry.BackoffDelayerFunc(func(int, error) (time.Duration, error) { return 0, nil })
		}),
	})
}

func start(t *testing.T, opts ...fakeecr.Option) *fakeecr.Server {
	t.Helper()
	srv, err := fakeecr.Start("127.0.0.1:0", opts...)
	if err != nil {
		t.Fatalf("start server: %v", err)
	}
	t.Cleanup(srv.Close)
	return srv
}

type decoded struct {
	User, Password, Endpoint string
	ExpiresAt                time.Time
}

func decode(t *testing.T, out *ecr.GetAuthorizationTokenOutput) []decoded {
	t.Helper()
	var got []decoded
	for _, d := range out.AuthorizationData {
		raw, err := base64.StdEncoding.DecodeString(aws.ToString(d.AuthorizationToken))
		if err != nil {
			t.Fatalf("decode token: %v", err)
		}
		user, pw, _ := strings.Cut(string(raw), ":")
		got = append(got, decoded{User: user, Password: pw, Endpoint: aws.ToString(d.ProxyEndpoint), ExpiresAt: aws.ToTime(d.ExpiresAt)})
	}
	return got
}

func TestGetAuthorizationTokenWithTheSDK(t *testing.T) {
	tests := []struct {
		name     string
		opts     []fakeecr.Option
		in       *ecr.GetAuthorizationTokenInput
		wantEnds []string
	}{
		{
			name:     "The default registry is in the signing region",
			in:       &ecr.GetAuthorizationTokenInput{},
			wantEnds: []string{"https://123456789012.dkr.ecr.eu-west-1.amazonaws.com"},
		},
		{
			name:     "A fixed account and region win over the signature",
			opts:     []fakeecr.Option{fakeecr.WithAccount("000000000042"), fakeecr.WithRegion("ap-south-1")},
			in:       &ecr.GetAuthorizationTokenInput{},
			wantEnds: []string{"https://000000000042.dkr.ecr.ap-south-1.amazonaws.com"},
		},
		{
			name: "Registry ids get one authorization data each",
			in:   &ecr.GetAuthorizationTokenInput{RegistryIds: []string{"111111111111", "222222222222"}},
			wantEnds: []string{
				"https://111111111111.dkr.ecr.eu-west-1.amazonaws.com",
				"https://222222222222.dkr.ecr.eu-west-1.amazonaws.com",
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			opts := append([]fakeecr.Option{
				fakeecr.WithNow(func() time.Time { return fixedNow }),
				fakeecr.WithLifetime(time.Hour),
			}, tt.opts...)
			srv := start(t, opts...)
			out, err := newClient(srv, 1, 5*time.Second).GetAuthorizationToken(t.Context(), tt.in)
			if err != nil {
				t.Fatalf("GetAuthorizationToken: %v", err)
			}
			var want []decoded
			for _, end := range tt.wantEnds {
				want = append(want, decoded{User: "AWS", Password: srv.LastPassword(), Endpoint: end, ExpiresAt: fixedNow.Add(time.Hour)})
			}
			if diff := cmp.Diff(want, decode(t, out)); diff != "" {
				t.Errorf("authorization data (-want +got):\n%s", diff)
			}
			wantReq := []fakeecr.Request{{
				Target:      fakeecr.TargetGetAuthorizationToken,
				ContentType: "application/x-amz-json-1.1",
				Signed:      true,
				Region:      "eu-west-1",
				AccessKeyID: "AKIDTEST",
				RegistryIDs: tt.in.RegistryIds,
			}}
			if diff := cmp.Diff(wantReq, srv.Requests()); diff != "" {
				t.Errorf("requests (-want +got):\n%s", diff)
			}
			if got := srv.Calls(); got != 1 {
				t.Errorf("Calls() = %d, want 1", got)
			}
		})
	}
}

func TestFailuresMapToSDKErrors(t *testing.T) {
	tests := []struct {
		name      string
		failure   fakeecr.Failure
		in        *ecr.GetAuthorizationTokenInput
		check     func(error) bool
		wantCode  string
		wantCalls int64 // 3 when the SDK retries, 1 when it does not
	}{
		{
			name:      "A server error is a typed ServerException and is retried",
			failure:   fakeecr.FailureServerError,
			check:     func(err error) bool { var e *types.ServerException; return errors.As(err, &e) },
			wantCode:  "ServerException",
			wantCalls: 3,
		},
		{
			name:    "Throttling is recognized as a throttle and retried",
			failure: fakeecr.FailureThrottling,
			check: func(err error) bool {
				return retry.IsErrorThrottles(retry.DefaultThrottles).IsErrorThrottle(err) == aws.TrueTernary
			},
			wantCode:  "ThrottlingException",
			wantCalls: 3,
		},
		{
			name:      "Access denied is not retried",
			failure:   fakeecr.FailureAccessDenied,
			check:     func(err error) bool { return !retry.NewStandard().IsErrorRetryable(err) },
			wantCode:  "AccessDeniedException",
			wantCalls: 1,
		},
		{
			name:      "An invalid registry id is a typed InvalidParameterException",
			in:        &ecr.GetAuthorizationTokenInput{RegistryIds: []string{"nope"}},
			check:     func(err error) bool { var e *types.InvalidParameterException; return errors.As(err, &e) },
			wantCode:  "InvalidParameterException",
			wantCalls: 1,
		},
		{
			name: "More than ten registry ids are rejected, as ECR does",
			in: &ecr.GetAuthorizationTokenInput{RegistryIds: []string{
				"000000000001", "000000000002", "000000000003", "000000000004", "000000000005", "000000000006",
				"000000000007", "000000000008", "000000000009", "000000000010", "000000000011",
			}},
			check:     func(err error) bool { var e *types.InvalidParameterException; return errors.As(err, &e) },
			wantCode:  "InvalidParameterException",
			wantCalls: 1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := start(t, fakeecr.WithFailure(tt.failure))
			_, err := newClient(srv, 3, 5*time.Second).GetAuthorizationToken(t.Context(), tt.in)
			if err == nil {
				t.Fatal("GetAuthorizationToken succeeded, want an error")
			}
			var apiErr smithy.APIError
			if !errors.As(err, &apiErr) || apiErr.ErrorCode() != tt.wantCode {
				t.Errorf("error %v: want API error code %s", err, tt.wantCode)
			}
			if !tt.check(err) {
				t.Errorf("error %v (%T) fails the check", err, err)
			}
			if got := srv.Calls(); got != tt.wantCalls {
				t.Errorf("Calls() = %d, want %d", got, tt.wantCalls)
			}
			if got := srv.Passwords(); len(got) != 0 {
				t.Errorf("Passwords() has %d entries, want none after failures", len(got))
			}
		})
	}
}

func TestTimeoutHangsUntilTheClientGivesUp(t *testing.T) {
	srv := start(t, fakeecr.WithFailure(fakeecr.FailureTimeout))
	begin := time.Now()
	_, err := newClient(srv, 1, 200*time.Millisecond).GetAuthorizationToken(t.Context(), nil)
	var netErr net.Error
	if !errors.As(err, &netErr) || !netErr.Timeout() {
		t.Fatalf("error %v: want a timeout", err)
	}
	if elapsed := time.Since(begin); elapsed > 3*time.Second {
		t.Errorf("gave up after %v, want about 200ms", elapsed)
	}
}

func TestLatencyDelaysTheAnswer(t *testing.T) {
	srv := start(t, fakeecr.WithLatency(300*time.Millisecond))
	begin := time.Now()
	if _, err := newClient(srv, 1, 5*time.Second).GetAuthorizationToken(t.Context(), nil); err != nil {
		t.Fatalf("GetAuthorizationToken: %v", err)
	}
	if elapsed := time.Since(begin); elapsed < 300*time.Millisecond {
		t.Errorf("answered after %v, want at least 300ms", elapsed)
	}
}

func TestSettersApplyWhileRunning(t *testing.T) {
	srv := start(t, fakeecr.WithNow(func() time.Time { return fixedNow }))
	client := newClient(srv, 1, 5*time.Second)
	call := func() ([]decoded, error) {
		out, err := client.GetAuthorizationToken(t.Context(), nil)
		if err != nil {
			return nil, err
		}
		return decode(t, out), nil
	}

	got, err := call()
	if err != nil {
		t.Fatalf("first call: %v", err)
	}
	if want := fixedNow.Add(fakeecr.DefaultLifetime); !got[0].ExpiresAt.Equal(want) {
		t.Errorf("default expiry %v, want %v", got[0].ExpiresAt, want)
	}

	srv.SetFailure(fakeecr.FailureAccessDenied)
	if _, err := call(); err == nil {
		t.Fatal("call with access denied succeeded")
	}

	srv.SetFailure(fakeecr.FailureNone)
	srv.SetLifetime(2 * time.Minute)
	srv.SetAccount("999999999999")
	srv.SetRegion("us-west-2")
	srv.SetLatency(0)
	got, err = call()
	if err != nil {
		t.Fatalf("call after recovery: %v", err)
	}
	want := decoded{User: "AWS", Password: srv.LastPassword(), Endpoint: "https://999999999999.dkr.ecr.us-west-2.amazonaws.com", ExpiresAt: fixedNow.Add(2 * time.Minute)}
	if diff := cmp.Diff([]decoded{want}, got); diff != "" {
		t.Errorf("authorization data (-want +got):\n%s", diff)
	}
	if got := srv.Calls(); got != 3 {
		t.Errorf("Calls() = %d, want 3", got)
	}
}

func TestPasswordsAreUniqueUnderConcurrency(t *testing.T) {
	srv := start(t)
	client := newClient(srv, 1, 5*time.Second)
	const n = 20
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() {
			if _, err := client.GetAuthorizationToken(t.Context(), nil); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("GetAuthorizationToken: %v", err)
	}
	seen := map[string]bool{}
	for _, pw := range srv.Passwords() {
		if seen[pw] {
			t.Errorf("password %q issued twice", pw)
		}
		seen[pw] = true
	}
	if len(seen) != n || srv.Calls() != n {
		t.Errorf("got %d passwords and %d calls, want %d of each", len(seen), srv.Calls(), n)
	}
}

const fakeSignature = "AWS4-HMAC-SHA256 Credential=AKIDTEST/20260102/us-east-1/ecr-public/aws4_request, SignedHeaders=host, Signature=00"

func post(t *testing.T, srv *fakeecr.Server, target, auth, body string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, srv.URL+"/", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-amz-json-1.1")
	req.Header.Set("X-Amz-Target", target)
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("post: %v", err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("read body: %v", err)
	}
	return resp, b
}

func TestRawProtocolErrors(t *testing.T) {
	tests := []struct {
		name, target, auth, body string
		wantStatus               int
		wantType                 string
	}{
		{
			name:       "An unknown target is an unknown operation",
			target:     "AmazonEC2ContainerRegistry_V20150921.DescribeRepositories",
			auth:       fakeSignature,
			body:       "{}",
			wantStatus: http.StatusBadRequest,
			wantType:   "UnknownOperationException",
		},
		{
			name:       "An unsigned request is rejected",
			target:     fakeecr.TargetGetAuthorizationToken,
			body:       "{}",
			wantStatus: http.StatusBadRequest,
			wantType:   "MissingAuthenticationTokenException",
		},
		{
			name:       "A body that is not JSON is a serialization error",
			target:     fakeecr.TargetGetAuthorizationToken,
			auth:       fakeSignature,
			body:       "{",
			wantStatus: http.StatusBadRequest,
			wantType:   "SerializationException",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := start(t)
			resp, body := post(t, srv, tt.target, tt.auth, tt.body)
			if resp.StatusCode != tt.wantStatus {
				t.Errorf("status %d, want %d", resp.StatusCode, tt.wantStatus)
			}
			if got := resp.Header.Get("X-Amzn-ErrorType"); got != tt.wantType {
				t.Errorf("X-Amzn-ErrorType %q, want %q", got, tt.wantType)
			}
			var e struct {
				Type    string `json:"__type"`
				Message string `json:"message"`
			}
			if err := json.Unmarshal(body, &e); err != nil || e.Type != tt.wantType || e.Message == "" {
				t.Errorf("body %s: want __type %s and a message (%v)", body, tt.wantType, err)
			}
		})
	}
}

func TestPublicGetAuthorizationToken(t *testing.T) {
	srv := start(t, fakeecr.WithNow(func() time.Time { return fixedNow }))
	resp, body := post(t, srv, fakeecr.TargetPublicGetAuthorizationToken, fakeSignature, "{}")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, body)
	}
	var out struct {
		AuthorizationData struct {
			AuthorizationToken string  `json:"authorizationToken"`
			ExpiresAt          float64 `json:"expiresAt"`
		} `json:"authorizationData"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
	raw, err := base64.StdEncoding.DecodeString(out.AuthorizationData.AuthorizationToken)
	if err != nil {
		t.Fatalf("decode token: %v", err)
	}
	if want := "AWS:" + srv.LastPassword(); string(raw) != want {
		t.Errorf("token decodes to %q, want %q", raw, want)
	}
	if want := float64(fixedNow.Add(fakeecr.DefaultLifetime).UnixMilli()) / 1000; out.AuthorizationData.ExpiresAt != want {
		t.Errorf("expiresAt %v, want %v", out.AuthorizationData.ExpiresAt, want)
	}
}

func TestCloseReleasesHangingRequests(t *testing.T) {
	srv, err := fakeecr.Start("", fakeecr.WithFailure(fakeecr.FailureTimeout))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := newClient(srv, 1, time.Minute).GetAuthorizationToken(context.Background(), nil)
		done <- err
	}()
	for srv.Calls() == 0 {
		time.Sleep(5 * time.Millisecond)
	}
	begin := time.Now()
	srv.Close()
	if elapsed := time.Since(begin); elapsed > 2*time.Second {
		t.Errorf("Close took %v", elapsed)
	}
	select {
	case err := <-done:
		if err == nil {
			t.Error("hanging request succeeded after Close")
		}
	case <-time.After(5 * time.Second):
		t.Fatal("hanging request still running 5s after Close")
	}
	srv.Close() // a second Close is harmless
}

func TestStartRejectsNonLoopbackAddresses(t *testing.T) {
	for _, addr := range []string{"0.0.0.0:0", ":0", "192.0.2.1:0", "[::1]:0", "localhost:0", "127.0.0.1"} {
		t.Run(addr, func(t *testing.T) {
			srv, err := fakeecr.Start(addr)
			if err == nil {
				srv.Close()
				t.Fatalf("Start(%q) succeeded, want an error", addr)
			}
		})
	}
}

func TestControlEndpoint(t *testing.T) {
	srv := start(t)
	postForm := func(v url.Values) (int, fakeecr.State) {
		resp, err := http.PostForm(srv.URL+fakeecr.ControlPath, v)
		if err != nil {
			t.Fatalf("post control: %v", err)
		}
		defer resp.Body.Close()
		var st fakeecr.State
		if resp.StatusCode == http.StatusOK {
			if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
				t.Fatalf("decode state: %v", err)
			}
		}
		return resp.StatusCode, st
	}

	status, st := postForm(url.Values{"failure": {"throttling"}, "latency": {"10ms"}, "lifetime": {"-2m"}, "clock_skew": {"-24h"}, "region": {"eu-north-1"}})
	want := fakeecr.State{Failure: "throttling", Latency: "10ms", Lifetime: "-2m0s", ClockSkew: "-24h0m0s", Account: fakeecr.DefaultAccount, Region: "eu-north-1"}
	if status != http.StatusOK {
		t.Fatalf("status %d", status)
	}
	if diff := cmp.Diff(want, st); diff != "" {
		t.Errorf("state (-want +got):\n%s", diff)
	}

	// One bad value applies nothing.
	for _, bad := range []url.Values{
		{"failure": {"none"}, "latency": {"soon"}},
		{"failure": {"none"}, "latency": {"-1s"}},
		{"failure": {"none"}, "clock_skew": {"later"}},
		{"failure": {"none"}, "lifetime": {"long"}},
	} {
		if status, _ := postForm(bad); status != http.StatusBadRequest {
			t.Errorf("post %v: status %d, want 400", bad, status)
		}
	}
	resp, err := http.Get(srv.URL + fakeecr.ControlPath)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got fakeecr.State
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("state after a rejected update (-want +got):\n%s", diff)
	}
	if srv.Calls() != 0 {
		t.Errorf("control requests counted as calls: %d", srv.Calls())
	}
}

func TestParseFailure(t *testing.T) {
	for _, f := range []fakeecr.Failure{fakeecr.FailureNone, fakeecr.FailureServerError, fakeecr.FailureThrottling, fakeecr.FailureAccessDenied, fakeecr.FailureTimeout} {
		got, err := fakeecr.ParseFailure(f.String())
		if err != nil || got != f {
			t.Errorf("ParseFailure(%q) = %v, %v; want %v", f.String(), got, err, f)
		}
	}
	if _, err := fakeecr.ParseFailure("flaky"); err == nil {
		t.Error(`ParseFailure("flaky") succeeded, want an error`)
	}
}

func TestClockSkewAndLifetimeOnTheServersOwnClock(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) // whole seconds: Date has no more
	tests := []struct {
		name     string
		lifetime time.Duration
		skew     time.Duration
		// wantDate and wantExpiry are the answer's Date header and token expiry.
		wantDate, wantExpiry time.Time
	}{
		{
			name:     "Without skew the Date header is the server's now and the token lives its lifetime",
			lifetime: 12 * time.Hour, wantDate: now, wantExpiry: now.Add(12 * time.Hour),
		},
		{
			name:     "A positive skew moves the Date header and the expiry ahead together",
			lifetime: 12 * time.Hour, skew: 13 * time.Hour, wantDate: now.Add(13 * time.Hour), wantExpiry: now.Add(25 * time.Hour),
		},
		{
			name:     "A negative skew moves the Date header and the expiry behind together",
			lifetime: 12 * time.Hour, skew: -24 * time.Hour, wantDate: now.Add(-24 * time.Hour), wantExpiry: now.Add(-12 * time.Hour),
		},
		{
			name:     "A negative lifetime issues a token already expired by the server's own clock",
			lifetime: -time.Hour, skew: 7 * time.Hour, wantDate: now.Add(7 * time.Hour), wantExpiry: now.Add(6 * time.Hour),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, target := range []string{fakeecr.TargetGetAuthorizationToken, fakeecr.TargetPublicGetAuthorizationToken} {
				srv := start(t, fakeecr.WithNow(func() time.Time { return now }),
					fakeecr.WithLifetime(tt.lifetime), fakeecr.WithClockSkew(tt.skew))
				resp, body := post(t, srv, target, fakeSignature, "{}")
				if resp.StatusCode != http.StatusOK {
					t.Fatalf("%s: status %d: %s", target, resp.StatusCode, body)
				}
				date, err := http.ParseTime(resp.Header.Get("Date"))
				if err != nil || !date.Equal(tt.wantDate) {
					t.Errorf("%s: Date %q (%v), want %v", target, resp.Header.Get("Date"), err, tt.wantDate)
				}
				if got := expiresAt(t, body); !got.Equal(tt.wantExpiry) {
					t.Errorf("%s: expiresAt %v, want %v", target, got, tt.wantExpiry)
				}
			}
		})
	}
}

// expiresAt returns the expiry of the (first) token of an answer, private
// or public.
func expiresAt(t *testing.T, body []byte) time.Time {
	t.Helper()
	var out struct {
		AuthorizationData json.RawMessage `json:"authorizationData"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		t.Fatalf("decode %s: %v", body, err)
	}
	var data struct {
		ExpiresAt float64 `json:"expiresAt"`
	}
	var list []json.RawMessage
	raw := out.AuthorizationData
	if json.Unmarshal(raw, &list) == nil && len(list) > 0 {
		raw = list[0]
	}
	if err := json.Unmarshal(raw, &data); err != nil {
		t.Fatalf("decode %s: %v", raw, err)
	}
	return time.UnixMilli(int64(data.ExpiresAt * 1000)).UTC()
}

func TestTheSDKSeesTheSkewedDateHeader(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	srv := start(t, fakeecr.WithNow(func() time.Time { return now }))
	srv.SetClockSkew(-13 * time.Hour)
	out, err := newClient(srv, 1, 5*time.Second).GetAuthorizationToken(t.Context(), nil)
	if err != nil {
		t.Fatalf("GetAuthorizationToken: %v", err)
	}
	date, ok := awsmiddleware.GetServerTime(out.ResultMetadata)
	if want := now.Add(-13 * time.Hour); !ok || !date.Equal(want) {
		t.Errorf("server time %v (%v), want %v", date, ok, want)
	}
	if got, want := decode(t, out)[0].ExpiresAt, now.Add(-13*time.Hour+fakeecr.DefaultLifetime); !got.Equal(want) {
		t.Errorf("expiresAt %v, want %v", got, want)
	}
}

func TestErrorAnswersAreDatedOnTheSkewedClock(t *testing.T) {
	srv := start(t, fakeecr.WithFailure(fakeecr.FailureThrottling), fakeecr.WithClockSkew(24*time.Hour))
	before := time.Now().Add(24 * time.Hour).Truncate(time.Second)
	resp, _ := post(t, srv, fakeecr.TargetGetAuthorizationToken, fakeSignature, "{}")
	after := time.Now().Add(24 * time.Hour)
	if resp.StatusCode != http.StatusBadRequest {
		t.Fatalf("status %d, want 400", resp.StatusCode)
	}
	date, err := http.ParseTime(resp.Header.Get("Date"))
	if err != nil || date.Before(before) || date.After(after) {
		t.Errorf("Date %q (%v), want between %v and %v", resp.Header.Get("Date"), err, before, after)
	}
}
