package refresher

import (
	"context"
	"errors"
	"math"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/kube-ecr-refresher/kube-ecr-refresher/internal/ecr"
	"github.com/kube-ecr-refresher/kube-ecr-refresher/internal/kube"
	"github.com/kube-ecr-refresher/kube-ecr-refresher/internal/registry"
)

// tokenLoop fetches a token, publishes it, enqueues every namespace and sleeps
// until the token is due (never less than MinRefreshInterval); after a failed
// fetch it keeps the current token and retries with capped, jittered backoff.
func (c *Controller) tokenLoop(ctx context.Context) {
	backoff := c.newBackoff()
	for {
		wait, _ := c.refreshOnce(ctx, &backoff)
		if ctx.Err() != nil {
			return
		}
		t := c.tokenClock.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C():
		}
	}
}

// refreshOnce does one fetch and returns how long to wait for the next, and
// the fetch error.
func (c *Controller) refreshOnce(ctx context.Context, backoff *wait.Backoff) (time.Duration, error) {
	start := c.clock.Now()
	tok, err := c.tokens.Fetch(ctx)
	// Some registries failed, the others answered: the token holds the fresh
	// credentials and the failing ones' last good ones until they expire.
	var partial *ecr.PartialError
	if errors.As(err, &partial) {
		err = nil
	}
	var p *kube.Payload
	if err == nil {
		p, err = kube.NewPayload(tok)
	}
	if ctx.Err() == nil {
		if err == nil && partial != nil {
			c.opts.Observer.RefreshAttempt(partial, c.clock.Since(start))
		} else {
			c.opts.Observer.RefreshAttempt(err, c.clock.Since(start))
		}
	}
	if err != nil {
		if ctx.Err() != nil {
			return 0, err
		}
		c.setFailing(err)
		delay := c.nextRetry(backoff)
		attrs := []any{"error", err, "retry_in", delay.Round(time.Millisecond).String()}
		if cur := c.payload.Load(); cur != nil {
			attrs = append(attrs, "current_expires_at", cur.Token.ExpiresAt.UTC().Format(time.RFC3339))
		}
		c.log.Error("ecr token refresh failed; existing secrets are left as they are", attrs...)
		return delay, err
	}
	retry := time.Duration(-1)
	if partial != nil {
		// An Event for each new set of failing registries, not only the first.
		if failed := strings.Join(partial.Failed, "; "); !c.failing || failed != c.failingRegistries {
			c.failing, c.failingRegistries = true, failed
			if c.opts.Events != nil {
				c.opts.Events.RefreshFailed(partial)
			}
		}
		for _, r := range partial.Failed {
			c.opts.Observer.RegistryFailed(r)
		}
		retry = c.nextRetry(backoff)
		c.log.Error("ecr token refresh failed for some registries; the others are refreshed, the failing ones keep their last good credentials until they expire",
			"error", partial, "failed", partial.Failed, "kept", partial.Kept, "retry_in", retry.Round(time.Millisecond).String())
	} else {
		if c.failing {
			c.failing, c.failingRegistries = false, ""
			c.log.Info("ecr token refresh recovered")
			if c.opts.Events != nil {
				c.opts.Events.RefreshRecovered()
			}
		}
		*backoff = c.newBackoff()
	}
	now := c.clock.Now()
	c.noteToken(tok)
	// Every time here is on the local clock: ecr measured the lifetime on
	// ECR's own clock (expiresAt minus the answer's Date), so a skewed
	// clock on this machine changes nothing.
	expired := !tok.ExpiresAt.After(tok.FetchedAt)
	kept := false
	if cur := c.payload.Load(); keepCurrent(cur, tok, now) {
		c.log.Info("fetched ecr token expires before the current one; keeping the current one",
			"expires_at", formatTime(tok.ExpiresAt), "current_expires_at", formatTime(cur.Token.ExpiresAt))
		p, kept = cur, true
	} else {
		c.payload.Store(p)
		c.opts.Observer.TokenFetched(tok)
		defer c.enqueueAll()
	}
	if due := kube.RefreshAt(p.Token.FetchedAt, p.Token.ExpiresAt, c.opts.RefreshRemainingFraction); !due.After(now) && !expired && !kept {
		c.log.Warn("ecr token is already due for refresh when fetched; waiting the minimum refresh interval",
			"expires_at", formatTime(p.Token.ExpiresAt), "min_refresh_interval", c.opts.MinRefreshInterval.String())
	}
	next := nextFetch(p, now, c.opts.RefreshRemainingFraction, c.opts.MinRefreshInterval, retry)
	c.log.Info("ecr token fetched", "registries", p.Hosts,
		"expires_at", formatTime(p.Token.ExpiresAt), "next_refresh_in", next.Round(time.Second).String())
	if partial != nil {
		return next, partial
	}
	return next, nil
}

// keepCurrent reports whether cur, the token new namespaces get now, stays
// so after fresh was fetched: cur is still valid at now and expires later.
// Every time is on the local clock (see registry.Credentials).
func keepCurrent(cur *kube.Payload, fresh registry.Credentials, now time.Time) bool {
	return cur != nil && now.Before(cur.Token.ExpiresAt) && cur.Token.ExpiresAt.After(fresh.ExpiresAt)
}

// nextFetch is how long after now the next fetch is due: when fraction of
// p's lifetime remains, never sooner than minInterval, and no later than
// retry when retry >= 0 (some registries are failing). It is a pure function
// of its inputs, so a token's schedule is tested without running the loop.
func nextFetch(p *kube.Payload, now time.Time, fraction float64, minInterval, retry time.Duration) time.Duration {
	next := max(kube.RefreshAt(p.Token.FetchedAt, p.Token.ExpiresAt, fraction).Sub(now), minInterval)
	if retry >= 0 && retry < next {
		next = retry
	}
	return next
}

// setFailing records a failed fetch; the first of a series posts an Event.
func (c *Controller) setFailing(err error) {
	if c.failing && c.failingRegistries == "" {
		return
	}
	c.failing, c.failingRegistries = true, ""
	if c.opts.Events != nil {
		c.opts.Events.RefreshFailed(err)
	}
}

// newBackoff is the retry schedule after failed fetches: RetryInitial,
// doubling, jittered by up to 20 %, capped at RetryMax.
func (c *Controller) newBackoff() wait.Backoff {
	return wait.Backoff{Duration: c.opts.RetryInitial, Factor: 2, Jitter: 0.2, Cap: c.opts.RetryMax, Steps: math.MaxInt32}
}

// nextRetry is the delay before retrying a failed fetch: the backoff's next
// step, never beyond RetryMax (the longest retry delay, jitter included).
func (c *Controller) nextRetry(backoff *wait.Backoff) time.Duration {
	return min(backoff.Step(), c.opts.RetryMax)
}

// noteToken reports what is odd about a fresh token: a clock that differs
// from ECR's by more than a minute, and a token already expired by ECR's own
// clock (written only where no usable Secret is, and fetched again after
// MinRefreshInterval).
func (c *Controller) noteToken(tok registry.Credentials) {
	c.opts.Observer.ClockSkew(tok.ClockSkew)
	if tok.ClockSkew > time.Minute || tok.ClockSkew < -time.Minute {
		c.log.Warn("this machine's clock differs from ECR's; token lifetimes are measured on ECR's clock",
			"clock_skew", tok.ClockSkew.Round(time.Second).String())
	}
	if tok.ExpiresAt.After(tok.FetchedAt) {
		return
	}
	c.opts.Observer.ExpiredTokenFetched()
	c.log.Warn("ecr returned a token already expired by its own clock; it is written only where no usable secret exists",
		"expired_for", tok.FetchedAt.Sub(tok.ExpiresAt).Round(time.Second).String(),
		"retry_in", c.opts.MinRefreshInterval.String())
	if c.opts.Events != nil {
		c.opts.Events.TokenExpired(tok.FetchedAt.Sub(tok.ExpiresAt))
	}
}

func formatTime(t time.Time) string { return t.UTC().Format(time.RFC3339) }
