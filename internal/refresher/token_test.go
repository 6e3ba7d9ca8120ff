package refresher

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/kube-ecr-refresher/kube-ecr-refresher/internal/ecr"
	"github.com/kube-ecr-refresher/kube-ecr-refresher/internal/kube"
	"github.com/kube-ecr-refresher/kube-ecr-refresher/internal/registry"
)

func TestRefreshOnce(t *testing.T) {
	t0 := testT0()
	previous := token(t0.Add(-time.Hour), 12*time.Hour, "pw-0")

	tests := []struct {
		name string
		next func(int, time.Time) (registry.Credentials, error)
		// wantWait is the wait before the next fetch; with jitter, the
		// wait is in [wantWait, wantWaitMax].
		wantWait    time.Duration
		wantWaitMax time.Duration
		wantToken   string // password of the current token afterwards
		wantErr     bool
		// noCurrent starts without a current token (pw-0, valid for 11 h).
		noCurrent bool
	}{
		{
			name:      "A 12 hour token is fetched again when half its lifetime remains",
			next:      freshTokens(12 * time.Hour),
			wantWait:  6 * time.Hour,
			wantToken: "pw-1",
		},
		{
			name: "A token fetched a while ago counts from its fetch time",
			next: func(int, time.Time) (registry.Credentials, error) {
				return token(t0.Add(-time.Hour), 12*time.Hour, "pw-1"), nil
			},
			wantWait:  5 * time.Hour,
			wantToken: "pw-1",
		},
		{
			name:      "A token due sooner than the minimum interval waits the minimum interval",
			noCurrent: true,
			next:      freshTokens(90 * time.Second),
			wantWait:  time.Minute,
			wantToken: "pw-1",
		},
		{
			name:      "A token past its refresh time waits the minimum interval",
			noCurrent: true,
			next: func(_ int, now time.Time) (registry.Credentials, error) {
				return token(now.Add(-7*time.Hour), 12*time.Hour, "pw-1"), nil
			},
			wantWait:  time.Minute,
			wantToken: "pw-1",
		},
		{
			name:      "An expired token waits the minimum interval",
			noCurrent: true,
			next: func(_ int, now time.Time) (registry.Credentials, error) {
				return token(now.Add(-13*time.Hour), 12*time.Hour, "pw-1"), nil
			},
			wantWait:  time.Minute,
			wantToken: "pw-1",
		},
		{
			name:      "A token that expires before the current one does not replace it",
			next:      freshTokens(90 * time.Second),
			wantWait:  5 * time.Hour,
			wantToken: "pw-0",
		},
		{
			name: "A token already expired by ECR's clock does not replace a valid current one",
			next: func(_ int, now time.Time) (registry.Credentials, error) {
				return token(now, -time.Minute, "pw-1"), nil
			},
			wantWait:  5 * time.Hour,
			wantToken: "pw-0",
		},
		{
			name: "A token already expired by ECR's clock becomes current when there is no other and is fetched again after the minimum interval",
			next: func(_ int, now time.Time) (registry.Credentials, error) {
				return token(now, -time.Minute, "pw-1"), nil
			},
			noCurrent: true,
			wantWait:  time.Minute,
			wantToken: "pw-1",
		},
		{
			name:        "A failed fetch keeps the current token and waits the first retry delay",
			next:        failingTokens(errors.New("AccessDeniedException")),
			wantWait:    10 * time.Second,
			wantWaitMax: 12 * time.Second,
			wantToken:   "pw-0",
			wantErr:     true,
		},
		{
			name: "A token without auths is a failed fetch",
			next: func(_ int, now time.Time) (registry.Credentials, error) {
				return registry.Credentials{FetchedAt: now, ExpiresAt: now.Add(12 * time.Hour)}, nil
			},
			wantWait:    10 * time.Second,
			wantWaitMax: 12 * time.Second,
			wantToken:   "pw-0",
			wantErr:     true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := newEnv(t, testOptions())
			if !tt.noCurrent {
				e.setPayload(t, previous)
			}
			e.tokens.set(tt.next)
			backoff := e.c.newBackoff()

			got, err := e.c.refreshOnce(t.Context(), &backoff)
			if (err != nil) != tt.wantErr {
				t.Errorf("refreshOnce error = %v, want error: %t", err, tt.wantErr)
			}
			wantMax := max(tt.wantWait, tt.wantWaitMax)
			if got < tt.wantWait || got > wantMax {
				t.Errorf("wait = %s, want %s to %s", got, tt.wantWait, wantMax)
			}
			if pw := e.c.Payload().Token.Auths[0].Password; pw != tt.wantToken {
				t.Errorf("current token %q, want %q", pw, tt.wantToken)
			}
			if strings.Contains(e.logs.String(), "pw-") {
				t.Errorf("logs show a password:\n%s", e.logs.String())
			}
		})
	}
}

// Some registries failing: the others are refreshed at once, the failing
// ones are named, and the fetch is retried with backoff, not in 6 h.
func TestRefreshOnceWithSomeRegistriesFailing(t *testing.T) {
	opts := testOptions()
	obs := &recordingObserver{}
	events := &recordingEvents{}
	opts.Observer, opts.Events = obs, events
	e := newEnv(t, opts)
	e.setPayload(t, token(e.clk.Now().Add(-time.Hour), 12*time.Hour, "pw-0"))
	failed := []string{"registries 222222222222 in us-east-1"}
	e.tokens.set(func(_ int, now time.Time) (registry.Credentials, error) {
		return token(now, 12*time.Hour, "pw-1"), &ecr.PartialError{Failed: failed, Err: errors.New("AccessDeniedException")}
	})
	backoff := e.c.newBackoff()
	wait, err := e.c.refreshOnce(t.Context(), &backoff)
	if !errors.Is(err, ecr.ErrPartial) {
		t.Errorf("refreshOnce error = %v, want ecr.ErrPartial", err)
	}
	if pw := e.c.Payload().Token.Auths[0].Password; pw != "pw-1" {
		t.Errorf("current token %q, want the fresh pw-1", pw)
	}
	if maxWait := e.c.opts.RetryInitial * 6 / 5; wait > maxWait {
		t.Errorf("next fetch in %s, want a retry within %s", wait, maxWait)
	}
	if diff := cmp.Diff(failed, obs.failed); diff != "" {
		t.Errorf("registries reported failing (-want +got):\n%s", diff)
	}
	if events.count("RefreshFailed") != 1 {
		t.Errorf("TokenRefreshFailed Events = %d, want 1", events.count("RefreshFailed"))
	}
	if !strings.Contains(e.logs.String(), failed[0]) {
		t.Errorf("the failing registry is not named in the logs:\n%s", e.logs.String())
	}

	// The same registry failing again posts no new Event; another one does.
	_, _ = e.c.refreshOnce(t.Context(), &backoff)
	if got := events.count("RefreshFailed"); got != 1 {
		t.Errorf("TokenRefreshFailed Events after the same failure = %d, want 1", got)
	}
	failed = []string{"ecr public in us-east-1"}
	_, _ = e.c.refreshOnce(t.Context(), &backoff)
	if got := events.count("RefreshFailed"); got != 2 {
		t.Errorf("TokenRefreshFailed Events after another registry failed = %d, want 2", got)
	}
}

func TestRefreshOnceBackoff(t *testing.T) {
	e := newEnv(t, testOptions())
	e.tokens.set(failingTokens(errors.New("ThrottlingException")))
	opts := e.c.opts
	backoff := e.c.newBackoff()

	// Jitter is random: many rounds make a delay beyond RetryMax show.
	base := opts.RetryInitial
	for i := range 40 {
		got, err := e.c.refreshOnce(t.Context(), &backoff)
		if err == nil {
			t.Fatalf("retry %d: refreshOnce succeeded, want the fetch error", i+1)
		}
		hi := min(time.Duration(1.2*float64(base)), opts.RetryMax)
		if got < base || got > hi {
			t.Fatalf("retry %d: wait = %s, want %s to %s", i+1, got, base, hi)
		}
		base = min(2*base, opts.RetryMax)
	}
	if e.c.Payload() != nil {
		t.Fatal("a token was published although every fetch failed")
	}

	e.tokens.set(freshTokens(12 * time.Hour))
	if got, err := e.c.refreshOnce(t.Context(), &backoff); err != nil || got != 6*time.Hour {
		t.Errorf("after recovery refreshOnce = (%s, %v), want (6h, nil)", got, err)
	}
	if backoff.Duration != opts.RetryInitial {
		t.Errorf("backoff after a success = %s, want it reset to %s", backoff.Duration, opts.RetryInitial)
	}
}

// The schedule is a pure function of the token and now: every time is on
// the local clock, ECR's skew already taken out by internal/ecr.
func TestNextFetch(t *testing.T) {
	t0 := testT0()
	const minInterval = time.Minute
	tests := []struct {
		name     string
		tok      registry.Credentials
		now      time.Time
		fraction float64
		retry    time.Duration
		want     time.Duration
	}{
		{name: "A 12 hour token is fetched again when half its lifetime remains", tok: token(t0, 12*time.Hour, "pw"), now: t0, fraction: 0.5, retry: -1, want: 6 * time.Hour},
		{name: "A quarter remaining is 9 hours after the fetch", tok: token(t0, 12*time.Hour, "pw"), now: t0, fraction: 0.25, retry: -1, want: 9 * time.Hour},
		{name: "Time already passed since the fetch counts", tok: token(t0, 12*time.Hour, "pw"), now: t0.Add(2 * time.Hour), fraction: 0.5, retry: -1, want: 4 * time.Hour},
		{name: "A token already due waits the minimum interval", tok: token(t0, 12*time.Hour, "pw"), now: t0.Add(7 * time.Hour), fraction: 0.5, retry: -1, want: minInterval},
		{name: "A token expired by ECR's clock waits the minimum interval", tok: token(t0, -time.Minute, "pw"), now: t0, fraction: 0.5, retry: -1, want: minInterval},
		{name: "A failing registry's retry comes first", tok: token(t0, 12*time.Hour, "pw"), now: t0, fraction: 0.5, retry: 10 * time.Second, want: 10 * time.Second},
		{name: "A retry later than the refresh does not delay it", tok: token(t0, 2*time.Minute, "pw"), now: t0, fraction: 0.5, retry: time.Hour, want: minInterval},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := nextFetch(mustPayload(t, tt.tok), tt.now, tt.fraction, minInterval, tt.retry); got != tt.want {
				t.Errorf("nextFetch = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestKeepCurrent(t *testing.T) {
	t0 := testT0()
	cur := mustPayload(t, token(t0, 12*time.Hour, "cur"))
	tests := []struct {
		name  string
		cur   *kube.Payload
		fresh registry.Credentials
		now   time.Time
		want  bool
	}{
		{name: "With no current token the fresh one is taken", fresh: token(t0, time.Minute, "new"), now: t0},
		{name: "A fresh token that lives longer replaces the current one", cur: cur, fresh: token(t0.Add(time.Hour), 12*time.Hour, "new"), now: t0.Add(time.Hour)},
		{name: "A fresh token that expires sooner keeps the current one", cur: cur, fresh: token(t0.Add(time.Hour), time.Hour, "new"), now: t0.Add(time.Hour), want: true},
		{name: "A token expired by ECR's clock keeps a valid current one", cur: cur, fresh: token(t0.Add(time.Hour), -time.Minute, "new"), now: t0.Add(time.Hour), want: true},
		{name: "An expired current token is replaced even by a shorter one", cur: cur, fresh: token(t0.Add(13*time.Hour), -time.Minute, "new"), now: t0.Add(13 * time.Hour)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := keepCurrent(tt.cur, tt.fresh, tt.now); got != tt.want {
				t.Errorf("keepCurrent = %v, want %v", got, tt.want)
			}
		})
	}
}

// A token already expired by ECR's own clock is reported: a Warning log, a
// TokenAlreadyExpired Event and the expired_tokens_total metric.
func TestExpiredTokenIsReported(t *testing.T) {
	opts := testOptions()
	obs := &recordingObserver{}
	events := &recordingEvents{}
	opts.Observer, opts.Events = obs, events
	e := newEnv(t, opts)
	e.tokens.set(func(_ int, now time.Time) (registry.Credentials, error) {
		return token(now, -time.Minute, "pw-1"), nil
	})
	backoff := e.c.newBackoff()
	if _, err := e.c.refreshOnce(t.Context(), &backoff); err != nil {
		t.Fatalf("refreshOnce: %v", err)
	}
	if got := events.count("TokenExpired"); got != 1 {
		t.Errorf("TokenAlreadyExpired Events = %d, want 1", got)
	}
	if got := obs.expired.Load(); got != 1 {
		t.Errorf("expired tokens observed = %d, want 1", got)
	}
	if !strings.Contains(e.logs.String(), `"level":"WARN","msg":"ecr returned a token already expired by its own clock`) {
		t.Errorf("no warning logged:\n%s", e.logs.String())
	}
}
