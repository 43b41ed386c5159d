package batch

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mlservice/internal/retry"
	"mlservice/legacy/client"
)

// flakyService decides everything, refuses credit scores under 250 like
// the real one, and is down for the first `down` calls.
type flakyService struct {
	down  int
	calls int
}

func (s *flakyService) DecideBatch(_ context.Context, apps []client.Application) ([]client.Result, error) {
	s.calls++
	if s.calls <= s.down {
		return nil, &client.UnavailableError{Err: errors.New("connection refused")}
	}
	out := make([]client.Result, len(apps))
	for i, a := range apps {
		out[i].Index = i
		if a.CreditScore == nil || *a.CreditScore < 250 {
			out[i].Refusal = &client.APIError{Status: 422, Code: "validation_failed", Fields: map[string]string{"credit_score": "must be no less than 250"}}
			continue
		}
		out[i].Decision = &client.Decision{ApplicationID: a.ApplicationID, Approve: true, Probability: 0.5,
			Model: client.Model{Name: "m", Version: "1", Variant: "champion"}}
	}
	return out, nil
}

func TestJobOutageThenResume(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in.csv")
	os.WriteFile(in, []byte("name,income,credit_score,loan_amount,years_employed,points\n"+
		"a,1,700,1,1,1\nb,1,100,1,1,1\nc,x,700,1,1,1\nd,1,700,1,1,1\ne,1,700,1,1,1\n"), 0o644)
	out := filepath.Join(dir, "out.csv")
	fast := retry.Policy{Initial: time.Millisecond, Max: time.Millisecond, Attempts: 2}

	svc := &flakyService{down: 1 << 30}
	job := &Job{In: in, Out: out, ChunkSize: 2, Decider: svc, Retry: fast}
	sum, err := job.Run(context.Background())
	if !errors.Is(err, ErrRowsUndecided) || sum.Undecided != 4 || sum.Rejected != 1 {
		t.Fatalf("down: %v, %v", sum, err)
	}
	rejects, _ := os.ReadFile(filepath.Join(dir, "out.rejects.csv"))
	if n := strings.Count(string(rejects), ",yes\n"); n != 4 {
		t.Fatalf("%d rows reported as not decided, want 4:\n%s", n, rejects)
	}

	svc.down = svc.calls + 1 // one more failure, then up: the retry covers it
	sum, err = (&Job{In: in, Out: out, ChunkSize: 2, Decider: svc, Retry: fast}).Run(context.Background())
	if !errors.Is(err, ErrRowsRejected) || errors.Is(err, ErrRowsUndecided) || sum.Decided != 3 || sum.Rejected != 1 || sum.AlreadyRejected != 1 {
		t.Fatalf("resumed: %v, %v", sum, err)
	}
	rejects, _ = os.ReadFile(filepath.Join(dir, "out.rejects.csv"))
	if strings.Contains(string(rejects), ",yes\n") || strings.Count(string(rejects), "\n") != 3 {
		t.Fatalf("rejects after the resume:\n%s", rejects)
	}
	decided, _ := os.ReadFile(out)
	if strings.Count(string(decided), "\n") != 4 {
		t.Fatalf("decisions:\n%s", decided)
	}
}
