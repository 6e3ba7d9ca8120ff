package registry

import (
	"bytes"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

const secret = "s3cr3t-password-value"

var (
	now    = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	expiry = now.Add(12 * time.Hour)
)

func TestPrintingAndLoggingNeverShowThePassword(t *testing.T) {
	auth := Auth{Host: "123456789012.dkr.ecr.us-east-1.amazonaws.com", Username: "AWS", Password: secret, ExpiresAt: expiry, ServerExpiresAt: expiry.Add(-time.Hour)}
	creds := Credentials{Auths: []Auth{auth, auth}, ExpiresAt: expiry, FetchedAt: now, ClockSkew: time.Hour}

	var outputs []string
	for _, verb := range []string{"%v", "%+v", "%#v", "%s", "%q", "%x", "%d"} {
		outputs = append(outputs,
			fmt.Sprintf(verb, auth), fmt.Sprintf(verb, &auth), fmt.Sprintf(verb, creds), fmt.Sprintf(verb, &creds),
			fmt.Sprintf(verb, creds.Auths), fmt.Sprintf(verb, []any{creds}))
	}
	outputs = append(outputs, fmt.Errorf("wrap: %v", creds).Error(), auth.String(), creds.String())
	for _, v := range []any{auth, &auth, creds, &creds, creds.Auths} {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatalf("marshal %T: %v", v, err)
		}
		outputs = append(outputs, string(b))
	}

	var buf bytes.Buffer
	for _, h := range []slog.Handler{slog.NewJSONHandler(&buf, nil), slog.NewTextHandler(&buf, nil)} {
		log := slog.New(h)
		log.Info("fetched", "credentials", creds, "auth", auth, "auth_ptr", &auth)
		log.Info("fetched", slog.Any("credentials", creds), slog.Any("auths", creds.Auths))
		log.Info("group", slog.Group("g", "credentials", creds))
	}
	outputs = append(outputs, buf.String())

	for _, out := range outputs {
		if strings.Contains(out, secret) {
			t.Errorf("output leaks the password: %s", out)
		}
	}
	for _, want := range []string{auth.Host, "expires_at", "server_expires_at", "clock_skew"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("log output lacks %q:\n%s", want, buf.String())
		}
	}
	if got, want := creds.String(), "{hosts=[123456789012.dkr.ecr.us-east-1.amazonaws.com 123456789012.dkr.ecr.us-east-1.amazonaws.com] expires_at=2026-03-04T17:06:07Z fetched_at=2026-03-04T05:06:07Z clock_skew=1h0m0s}"; got != want {
		t.Errorf("String() = %q, want %q", got, want)
	}
	if got, want := auth.String(), "{host=123456789012.dkr.ecr.us-east-1.amazonaws.com expires_at=2026-03-04T17:06:07Z server_expires_at=2026-03-04T16:06:07Z}"; got != want {
		t.Errorf("Auth.String() = %q, want %q", got, want)
	}
}

func TestHosts(t *testing.T) {
	creds := Credentials{Auths: []Auth{{Host: "a"}, {Host: "b"}}}
	if diff := cmp.Diff([]string{"a", "b"}, creds.Hosts()); diff != "" {
		t.Errorf("Hosts (-want +got):\n%s", diff)
	}
	if got := (Credentials{}).Hosts(); len(got) != 0 {
		t.Errorf("Hosts of empty credentials = %v", got)
	}
}
