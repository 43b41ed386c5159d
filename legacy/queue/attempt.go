package queue

import (
	"context"

	"mlservice/legacy/client"
)

// Decider asks the decision service about one application;
// *client.Client is one.
type Decider interface {
	Decide(ctx context.Context, app client.Application) (client.Decision, error)
}

var _ Decider = (*client.Client)(nil)

// Attempt asks the service about a queued application once and records the
// outcome: Decided, Refused (422), or still Queued with the cause noted.
// The returned error is the service's when the application stays queued;
// the record is then still safe on disk. The form's submit and the
// background Retrier share this one path, so they cannot disagree.
func Attempt(ctx context.Context, q *Queue, d Decider, rec Record) (Record, error) {
	if rec.Status != Queued {
		return rec, nil
	}
	id := rec.Application.ApplicationID
	decision, err := d.Decide(ctx, rec.Application)
	if err == nil {
		return q.Decide(id, decision)
	}
	if refusal := client.Refusal(err); refusal != nil {
		return q.Refuse(id, Refusal{Message: refusal.Message, Fields: refusal.Fields})
	}
	if noted, noteErr := q.NoteFailure(id, err); noteErr == nil {
		rec = noted
	}
	return rec, err
}
