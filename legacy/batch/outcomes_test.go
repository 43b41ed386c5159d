package batch

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"mlservice/internal/retry"
	"mlservice/legacy/client"
	"mlservice/legacy/internal/legacytest"
)

// outcomeService is a fake POST /v1/outcomes in the service's batch shape:
// it knows the applications in decided, wants the bearer token, and is down
// (503) for its first `down` calls.
type outcomeService struct {
	mu       sync.Mutex
	decided  map[string]bool
	token    string
	down     int
	calls    int
	recorded map[string]bool
}

func (s *outcomeService) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	w.Header().Set("Content-Type", "application/json")
	if r.Method != http.MethodPost || r.URL.Path != "/v1/outcomes" {
		w.WriteHeader(404)
		w.Write([]byte(`{"error":{"code":"not_found","message":"no such route"}}`))
		return
	}
	if r.Header.Get("Authorization") != "Bearer "+s.token {
		w.WriteHeader(401)
		w.Write([]byte(`{"error":{"code":"unauthorized","message":"missing or wrong token"}}`))
		return
	}
	if s.calls <= s.down {
		w.WriteHeader(503)
		w.Write([]byte(`{"error":{"code":"not_ready","message":"starting"}}`))
		return
	}
	var body struct {
		Outcomes []struct {
			ApplicationID string `json:"application_id"`
			Approved      *bool  `json:"approved"`
		} `json:"outcomes"`
	}
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		w.WriteHeader(400)
		return
	}
	type item struct {
		Index         int              `json:"index"`
		ApplicationID string           `json:"application_id"`
		Status        string           `json:"status"`
		Decisions     int              `json:"decisions,omitempty"`
		Error         *client.APIError `json:"error,omitempty"`
	}
	var results []item
	for i, o := range body.Outcomes {
		it := item{Index: i, ApplicationID: o.ApplicationID, Status: "recorded", Decisions: 1}
		if !s.decided[o.ApplicationID] || o.Approved == nil {
			it.Status, it.Decisions = "rejected", 0
			it.Error = &client.APIError{Code: "not_found", Message: "no decision is recorded for this application"}
		} else {
			s.recorded[o.ApplicationID] = *o.Approved
		}
		results = append(results, it)
	}
	json.NewEncoder(w).Encode(map[string]any{"results": results})
}

func outcomesFixture(t *testing.T) (in, out string, svc *outcomeService, api *httptest.Server) {
	t.Helper()
	dir := t.TempDir()
	in = filepath.Join(dir, "outcomes.csv")
	os.WriteFile(in, []byte("Application_ID,approved,underwriter\r\n"+
		"A-1,true,kim\r\nA-2,false,kim\r\nA-3,yes,lee\r\nNOBODY,true,lee\r\nA-4,maybe,lee\r\nA-1,false,kim\r\nA-5,0,lee\r\n"), 0o644)
	out = filepath.Join(dir, "posted.csv")
	svc = &outcomeService{decided: map[string]bool{"A-1": true, "A-2": true, "A-3": true, "A-4": true, "A-5": true},
		token: "s3cret-token-of-audit", recorded: map[string]bool{}}
	api = httptest.NewServer(svc)
	t.Cleanup(api.Close)
	return in, out, svc, api
}

var quickRetry = retry.Policy{Initial: time.Millisecond, Max: 2 * time.Millisecond, Attempts: 3}

func TestOutcomesPostedOnceAndResumable(t *testing.T) {
	in, out, svc, api := outcomesFixture(t)
	svc.down = 1 // the first call meets a 503: retried
	poster := &client.Client{BaseURL: api.URL, HTTP: &http.Client{Timeout: 5 * time.Second}, Token: svc.token}
	var status strings.Builder
	job := &OutcomeJob{In: in, Out: out, ChunkSize: 3, Poster: poster, Retry: quickRetry, Status: &status}
	sum, err := job.Run(context.Background())
	if !errors.Is(err, ErrRowsRejected) || errors.Is(err, ErrRowsUndecided) || sum.Decided != 4 || sum.Rejected != 3 {
		t.Fatalf("%v, %v\n%s", sum, err, status.String())
	}
	want := map[string]bool{"A-1": true, "A-2": false, "A-3": true, "A-5": false}
	if len(svc.recorded) != len(want) {
		t.Errorf("recorded %v, want %v", svc.recorded, want)
	}
	for id, v := range want {
		if got, ok := svc.recorded[id]; !ok || got != v {
			t.Errorf("%s: recorded %v (%v), want %v", id, got, ok, v)
		}
	}
	header, posted := legacytest.ReadCSV(t, out)
	if strings.Join(header, ",") != "line,application_id,approved,decisions" || len(posted) != 4 {
		t.Fatalf("posted file: %q %q", header, posted)
	}
	rejects := legacytest.Rows(t, strings.TrimSuffix(out, ".csv")+".rejects.csv")
	reasons := map[string]string{}
	for _, r := range rejects {
		if r[4] != "no" {
			t.Errorf("reject %q should not be retried", r)
		}
		reasons[r[1]+"@"+r[0]] = r[3]
	}
	for key, part := range map[string]string{"NOBODY@5": "no decision for this application", "A-4@6": "not true or false",
		"A-1@7": "already used on line 2"} {
		if !strings.Contains(reasons[key], part) {
			t.Errorf("reject %s: %q, want it to say %q (all: %v)", key, reasons[key], part, reasons)
		}
	}

	// A rerun posts nothing again.
	calls := svc.calls
	sum, err = (&OutcomeJob{In: in, Out: out, ChunkSize: 3, Poster: poster, Retry: quickRetry}).Run(context.Background())
	if svc.calls != calls || sum.Decided != 0 || sum.AlreadyDecided != 4 || sum.AlreadyRejected != 3 || !errors.Is(err, ErrRowsRejected) {
		t.Errorf("rerun: %d more calls, %v, %v", svc.calls-calls, sum, err)
	}
}

func TestOutcomesServiceDownThenBack(t *testing.T) {
	in, out, svc, api := outcomesFixture(t)
	svc.down = 1 << 30
	poster := &client.Client{BaseURL: api.URL, HTTP: &http.Client{Timeout: 5 * time.Second}, Token: svc.token}
	sum, err := (&OutcomeJob{In: in, Out: out, ChunkSize: 3, Poster: poster, Retry: quickRetry}).Run(context.Background())
	if !errors.Is(err, ErrRowsUndecided) || sum.Undecided != 5 || sum.Decided != 0 {
		t.Fatalf("down: %v, %v", sum, err)
	}
	if !strings.Contains(sum.String(), "5 not posted") {
		t.Errorf("summary %q", sum)
	}
	svc.down = 0
	sum, err = (&OutcomeJob{In: in, Out: out, ChunkSize: 3, Poster: poster, Retry: quickRetry}).Run(context.Background())
	if errors.Is(err, ErrRowsUndecided) || sum.Decided != 4 {
		t.Fatalf("back: %v, %v", sum, err)
	}
}

func TestOutcomesWithARefusedTokenCannotRun(t *testing.T) {
	in, out, _, api := outcomesFixture(t)
	poster := &client.Client{BaseURL: api.URL, HTTP: &http.Client{Timeout: 5 * time.Second}, Token: "wrong"}
	_, err := (&OutcomeJob{In: in, Out: out, Poster: poster, Retry: quickRetry}).Run(context.Background())
	if err == nil || errors.Is(err, ErrRowsUndecided) || errors.Is(err, ErrRowsRejected) || !strings.Contains(err.Error(), "refused the token (401)") {
		t.Fatalf("error %v, want the job to fail naming the token", err)
	}
	if strings.Contains(err.Error(), "wrong") && !strings.Contains(err.Error(), "missing or wrong") {
		t.Errorf("the error echoes the token: %v", err)
	}
	// The rows are kept for a run with the right token.
	if rows := legacytest.Rows(t, strings.TrimSuffix(out, ".csv")+".rejects.csv"); len(rows) < 5 {
		t.Errorf("%d rows reported", len(rows))
	}
}
