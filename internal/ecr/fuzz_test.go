package ecr

import (
	"encoding/base64"
	"errors"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/kube-ecr-refresher/kube-ecr-refresher/internal/registry"
)

// decodeErrors are the sentinels decodeAuth returns.
var decodeErrors = []error{ErrNilToken, ErrMalformedToken, ErrTokenFormat, ErrNoEndpoint, ErrNoExpiry}

// decodeErrorText is every message decodeAuth may return, and so all that
// may appear of a token in one: base64's errors give a byte offset only.
var decodeErrorText = regexp.MustCompile(`^(` + regexp.QuoteMeta(ErrNilToken.Error()) +
	`|` + regexp.QuoteMeta(ErrMalformedToken.Error()) + `: illegal base64 data at input byte [0-9]+` +
	`|` + regexp.QuoteMeta(ErrTokenFormat.Error()) +
	`|` + regexp.QuoteMeta(ErrNoEndpoint.Error()) +
	`|` + regexp.QuoteMeta(ErrNoExpiry.Error()) + `)$`)

// FuzzDecodeAuth decodes one authorization data entry of ECR's answer. The
// token is content itself, or its base64 when encode is set (most real
// tokens decode, so the fuzzer reaches every later check); bits 0, 1 and 2
// of nils make the token, the endpoint and the expiry nil.
//
// decodeAuth never panics. On success the user name and password are
// non-empty, user:password is exactly what the token decodes to (and its
// base64 is the token, when the token is canonical base64), the host is the
// endpoint's and the expiry is moved by skew. On error the message is one of
// the sentinels' (so it never holds the token or its password).
func FuzzDecodeAuth(f *testing.F) {
	const endpoint = "https://123456789012.dkr.ecr.us-east-1.amazonaws.com"
	exp := expiry.Unix()
	f.Add("AWS:"+secret, true, endpoint, exp, uint8(0), int64(0))
	f.Add("AWS:"+secret, true, "123456789012.dkr.ecr.us-east-1.amazonaws.com/", exp, uint8(0), int64(-time.Hour))
	f.Add("AWS:a:b:c", true, "https://1.dkr.ecr.eu-west-1.amazonaws.com/", exp, uint8(0), int64(3*time.Second))
	f.Add(goodToken, false, endpoint, exp, uint8(0), int64(0))
	f.Add("  "+goodToken+"\n", false, endpoint, exp, uint8(0), int64(0))
	f.Add("", false, endpoint, exp, uint8(0), int64(0))
	f.Add("", false, endpoint, exp, uint8(1), int64(0))
	f.Add("AWS:"+secret, false, endpoint, exp, uint8(0), int64(0))
	f.Add("AWS"+secret, true, endpoint, exp, uint8(0), int64(0))
	f.Add(":"+secret, true, endpoint, exp, uint8(0), int64(0))
	f.Add("AWS:", true, endpoint, exp, uint8(0), int64(0))
	f.Add("AWS:"+secret, true, "", exp, uint8(2), int64(0))
	f.Add("AWS:"+secret, true, "https://", exp, uint8(0), int64(0))
	f.Add("AWS:"+secret, true, endpoint, exp, uint8(4), int64(0))
	f.Add("AWS:"+secret, true, endpoint, time.Time{}.Unix(), uint8(0), int64(0))
	f.Add(strings.TrimRight(goodToken, "=")+"Q=", false, endpoint, exp, uint8(0), int64(0))
	f.Fuzz(func(t *testing.T, content string, encode bool, endpoint string, expires int64, nils uint8, skew int64) {
		token := content
		if encode {
			token = base64.StdEncoding.EncodeToString([]byte(content))
		}
		expiresAt := time.Unix(expires, 0)
		var tokenP, endpointP *string
		var expiresP *time.Time
		if nils&1 == 0 {
			tokenP = &token
		}
		if nils&2 == 0 {
			endpointP = &endpoint
		}
		if nils&4 == 0 {
			expiresP = &expiresAt
		}
		a, err := decodeAuth(tokenP, endpointP, expiresP, time.Duration(skew))
		if err != nil {
			checkDecodeError(t, err, token)
			return
		}
		if a.Username == "" || a.Password == "" || strings.Contains(a.Username, ":") {
			t.Errorf("decodeAuth(%q) = user %q, password %q", token, a.Username, a.Password)
		}
		raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(token))
		if err != nil || string(raw) != a.Username+":"+a.Password {
			t.Errorf("decodeAuth(%q) = user %q, password %q; the token decodes to %q (error %v)", token, a.Username, a.Password, raw, err)
		}
		if encode && base64.StdEncoding.EncodeToString([]byte(a.Username+":"+a.Password)) != token {
			t.Errorf("decodeAuth(%q) = user %q, password %q, whose base64 is not the token", token, a.Username, a.Password)
		}
		if a.Host == "" || a.Host != hostOf(endpoint) {
			t.Errorf("decodeAuth(endpoint %q) = host %q, want %q", endpoint, a.Host, hostOf(endpoint))
		}
		if !a.ServerExpiresAt.Equal(expiresAt) || !a.ExpiresAt.Equal(expiresAt.Add(time.Duration(skew))) {
			t.Errorf("decodeAuth(expiry %v, skew %v) = expiry %v, server expiry %v", expiresAt, time.Duration(skew), a.ExpiresAt, a.ServerExpiresAt)
		}
	})
}

// checkDecodeError fails t unless err is one of decodeAuth's sentinels with
// its usual message, which cannot quote token or what it decodes to.
func checkDecodeError(t *testing.T, err error, token string) {
	t.Helper()
	known := false
	for _, s := range decodeErrors {
		known = known || errors.Is(err, s)
	}
	if !known {
		t.Errorf("decodeAuth(%q) error %q is none of the sentinels", token, err)
	}
	if !decodeErrorText.MatchString(err.Error()) {
		t.Errorf("decodeAuth(%q) error %q: want one of the sentinels' messages", token, err)
	}
	raw, _ := base64.StdEncoding.DecodeString(strings.TrimSpace(token))
	_, password, _ := strings.Cut(string(raw), ":")
	fixed := ErrNilToken.Error() + ErrMalformedToken.Error() + ": illegal base64 data at input byte" +
		ErrTokenFormat.Error() + ErrNoEndpoint.Error() + ErrNoExpiry.Error()
	for _, s := range []string{strings.TrimSpace(token), string(raw), password} {
		// A short secret, or one spelt like the message's own words, may
		// appear in it by chance.
		if len(s) >= 8 && strings.Contains(err.Error(), s) && !strings.Contains(fixed, s) {
			t.Errorf("decodeAuth error %q quotes the token or its password %q", err, s)
		}
	}
}

// FuzzHostOf strips an endpoint to its host. The host never holds a slash
// and is part of the endpoint; a registry host (as registry.HostRegion
// accepts it) comes back as itself from itself, with https:// before it,
// with a path after it, and with spaces around.
func FuzzHostOf(f *testing.F) {
	for _, s := range [][2]string{
		{"https://123456789012.dkr.ecr.us-east-1.amazonaws.com", "123456789012.dkr.ecr.us-east-1.amazonaws.com"},
		{"123456789012.dkr.ecr.us-east-1.amazonaws.com/", "123456789012.dkr-ecr.ap-south-1.on.aws"},
		{"https://1.dkr.ecr.eu-west-1.amazonaws.com/v2/", "123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn"},
		{"https://", ""},
		{" https:// a/b ", "public.ecr.aws"},
		{"a://b://c/d", "https://123456789012.dkr.ecr.us-east-1.amazonaws.com"},
	} {
		f.Add(s[0], s[1])
	}
	f.Fuzz(func(t *testing.T, endpoint, host string) {
		got := hostOf(endpoint)
		if strings.Contains(got, "/") || !strings.Contains(endpoint, got) {
			t.Errorf("hostOf(%q) = %q", endpoint, got)
		}
		if _, err := registry.HostRegion(host); err != nil {
			return
		}
		for _, e := range []string{host, "https://" + host, "https://" + host + "/", "https://" + host + "/v2/" + endpoint, " \t" + host + "\n"} {
			if got := hostOf(e); got != host {
				t.Errorf("hostOf(%q) = %q, want %q", e, got, host)
			}
		}
	})
}
