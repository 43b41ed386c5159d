package queue

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

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

// counting decides everything and counts the calls.
type counting struct{ calls int }

func (c *counting) Decide(context.Context, client.Application) (client.Decision, error) {
	c.calls++
	return client.Decision{Approve: true, Probability: 0.8, Model: client.Model{Name: "m", Version: "2", Variant: "champion"}}, nil
}

// TestCrashAfterTheDecisionIsNotDecidedAgain: a crash between writing the
// decision and removing the queued file leaves both; the application is
// decided, so it is not waiting: it is never sent to the service again
// (each call would be one more decision in the service's record).
func TestCrashAfterTheDecisionIsNotDecidedAgain(t *testing.T) {
	dir := t.TempDir()
	q, _ := Open(dir, nil)
	rec, _ := q.Keep(client.Application{ApplicationID: "A-1"})
	decided := rec
	decided.Status, decided.Decision = Decided, &client.Decision{Approve: true, Probability: 0.8, Model: client.Model{Version: "2"}}
	if err := q.write(decided); err != nil { // the decided file written, then the crash
		t.Fatal(err)
	}
	again, _ := Open(dir, nil)
	svc := &counting{}
	r := &Retrier{Queue: again, Decider: svc, Interval: time.Millisecond, Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_ = r.Run(ctx)
	if svc.calls != 0 {
		t.Errorf("a decided application was sent to the service %d times more", svc.calls)
	}
	if waiting, _ := again.Waiting(); len(waiting) != 0 {
		t.Errorf("%d waiting, want none", len(waiting))
	}
	if kept, _ := again.Get("A-1"); kept.Status != Decided {
		t.Errorf("status %s, want decided", kept.Status)
	}
}
