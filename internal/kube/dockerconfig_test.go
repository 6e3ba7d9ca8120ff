package kube

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kube-ecr-refresher/kube-ecr-refresher/internal/registry"
)

const (
	testHost  = "123456789012.dkr.ecr.eu-west-1.amazonaws.com"
	testHost2 = "210987654321.dkr.ecr.us-east-1.amazonaws.com"
)

// testT0 is the fixed time the tests' tokens are fetched at.
func testT0() time.Time { return time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC) }

// testToken is an ECR-like token for hosts (testHost when none), fetched at
// fetched and valid for lifetime.
func testToken(fetched time.Time, lifetime time.Duration, password string, hosts ...string) registry.Credentials {
	if len(hosts) == 0 {
		hosts = []string{testHost}
	}
	tok := registry.Credentials{FetchedAt: fetched, ExpiresAt: fetched.Add(lifetime)}
	for _, h := range hosts {
		tok.Auths = append(tok.Auths, registry.Auth{Host: h, Username: "AWS", Password: password})
	}
	return tok
}

func mustPayload(t *testing.T, tok registry.Credentials) *Payload {
	t.Helper()
	p, err := NewPayload(tok)
	if err != nil {
		t.Fatalf("NewPayload(%v): %v", tok, err)
	}
	return p
}

func TestDockerConfigJSON(t *testing.T) {
	tests := []struct {
		name  string
		auths []registry.Auth
		want  map[string]any
	}{
		{
			name:  "One registry carries user name, password and their base64 auth",
			auths: []registry.Auth{{Host: testHost, Username: "AWS", Password: "s3cret"}},
			want: map[string]any{"auths": map[string]any{
				testHost: map[string]any{"username": "AWS", "password": "s3cret", "auth": base64.StdEncoding.EncodeToString([]byte("AWS:s3cret"))},
			}},
		},
		{
			name: "Two registries get one entry each",
			auths: []registry.Auth{
				{Host: testHost2, Username: "AWS", Password: "two"},
				{Host: testHost, Username: "AWS", Password: "one"},
			},
			want: map[string]any{"auths": map[string]any{
				testHost:  map[string]any{"username": "AWS", "password": "one", "auth": "QVdTOm9uZQ=="},
				testHost2: map[string]any{"username": "AWS", "password": "two", "auth": "QVdTOnR3bw=="},
			}},
		},
		{
			name:  "A password containing a colon is kept whole",
			auths: []registry.Auth{{Host: testHost, Username: "AWS", Password: "a:b"}},
			want: map[string]any{"auths": map[string]any{
				testHost: map[string]any{"username": "AWS", "password": "a:b", "auth": base64.StdEncoding.EncodeToString([]byte("AWS:a:b"))},
			}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := DockerConfigJSON(tt.auths)
			if err != nil {
				t.Fatalf("DockerConfigJSON: %v", err)
			}
			var got map[string]any
			if err := json.Unmarshal(b, &got); err != nil {
				t.Fatalf("output is not JSON: %v\n%s", err, b)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("DockerConfigJSON mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestDockerConfigJSONIsDeterministic(t *testing.T) {
	a := []registry.Auth{{Host: testHost, Username: "AWS", Password: "one"}, {Host: testHost2, Username: "AWS", Password: "two"}}
	b := []registry.Auth{a[1], a[0]}
	first, err := DockerConfigJSON(a)
	if err != nil {
		t.Fatal(err)
	}
	for range 20 {
		again, err := DockerConfigJSON(b)
		if err != nil {
			t.Fatal(err)
		}
		if string(again) != string(first) {
			t.Fatalf("same auths in another order render differently:\n%s\n%s", first, again)
		}
	}
}

func TestDockerConfigJSONErrors(t *testing.T) {
	tests := []struct {
		name  string
		auths []registry.Auth
		want  error
	}{
		{name: "No auths at all is refused", auths: nil, want: ErrNoAuths},
		{name: "An empty host is refused", auths: []registry.Auth{{Username: "AWS", Password: "p"}}, want: ErrMalformedAuth},
		{name: "An empty user name is refused", auths: []registry.Auth{{Host: testHost, Password: "p"}}, want: ErrMalformedAuth},
		{name: "An empty password is refused", auths: []registry.Auth{{Host: testHost, Username: "AWS"}}, want: ErrMalformedAuth},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := DockerConfigJSON(tt.auths)
			if !errors.Is(err, tt.want) {
				t.Fatalf("DockerConfigJSON error = %v, want %v", err, tt.want)
			}
			if b != nil {
				t.Errorf("DockerConfigJSON returned %q with an error", b)
			}
		})
	}
}

func TestParseDockerConfigJSONRoundTrip(t *testing.T) {
	tests := []struct {
		name  string
		auths []registry.Auth
		want  []string
	}{
		{
			name:  "One registry comes back as its host",
			auths: []registry.Auth{{Host: testHost, Username: "AWS", Password: "p"}},
			want:  []string{testHost},
		},
		{
			name:  "Hosts come back sorted whatever the input order",
			auths: []registry.Auth{{Host: testHost2, Username: "AWS", Password: "p"}, {Host: testHost, Username: "AWS", Password: "q"}},
			want:  []string{testHost, testHost2},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := DockerConfigJSON(tt.auths)
			if err != nil {
				t.Fatal(err)
			}
			got, err := ParseDockerConfigJSON(b)
			if err != nil {
				t.Fatalf("ParseDockerConfigJSON(%s): %v", b, err)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("hosts mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseDockerConfigJSON(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    []string
		wantErr error
	}{
		{name: "User name and password without auth are accepted", in: `{"auths":{"h":{"username":"AWS","password":"p"}}}`, want: []string{"h"}},
		{name: "An auth field alone is accepted", in: `{"auths":{"h":{"auth":"QVdTOnA="}}}`, want: []string{"h"}},
		{name: "Unknown fields are ignored", in: `{"auths":{"h":{"auth":"QVdTOnA=","email":"x"}},"credsStore":"ecr"}`, want: []string{"h"}},
		{name: "Text that is not JSON is malformed", in: `not json`, wantErr: ErrMalformedAuth},
		{name: "Truncated JSON is malformed", in: `{"auths":{"h":{"auth":"QVdTOnA="}`, wantErr: ErrMalformedAuth},
		{name: "Auths of the wrong JSON type are malformed", in: `{"auths":["h"]}`, wantErr: ErrMalformedAuth},
		{name: "An empty document has no auths", in: `{}`, wantErr: ErrNoAuths},
		{name: "A JSON null has no auths", in: `null`, wantErr: ErrNoAuths},
		{name: "An empty auths object has no auths", in: `{"auths":{}}`, wantErr: ErrNoAuths},
		{name: "An entry without credentials is malformed", in: `{"auths":{"h":{}}}`, wantErr: ErrMalformedAuth},
		{name: "A null entry is malformed", in: `{"auths":{"h":null}}`, wantErr: ErrMalformedAuth},
		{name: "A user name without password is malformed", in: `{"auths":{"h":{"username":"AWS"}}}`, wantErr: ErrMalformedAuth},
		{name: "An auth field that is not base64 is malformed", in: `{"auths":{"h":{"auth":"%%%"}}}`, wantErr: ErrMalformedAuth},
		{name: "An auth field without a colon is malformed", in: `{"auths":{"h":{"auth":"QVdT"}}}`, wantErr: ErrMalformedAuth},
		{name: "An entry for an empty host is malformed", in: `{"auths":{"":{"auth":"QVdTOnA="},"h":{"auth":"QVdTOnA="}}}`, wantErr: ErrMalformedAuth},
		{name: "One bad entry among good ones is malformed", in: `{"auths":{"a":{"auth":"QVdTOnA="},"b":{}}}`, wantErr: ErrMalformedAuth},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseDockerConfigJSON([]byte(tt.in))
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("ParseDockerConfigJSON error = %v, want %v", err, tt.wantErr)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("hosts mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestNewPayload(t *testing.T) {
	tok := testToken(testT0(), 12*time.Hour, "pw", testHost2, testHost, testHost2)
	p := mustPayload(t, tok)
	if want := testHost + "," + testHost2; p.Hosts != want {
		t.Errorf("Hosts = %q, want %q (sorted, without duplicates)", p.Hosts, want)
	}
	data, err := DockerConfigJSON(tok.Auths)
	if err != nil {
		t.Fatal(err)
	}
	if string(p.Data) != string(data) {
		t.Errorf("Data = %s, want %s", p.Data, data)
	}
	if p.Digest != digest(data) || len(p.Digest) != 64 {
		t.Errorf("Digest = %q, want the hex sha256 of Data", p.Digest)
	}
	if _, err := NewPayload(registry.Credentials{ExpiresAt: testT0()}); !errors.Is(err, ErrNoAuths) {
		t.Errorf("NewPayload of a token without auths: error = %v, want %v", err, ErrNoAuths)
	}
}

func TestPayloadPrintingAndLoggingNeverShowThePassword(t *testing.T) {
	const password = "very-secret-password"
	tok := testToken(testT0(), 12*time.Hour, password, testHost, testHost2)
	p := mustPayload(t, tok)
	// Data holds the password twice: in clear and inside the base64 auth.
	encoded := base64.StdEncoding.EncodeToString([]byte("AWS:" + password))

	var outputs []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%d"} {
		outputs = append(outputs, fmt.Sprintf(verb, p), fmt.Sprintf(verb, *p), fmt.Sprintf(verb, []any{p}), fmt.Sprintf(verb, tok))
	}
	for _, v := range []any{p, *p, tok} {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("marshal %T: %v", v, err)
		}
		outputs = append(outputs, string(b))
	}
	var buf bytes.Buffer
	for _, h := range []slog.Handler{slog.NewJSONHandler(&buf, nil), slog.NewTextHandler(&buf, nil)} {
		slog.New(h).Info("payload", "payload", p, "payload_value", *p, "token", tok)
	}
	outputs = append(outputs, buf.String())

	for _, out := range outputs {
		for _, leak := range []string{password, encoded, string(p.Data)} {
			if strings.Contains(out, leak) {
				t.Errorf("output leaks %q: %s", leak, out)
			}
		}
	}
	want := "{hosts=" + testHost + "," + testHost2 + " expires_at=2026-01-02T15:04:05Z fetched_at=2026-01-02T03:04:05Z}"
	if got := p.String(); got != want {
		t.Errorf("Payload.String() = %q, want %q", got, want)
	}
	for _, want := range []string{testHost, testHost2, "expires_at"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("log output lacks %q:\n%s", want, buf.String())
		}
	}
}
