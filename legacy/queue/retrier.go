package queue

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"

	"mlservice/internal/retry"
	"mlservice/legacy/client"
)

// Retrier decides queued applications in the background once the service
// is back. While the service keeps failing it waits longer between passes
// (Retry's backoff), so a long outage costs the service nothing when it
// returns.
type Retrier struct {
	Queue   *Queue
	Decider Decider
	// Retry paces passes after failures (the shared policy's waits, with
	// the service's Retry-After); Attempts is ignored: the Retrier never
	// gives up on the queue.
	Retry retry.Policy
	// Interval is the pause between passes while all goes well
	// (default 2s): new applications are normally decided on submit.
	Interval time.Duration
	Log      *slog.Logger
}

// Run passes over the queue until ctx ends.
func (r *Retrier) Run(ctx context.Context) error {
	interval := r.Interval
	if interval <= 0 {
		interval = 2 * time.Second
	}
	log := r.Log
	if log == nil {
		log = slog.Default()
	}
	pace := r.Retry.Pacer()
	for {
		wait := interval
		if err := r.pass(ctx, log); err != nil {
			wait = pace.Failed(err)
			log.Warn("decision service unavailable; applications stay queued", "retry_in", wait.Round(time.Millisecond), "error", err)
		} else {
			pace.Succeeded()
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
	}
}

// pass tries every queued application, oldest first, and stops at the
// first outage: the rest would fail the same way. A failure of one
// application alone (a server fault on it, an answer that cannot be used)
// is noted on it and the pass goes on with the others. A server fault
// counts towards setting the application aside only once the pass is over,
// and only if the service decided others in it (or the application is the
// only one tried): a service that fails on every application is failing,
// not them, and is waited out like an outage.
func (r *Retrier) pass(ctx context.Context, log *slog.Logger) error {
	waiting, err := r.Queue.Waiting()
	if errors.Is(err, ErrDamaged) {
		log.Error("queued files that cannot be read are left in place for IT support; the other applications go on", "error", err)
	} else if err != nil {
		return err
	}
	var faulted []string
	var lastFault error
	decided := 0
	for _, rec := range waiting {
		if ctx.Err() != nil {
			return nil
		}
		rec, err := attempt(ctx, r.Queue, r.Decider, rec, false)
		if err != nil && (client.Outage(err) || ctx.Err() != nil) {
			return err
		}
		if err != nil {
			if rec.Status == Queued && retry.Retryable(err) {
				faulted, lastFault = append(faulted, rec.Application.ApplicationID), err
			}
			log.Warn("the decision service failed on one application; going on with the others",
				"application_id", rec.Application.ApplicationID, "status", rec.Status, "error", err)
			continue
		}
		decided++
		log.Info("queued application settled", "application_id", rec.Application.ApplicationID, "status", rec.Status)
	}
	if decided == 0 && len(faulted) > 1 {
		return fmt.Errorf("the decision service failed on each of the %d applications it was sent, deciding none: it is failing, not them (last: %w)", len(faulted), lastFault)
	}
	for _, id := range faulted {
		if rec, err := r.Queue.CountFault(id); err == nil && rec.Status == Failed {
			log.Warn("application set aside: the decision service keeps failing on it", "application_id", id, "failure", rec.Failure)
		}
	}
	return nil
}
