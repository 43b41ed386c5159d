package queue

import (
	"context"
	"errors"
	"testing"

	"mlservice/legacy/client"
)

type answer struct {
	d   client.Decision
	err error
}

func (a answer) Decide(context.Context, client.Application) (client.Decision, error) {
	return a.d, a.err
}

func TestAttemptOutcomes(t *testing.T) {
	down := &client.UnavailableError{Err: errors.New("connection refused")}
	refused := &client.APIError{Status: 422, Code: "validation_failed", Message: "bad", Fields: map[string]string{"income": "must be greater than 0"}}
	tests := []struct {
		name    string
		service answer
		want    Status
		waiting int
	}{
		{"decided", answer{d: client.Decision{Approve: true, Model: client.Model{Version: "3"}}}, Decided, 0},
		{"service down", answer{err: down}, Queued, 1},
		{"server fault", answer{err: &client.APIError{Status: 500}}, Queued, 1},
		{"refused", answer{err: refused}, Refused, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			q, _ := Open(dir, nil)
			rec, err := q.Keep(client.Application{ApplicationID: "A/1 x"})
			if err != nil {
				t.Fatal(err)
			}
			rec, _ = Attempt(context.Background(), q, tt.service, rec)
			if rec.Status != tt.want {
				t.Fatalf("status %s, want %s", rec.Status, tt.want)
			}
			// A new process over the same directory sees the same thing.
			again, _ := Open(dir, nil)
			kept, err := again.Get("A/1 x")
			if err != nil || kept.Status != tt.want {
				t.Fatalf("after reopening: %+v, %v", kept, err)
			}
			if waiting, _ := again.Waiting(); len(waiting) != tt.waiting {
				t.Errorf("%d waiting, want %d", len(waiting), tt.waiting)
			}
		})
	}
}

func TestKeepIsIdempotent(t *testing.T) {
	q, _ := Open(t.TempDir(), nil)
	first, _ := q.Keep(client.Application{ApplicationID: "A-1"})
	second, _ := q.Keep(client.Application{ApplicationID: "A-1"})
	if !first.ReceivedAt.Equal(second.ReceivedAt) {
		t.Error("a resubmission replaced the kept application")
	}
	if _, err := q.Get("nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get of an unknown reference: %v", err)
	}
}
