package queue

import (
	"context"
	"errors"
	"fmt"

	"mlservice/internal/retry"
	"mlservice/legacy/client"
)

// Decider asks the decision service about one application;
// *client.Client is one.
type Decider interface {
	Decide(ctx context.Context, app client.Application) (client.Decision, error)
}

var _ Decider = (*client.Client)(nil)

// Attempt asks the service about a queued application once and records the
// outcome: Decided; Refused (422 naming fields the officer must correct);
// Failed (an answer that sending it again will not change: another 4xx, a
// 422 without fields such as "undecidable", an answer that is not a usable
// decision, or maxFaults server faults on this application); or still Queued
// with the cause noted. The returned error is the service's when the
// application is not decided; client.Outage(err) tells whether the service
// as a whole is down (then the others would fail the same way). The record
// is safe on disk in every case. The form's submit and the background
// Retrier share this one path, so they cannot disagree.
func Attempt(ctx context.Context, q *Queue, d Decider, rec Record) (Record, error) {
	return attempt(ctx, q, d, rec, true)
}

// attempt is Attempt; countFault says whether a server fault on the
// application counts towards setting it aside at once (the Retrier counts
// it only after its pass, once it knows the service decided others).
func attempt(ctx context.Context, q *Queue, d Decider, rec Record, countFault bool) (Record, error) {
	if rec.Status != Queued {
		return rec, nil
	}
	id := rec.Application.ApplicationID
	decision, err := d.Decide(ctx, rec.Application)
	if err == nil {
		if problem := client.Unusable(decision); problem != "" {
			err = &client.ProtocolError{Reason: problem}
		} else {
			return q.Decide(id, decision)
		}
	}
	if refusal := client.Refusal(err); refusal != nil && len(refusal.Fields) > 0 {
		return q.Refuse(id, Refusal{Message: refusal.Message, Fields: refusal.Fields})
	}
	switch {
	case ctx.Err() != nil && !client.Outage(err):
		// The form's request went away: nothing was learnt about the
		// application itself.
	case client.Outage(err):
		if noted, noteErr := q.NoteFailure(id, err, false); noteErr == nil {
			rec = noted
		}
	case retry.Retryable(err):
		if noted, noteErr := q.NoteFailure(id, err, countFault); noteErr == nil {
			rec = noted
		}
	default:
		if failed, failErr := q.Fail(id, failureReason(err)); failErr == nil {
			rec = failed
		}
	}
	return rec, err
}

// failureReason is what the officer's page says when the service cannot
// decide an application.
func failureReason(err error) string {
	if e, ok := errors.AsType[*client.APIError](err); ok {
		return fmt.Sprintf("the decision service answered %d %s: %s", e.Status, e.Code, e.Message)
	}
	return err.Error()
}
