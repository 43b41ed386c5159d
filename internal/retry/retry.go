// Package retry is the one retry policy of ML Service's HTTP clients (the
// MLflow registry client and the legacy side's decision client), on
// github.com/cenkalti/backoff/v5:
//
//   - what is retried: a failure with no usable answer (refused, reset, timed
//     out, cut off mid-answer) and the statuses 429 and 5xx; never another
//     4xx, and never an answer that was received but not understood;
//   - how long it waits: the library's exponential backoff, an interval that
//     doubles from Initial up to Max with each wait drawn at random within
//     ±50% of it, so that many clients coming back after an outage do not
//     arrive in step;
//   - the server's Retry-After lengthens a wait, never shortens it, up to Max;
//   - it stops after Attempts tries (the first counts) or when ctx ends.
//
// Clients keep their own error types; the policy reads them through two small
// interfaces (HTTPStatus and RetryAfter) and the Transient marker.
package retry

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/cenkalti/backoff/v5"
)

// Policy says how often and how patiently to retry.
type Policy struct {
	// Initial is the first wait's interval (default 250ms); it doubles with
	// each retry up to Max (default 30s).
	Initial, Max time.Duration
	// Attempts caps the tries, the first included (default 5); a negative
	// value means no cap (only ctx ends the retries).
	Attempts int
	// AttemptTimeout, when > 0, bounds each try on its own, so one hung
	// connection costs one try, not the whole call.
	AttemptTimeout time.Duration
}

func (p Policy) withDefaults() Policy {
	if p.Initial <= 0 {
		p.Initial = 250 * time.Millisecond
	}
	if p.Max < p.Initial {
		p.Max = max(30*time.Second, p.Initial)
	}
	if p.Attempts == 0 {
		p.Attempts = 5
	}
	return p
}

// statusError is an answer with an HTTP status.
type statusError interface {
	error
	HTTPStatus() int
}

// retryAfterError is an answer that says when to come back.
type retryAfterError interface {
	error
	RetryAfter() time.Duration
}

// transientError marks a failure with no usable answer.
type transientError interface {
	error
	Transient() bool
}

// Retryable reports whether err is worth another try under the policy: an
// answer with status 429 or 5xx, or no usable answer at all (an error with
// Transient() true, or a net.Error such as a refused connection or a
// timeout). Everything else is final: another 4xx, an answer that was not
// understood, a cancelled context.
func Retryable(err error) bool {
	if err == nil {
		return false
	}
	if se, ok := errors.AsType[statusError](err); ok {
		s := se.HTTPStatus()
		return s == http.StatusTooManyRequests || s >= 500
	}
	if te, ok := errors.AsType[transientError](err); ok {
		return te.Transient()
	}
	if errors.Is(err, context.Canceled) {
		return false
	}
	_, isNet := errors.AsType[net.Error](err)
	return isNet
}

// retryAfter is the wait the answer in err asked for, or 0.
func retryAfter(err error) time.Duration {
	if ra, ok := errors.AsType[retryAfterError](err); ok {
		return max(ra.RetryAfter(), 0)
	}
	return 0
}

// ParseRetryAfter reads a Retry-After header: seconds, or an HTTP date
// (relative to now). Anything else, or a time in the past, is 0.
func ParseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if n, err := strconv.Atoi(v); err == nil {
		return time.Duration(max(n, 0)) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// Pacer paces a loop that never gives up (a background retrier): after each
// failure it says how long to wait, after a success it starts over.
type Pacer struct {
	max time.Duration
	b   *backoff.ExponentialBackOff
}

// Pacer returns a fresh pacer for the policy (Attempts does not apply).
func (p Policy) Pacer() *Pacer {
	p = p.withDefaults()
	b := &backoff.ExponentialBackOff{
		InitialInterval:     p.Initial,
		RandomizationFactor: backoff.DefaultRandomizationFactor,
		Multiplier:          2,
		MaxInterval:         p.Max,
	}
	b.Reset()
	return &Pacer{max: p.Max, b: b}
}

// Failed returns the wait after a failed try; a Retry-After in err
// lengthens it, up to the policy's Max.
func (pc *Pacer) Failed(err error) time.Duration {
	return max(pc.b.NextBackOff(), min(retryAfter(err), pc.max))
}

// Succeeded starts the waits over from Initial.
func (pc *Pacer) Succeeded() { pc.b.Reset() }

// pacerBackOff lets backoff.Retry ask the pacer, which knows the last error.
type pacerBackOff struct {
	pc   *Pacer
	last *error
}

func (b pacerBackOff) NextBackOff() time.Duration { return b.pc.Failed(*b.last) }
func (b pacerBackOff) Reset()                     { b.pc.Succeeded() }

// Do calls try until it succeeds, fails with an error that is not
// Retryable, runs out of attempts or ctx ends, and returns the last error
// (joined with ctx's when ctx ended). onRetry, if not nil, hears about each
// failed try before the wait (attempt counts from 1).
func Do(ctx context.Context, p Policy, try func(ctx context.Context) error, onRetry func(attempt int, wait time.Duration, err error)) error {
	p = p.withDefaults()
	var last error
	attempt := 0
	op := func() (struct{}, error) {
		attempt++
		actx, cancel := ctx, context.CancelFunc(func() {})
		if p.AttemptTimeout > 0 {
			actx, cancel = context.WithTimeout(ctx, p.AttemptTimeout)
		}
		err := try(actx)
		cancel()
		last = err
		if err != nil && ctx.Err() == nil && !Retryable(err) {
			return struct{}{}, backoff.Permanent(err)
		}
		return struct{}{}, err
	}
	opts := []backoff.RetryOption{
		backoff.WithBackOff(pacerBackOff{pc: p.Pacer(), last: &last}),
		backoff.WithMaxElapsedTime(0), // only Attempts and ctx end the tries
	}
	if p.Attempts > 0 {
		opts = append(opts, backoff.WithMaxTries(uint(p.Attempts)))
	}
	if onRetry != nil {
		opts = append(opts, backoff.WithNotify(func(err error, wait time.Duration) { onRetry(attempt, wait, err) }))
	}
	_, err := backoff.Retry(ctx, op, opts...)
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		if last != nil && !errors.Is(last, ctx.Err()) {
			return fmt.Errorf("%w (last error: %w)", context.Cause(ctx), last)
		}
		return context.Cause(ctx)
	}
	return last
}
