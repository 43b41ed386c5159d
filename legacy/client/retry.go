package client

import (
	"context"
	"errors"
	"math/rand/v2"
	"time"
)

// Backoff is an exponential backoff with full jitter: waits grow from
// Initial, doubling up to Max, each a random share of that bound so that
// many callers coming back after an outage do not hit the service at once.
type Backoff struct {
	Initial time.Duration // first wait bound (default 200ms)
	Max     time.Duration // largest wait bound (default 30s)
	// Attempts caps the tries in Retry (default 5); the first try counts.
	Attempts int
}

func (b Backoff) withDefaults() Backoff {
	if b.Initial <= 0 {
		b.Initial = 200 * time.Millisecond
	}
	if b.Max < b.Initial {
		b.Max = max(30*time.Second, b.Initial)
	}
	if b.Attempts <= 0 {
		b.Attempts = 5
	}
	return b
}

// Wait returns how long to wait after the given number of failed tries
// (1 after the first failure).
func (b Backoff) Wait(failures int) time.Duration {
	b = b.withDefaults()
	bound := b.Initial
	for i := 1; i < failures && bound < b.Max; i++ {
		bound *= 2
	}
	bound = min(bound, b.Max)
	// Half fixed, half random: never hammer, never wait for nothing.
	return bound/2 + rand.N(bound/2+1)
}

// Retry calls try until it succeeds, fails with an error that is not
// Retryable, runs out of attempts or ctx ends; it returns the last error.
// A Retry-After from the service lengthens the wait, never shortens it.
// onRetry, if not nil, hears about each failed try before the wait.
func Retry(ctx context.Context, b Backoff, try func(context.Context) error, onRetry func(attempt int, wait time.Duration, err error)) error {
	b = b.withDefaults()
	for attempt := 1; ; attempt++ {
		err := try(ctx)
		if err == nil || !Retryable(err) || attempt >= b.Attempts {
			return err
		}
		wait := b.Wait(attempt)
		var apiErr *APIError
		if errors.As(err, &apiErr) && apiErr.RetryAfter > wait {
			wait = min(apiErr.RetryAfter, b.Max)
		}
		if onRetry != nil {
			onRetry(attempt, wait, err)
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return errors.Join(err, ctx.Err())
		case <-t.C:
		}
	}
}
