package ecr_test

import (
	"cmp"
	"encoding/xml"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	gocmp "github.com/google/go-cmp/cmp"

	"github.com/kube-ecr-refresher/kube-ecr-refresher/internal/ecr"
	"github.com/kube-ecr-refresher/kube-ecr-refresher/internal/registry"
	"github.com/kube-ecr-refresher/kube-ecr-refresher/test/fakeecr"
)

// Keys the fake STS hands out for an assumed role.
const (
	assumedKeyID  = "ASIAASSUMEDTEST"
	assumedSecret = "assumed-secret"
)

// stsCall records what the fake STS saw of one request.
type stsCall struct {
	Action, RoleARN, SessionName string
	// AccessKeyID and Region come from the SigV4 credential scope.
	AccessKeyID, Region string
}

// fakeSTS answers AssumeRole (AWS query protocol) with fixed keys that
// expire in an hour, and records every request.
type fakeSTS struct {
	*httptest.Server
	mu    sync.Mutex
	calls []stsCall
}

func newFakeSTS(t *testing.T) *fakeSTS {
	t.Helper()
	f := &fakeSTS{}
	f.Server = httptest.NewServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeSTS) serve(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	c := stsCall{Action: r.PostForm.Get("Action"), RoleARN: r.PostForm.Get("RoleArn"), SessionName: r.PostForm.Get("RoleSessionName")}
	// Credential=AKID/20260101/eu-west-1/sts/aws4_request
	if _, cred, ok := strings.Cut(r.Header.Get("Authorization"), "Credential="); ok {
		cred, _, _ = strings.Cut(cred, ",")
		if parts := strings.Split(cred, "/"); len(parts) == 5 {
			c.AccessKeyID, c.Region = parts[0], parts[2]
		}
	}
	f.mu.Lock()
	f.calls = append(f.calls, c)
	f.mu.Unlock()
	if c.Action != "AssumeRole" {
		http.Error(w, "only AssumeRole is served", http.StatusBadRequest)
		return
	}
	w.Header().Set("Content-Type", "text/xml")
	fmt.Fprintf(w, `<AssumeRoleResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleResult>
    <Credentials>
      <AccessKeyId>%s</AccessKeyId>
      <SecretAccessKey>%s</SecretAccessKey>
      <SessionToken>assumed-session-token</SessionToken>
      <Expiration>%s</Expiration>
    </Credentials>
    <AssumedRoleUser>
      <Arn>arn:aws:sts::210987654321:assumed-role/reader/%s</Arn>
      <AssumedRoleId>AROATEST:%s</AssumedRoleId>
    </AssumedRoleUser>
  </AssumeRoleResult>
  <ResponseMetadata><RequestId>req-1</RequestId></ResponseMetadata>
</AssumeRoleResponse>`, assumedKeyID, assumedSecret, time.Now().Add(time.Hour).UTC().Format(time.RFC3339),
		xmlEscape(c.SessionName), xmlEscape(c.SessionName))
}

func (f *fakeSTS) Calls() []stsCall {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.calls)
}

func xmlEscape(s string) string {
	var b strings.Builder
	_ = xml.EscapeText(&b, []byte(s))
	return b.String()
}

func TestSourceWithTheSDKAgainstLocalEndpoints(t *testing.T) {
	const role = "arn:aws:iam::210987654321:role/reader"
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	srv := fakeecr.New(fakeecr.WithNow(func() time.Time { return now }))
	t.Cleanup(srv.Close)
	sts := newFakeSTS(t)
	setAWSEnv(t, srv.URL)
	// The region of the base configuration is not used with registries listed.
	t.Setenv("AWS_REGION", "")
	t.Setenv("AWS_ENDPOINT_URL_ECR_PUBLIC", srv.URL)
	t.Setenv("AWS_ENDPOINT_URL_STS", sts.URL)

	src, err := ecr.NewSource(t.Context(), ecr.SourceOptions{
		Registries: []registry.Registry{
			{AccountID: "111111111111", Region: "eu-west-1"},
			{AccountID: "333333333333", Region: "us-east-1", RoleARN: role},
			{AccountID: "222222222222", Region: "eu-west-1"},
		},
		ExtraHosts: []string{"444444444444.dkr-ecr.eu-west-1.on.aws"},
		Public:     true,
		Timeout:    5 * time.Second,
		Now:        func() time.Time { return now },
	})
	if err != nil {
		t.Fatalf("NewSource: %v", err)
	}
	if got := srv.Calls() + int64(len(sts.Calls())); got != 0 {
		t.Fatalf("NewSource made %d calls, want 0", got)
	}
	creds, err := src.Fetch(t.Context())
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}

	// The AWS_ENDPOINT_URL_* variables are the only endpoint settings, so the
	// servers seeing the calls proves the SDK honours them for ECR in every
	// region, for ECR Public and for STS.
	const ecrTarget = fakeecr.TargetGetAuthorizationToken
	wantReqs := []fakeecr.Request{
		{Target: ecrTarget, ContentType: "application/x-amz-json-1.1", Signed: true, Region: "eu-west-1", AccessKeyID: "AKIDTEST", RegistryIDs: []string{"111111111111", "222222222222"}},
		{Target: ecrTarget, ContentType: "application/x-amz-json-1.1", Signed: true, Region: "us-east-1", AccessKeyID: assumedKeyID, RegistryIDs: []string{"333333333333"}},
		{Target: fakeecr.TargetPublicGetAuthorizationToken, ContentType: "application/x-amz-json-1.1", Signed: true, Region: "us-east-1", AccessKeyID: "AKIDTEST"},
	}
	if diff := gocmp.Diff(wantReqs, sortRequests(srv.Requests())); diff != "" {
		t.Errorf("requests seen by the ECR server (-want +got):\n%s", diff)
	}
	wantSTS := []stsCall{{Action: "AssumeRole", RoleARN: role, SessionName: "kube-ecr-refresher", AccessKeyID: "AKIDTEST", Region: "us-east-1"}}
	if diff := gocmp.Diff(wantSTS, sts.Calls()); diff != "" {
		t.Errorf("requests seen by STS (-want +got):\n%s", diff)
	}

	type hostPassword struct{ Host, User, Password string }
	var got []hostPassword
	for _, a := range creds.Auths {
		got = append(got, hostPassword{a.Host, a.Username, a.Password})
	}
	// Each call issues its own password; tell them apart by host.
	pw := make(map[string]string)
	for _, a := range creds.Auths {
		pw[a.Host] = a.Password
	}
	eu, us, public := pw["111111111111.dkr.ecr.eu-west-1.amazonaws.com"], pw["333333333333.dkr.ecr.us-east-1.amazonaws.com"], pw["public.ecr.aws"]
	if diff := gocmp.Diff(sortStrings(srv.Passwords()), sortStrings([]string{eu, us, public})); diff != "" {
		t.Errorf("passwords are not one per call (-issued +written):\n%s", diff)
	}
	want := []hostPassword{
		{"111111111111.dkr.ecr.eu-west-1.amazonaws.com", "AWS", eu},
		{"222222222222.dkr.ecr.eu-west-1.amazonaws.com", "AWS", eu},
		{"333333333333.dkr.ecr.us-east-1.amazonaws.com", "AWS", us},
		{"444444444444.dkr-ecr.eu-west-1.on.aws", "AWS", eu},
		{"public.ecr.aws", "AWS", public},
	}
	if diff := gocmp.Diff(want, got); diff != "" {
		t.Errorf("auths (-want +got):\n%s", diff)
	}
	if expiry := now.Add(fakeecr.DefaultLifetime); !creds.ExpiresAt.Equal(expiry) || !creds.FetchedAt.Equal(now) {
		t.Errorf("credentials expire %v fetched %v, want %v and %v", creds.ExpiresAt, creds.FetchedAt, expiry, now)
	}

	// A second refresh calls ECR again but reuses the assumed role's
	// credentials until they expire.
	if _, err := src.Fetch(t.Context()); err != nil {
		t.Fatalf("second Fetch: %v", err)
	}
	if got := srv.Calls(); got != 6 {
		t.Errorf("ECR server saw %d calls after two fetches, want 6", got)
	}
	if got := len(sts.Calls()); got != 1 {
		t.Errorf("STS saw %d calls after two fetches, want 1", got)
	}
}

func TestSourceWithoutOptionsIsTheSingleRegistryDefault(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	srv := fakeecr.New(fakeecr.WithNow(func() time.Time { return now }))
	t.Cleanup(srv.Close)
	setAWSEnv(t, srv.URL)

	src, err := ecr.NewSource(t.Context(), ecr.SourceOptions{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("NewSource: %v", err)
	}
	creds, err := src.Fetch(t.Context())
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	wantReqs := []fakeecr.Request{{
		Target:      "AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken",
		ContentType: "application/x-amz-json-1.1",
		Signed:      true,
		Region:      "eu-west-1",
		AccessKeyID: "AKIDTEST",
	}}
	if diff := gocmp.Diff(wantReqs, srv.Requests()); diff != "" {
		t.Errorf("requests seen by the server (-want +got):\n%s", diff)
	}
	if diff := gocmp.Diff([]string{"123456789012.dkr.ecr.eu-west-1.amazonaws.com"}, creds.Hosts()); diff != "" {
		t.Errorf("hosts (-want +got):\n%s", diff)
	}
}

func TestSourceNamesTheFailingRoleWithTheSDK(t *testing.T) {
	const role = "arn:aws:iam::210987654321:role/reader"
	srv := fakeecr.New()
	t.Cleanup(srv.Close)
	sts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/xml")
		w.WriteHeader(http.StatusForbidden)
		fmt.Fprint(w, `<ErrorResponse><Error><Type>Sender</Type><Code>AccessDenied</Code><Message>not authorized to perform sts:AssumeRole</Message></Error><RequestId>req-1</RequestId></ErrorResponse>`)
	}))
	t.Cleanup(sts.Close)
	setAWSEnv(t, srv.URL)
	t.Setenv("AWS_ENDPOINT_URL_STS", sts.URL)

	src, err := ecr.NewSource(t.Context(), ecr.SourceOptions{
		Registries: []registry.Registry{
			{AccountID: "111111111111", Region: "eu-west-1"},
			{AccountID: "333333333333", Region: "us-east-1", RoleARN: role},
		},
		Timeout: 5 * time.Second,
	})
	if err != nil {
		t.Fatalf("NewSource: %v", err)
	}
	creds, err := src.Fetch(t.Context())
	var partial *ecr.PartialError
	if !errors.As(err, &partial) || !errors.Is(err, ecr.ErrPartial) {
		t.Fatalf("Fetch error %v, want a partial error", err)
	}
	for _, want := range []string{"registries 333333333333 in us-east-1 as " + role + ": get ecr authorization token: ", "AccessDenied"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Fetch error %q lacks %q", err, want)
		}
	}
	if strings.Contains(err.Error(), "111111111111") {
		t.Errorf("Fetch error %q names the group that succeeded", err)
	}
	if diff := gocmp.Diff([]string{"registries 333333333333 in us-east-1 as " + role}, partial.Failed); diff != "" {
		t.Errorf("failed calls (-want +got):\n%s", diff)
	}
	// The group that succeeded is served all the same.
	if diff := gocmp.Diff([]string{"111111111111.dkr.ecr.eu-west-1.amazonaws.com"}, creds.Hosts()); diff != "" {
		t.Errorf("hosts (-want +got):\n%s", diff)
	}
}

func sortRequests(reqs []fakeecr.Request) []fakeecr.Request {
	slices.SortFunc(reqs, func(a, b fakeecr.Request) int {
		return cmp.Or(cmp.Compare(a.Target, b.Target), cmp.Compare(a.Region, b.Region), cmp.Compare(a.AccessKeyID, b.AccessKeyID))
	})
	return reqs
}

func sortStrings(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// Every kind of malformed 200 the local endpoint gives (truncated JSON, no
// authorization data, a token that is not base64, one without user:password,
// no expiry) is an error, and none yields credentials.
func TestSourceRejectsEveryMalformedAnswer(t *testing.T) {
	srv := fakeecr.New(fakeecr.WithFailure(fakeecr.FailureMalformed))
	t.Cleanup(srv.Close)
	setAWSEnv(t, srv.URL)
	src, err := ecr.NewSource(t.Context(), ecr.SourceOptions{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("NewSource: %v", err)
	}
	for i := range 5 {
		creds, err := src.Fetch(t.Context())
		if err == nil {
			t.Errorf("malformed answer %d: Fetch returned %v and no error", i, creds)
			continue
		}
		if strings.Contains(err.Error(), "never-usable") || strings.Contains(err.Error(), "QVdTOn") {
			t.Errorf("malformed answer %d: error %q shows the token", i, err)
		}
	}
	for _, a := range srv.Answers() {
		if !a.Malformed || a.Password != "" {
			t.Errorf("answer %+v: want a malformed answer that issued nothing", a)
		}
	}
}
