package batch

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"mlservice/internal/retry"
	"mlservice/legacy/client"
	"mlservice/legacy/internal/legacytest"
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

// poisoned fails a whole call that holds the poisoned row (as a service
// that answers a model output of NaN with a body that is not JSON, or with
// a 500, fails its whole batch), decides every other call, and declines
// with reasons.
type poisoned struct {
	fail  error
	calls int
}

func (s *poisoned) DecideBatch(_ context.Context, apps []client.Application) ([]client.Result, error) {
	s.calls++
	for _, a := range apps {
		if *a.Income > 1e30 {
			return nil, s.fail
		}
	}
	out := make([]client.Result, len(apps))
	for i, a := range apps {
		d := &client.Decision{ApplicationID: a.ApplicationID, DecisionID: "dec-" + a.ApplicationID, Approve: *a.CreditScore >= 600,
			Probability: 0.7, Model: client.Model{Name: "m", Version: "3", Variant: "champion", SHA256: "abc"}}
		if !d.Approve {
			d.Probability = 0.2
			d.Reasons = []client.Reason{{Code: "CS", Feature: "credit_score", Text: "Credit score below 600 (yours 550)"},
				{Code: "LTI", Feature: "loan_amount", Text: "Loan is 40% of income or more (yours 40%)"}}
		}
		out[i] = client.Result{Index: i, Decision: d}
	}
	return out, nil
}

// TestOneBadRowCostsOnlyItself: a row that makes the service fail its
// whole call is found by halving the chunk; it alone is rejected (retry=no,
// with the reason) and every other row of its chunk is decided.
func TestOneBadRowCostsOnlyItself(t *testing.T) {
	for name, fail := range map[string]error{
		"answer not JSON": &client.ProtocolError{Reason: "undecodable response: invalid character 'N' looking for beginning of value"},
		"server fault":    &client.APIError{Status: 500, Code: "internal", Message: "internal error"},
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			in := filepath.Join(dir, "in.csv")
			var b strings.Builder
			b.WriteString("application_id,income,credit_score,loan_amount,years_employed,points\n")
			for i := range 40 {
				income, score := "50000", "700"
				if i == 13 {
					income = "1e39"
				}
				if i%10 == 0 {
					score = "550"
				}
				fmt.Fprintf(&b, "A-%d,%s,%s,20000,5,60\n", i, income, score)
			}
			os.WriteFile(in, []byte(b.String()), 0o644)
			out := filepath.Join(dir, "out.csv")
			svc := &poisoned{fail: fail}
			job := &Job{In: in, Out: out, ChunkSize: 20, Decider: svc, Retry: retry.Policy{Initial: time.Millisecond, Max: time.Millisecond, Attempts: 3}}
			sum, err := job.Run(context.Background())
			if !errors.Is(err, ErrRowsRejected) || errors.Is(err, ErrRowsUndecided) || sum.Decided != 39 || sum.Rejected != 1 {
				t.Fatalf("%v, %v", sum, err)
			}
			rejects := legacytest.Rows(t, filepath.Join(dir, "out.rejects.csv"))
			if len(rejects) != 1 || rejects[0][1] != "A-13" || rejects[0][4] != "no" || !strings.Contains(rejects[0][3], "cannot decide this row") {
				t.Fatalf("rejects %q", rejects)
			}
			if svc.calls > 30 {
				t.Errorf("%d calls to find one bad row among 40", svc.calls)
			}
			// The decisions carry the decision id and a decline's reasons.
			header, rows := legacytest.ReadCSV(t, out)
			col := map[string]int{}
			for i, h := range header {
				col[h] = i
			}
			for _, r := range rows {
				if r[col["decision_id"]] != "dec-"+r[col["application_id"]] || r[col["model_sha256"]] != "abc" {
					t.Fatalf("row %q", r)
				}
				if r[col["approve"]] == "false" {
					if r[col["reason_1_code"]] != "CS" || r[col["reason_1"]] != "Credit score below 600 (yours 550)" ||
						r[col["reason_2_code"]] != "LTI" || r[col["reason_3_code"]] != "" {
						t.Fatalf("decline without its reasons: %q", r)
					}
				} else if r[col["reason_1_code"]] != "" {
					t.Fatalf("an approval with reasons: %q", r)
				}
			}
		})
	}
}

// TestOutageDuringASplitLeavesTheRestForTheRerun: the service going down
// while a chunk is being halved stops the job with the rows left reported,
// none lost and none decided twice.
func TestOutageDuringASplitLeavesTheRestForTheRerun(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in.csv")
	os.WriteFile(in, []byte("application_id,income,credit_score,loan_amount,years_employed,points\n"+
		"A-1,1,700,1,1,1\nA-2,1e39,700,1,1,1\nA-3,1,700,1,1,1\nA-4,1,700,1,1,1\n"), 0o644)
	out := filepath.Join(dir, "out.csv")
	svc := &downAfter{poisoned: poisoned{fail: &client.ProtocolError{Reason: "not JSON"}}, upCalls: 2}
	job := &Job{In: in, Out: out, ChunkSize: 4, Decider: svc, Retry: retry.Policy{Initial: time.Millisecond, Max: time.Millisecond, Attempts: 2}}
	sum, err := job.Run(context.Background())
	if !errors.Is(err, ErrRowsUndecided) || sum.Decided+sum.Rejected+sum.Undecided != 4 {
		t.Fatalf("%v, %v", sum, err)
	}
	_, decided := legacytest.ReadCSV(t, out)
	rejects := legacytest.Rows(t, filepath.Join(dir, "out.rejects.csv"))
	if len(decided)+len(rejects) != 4 {
		t.Fatalf("%d decided + %d reported, want 4", len(decided), len(rejects))
	}
}

// downAfter is poisoned for upCalls calls, then down.
type downAfter struct {
	poisoned
	upCalls int
}

func (s *downAfter) DecideBatch(ctx context.Context, apps []client.Application) ([]client.Result, error) {
	if s.calls >= s.upCalls {
		s.calls++
		return nil, &client.UnavailableError{Err: errors.New("connection refused")}
	}
	return s.poisoned.DecideBatch(ctx, apps)
}

// TestGatewayOutageIsWaitedFor: a gateway in front of the service that
// answers 502 or 504 (its own page, not the service's error shape) means
// the service is not answering: the rows are left for the rerun
// (retry=yes), never rejected as if each were at fault.
func TestGatewayOutageIsWaitedFor(t *testing.T) {
	for _, status := range []int{http.StatusBadGateway, http.StatusGatewayTimeout} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			gateway := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Type", "text/html")
				w.WriteHeader(status)
				fmt.Fprintf(w, "<html><body><h1>%d %s</h1></body></html>", status, http.StatusText(status))
			}))
			defer gateway.Close()
			dir := t.TempDir()
			in := filepath.Join(dir, "in.csv")
			os.WriteFile(in, []byte("application_id,income,credit_score,loan_amount,years_employed,points\n"+
				"A-1,1,700,1,1,1\nA-2,1,700,1,1,1\nA-3,1,700,1,1,1\nA-4,1,700,1,1,1\n"), 0o644)
			out := filepath.Join(dir, "out.csv")
			fast := retry.Policy{Initial: time.Millisecond, Max: time.Millisecond, Attempts: 2}
			down := &client.Client{BaseURL: gateway.URL, HTTP: &http.Client{Timeout: 5 * time.Second}}
			sum, err := (&Job{In: in, Out: out, ChunkSize: 4, Decider: down, Retry: fast}).Run(context.Background())
			if !errors.Is(err, ErrRowsUndecided) || errors.Is(err, ErrRowsRejected) || sum.Undecided != 4 {
				t.Fatalf("behind a failing gateway: %v, %v", sum, err)
			}
			for _, r := range legacytest.Rows(t, filepath.Join(dir, "out.rejects.csv")) {
				if r[4] != "yes" {
					t.Fatalf("row %q is not left for the rerun", r)
				}
			}
			sum, err = (&Job{In: in, Out: out, ChunkSize: 4, Decider: &flakyService{}, Retry: fast}).Run(context.Background())
			if err != nil || sum.Decided != 4 {
				t.Fatalf("the rerun once the service is back: %v, %v", sum, err)
			}
		})
	}
}

// TestCallRefusedAsAWholeStopsTheJob: a refusal of the call itself (404
// from a wrong -api, 401 from a gateway that wants a token) is no row's
// fault: the job stops as "could not run" with every row left for the
// rerun, never rejecting each row for good.
func TestCallRefusedAsAWholeStopsTheJob(t *testing.T) {
	for _, status := range []int{http.StatusNotFound, http.StatusUnauthorized, http.StatusUnsupportedMediaType} {
		t.Run(strconv.Itoa(status), func(t *testing.T) {
			calls := 0
			wrong := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				calls++
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(status)
				fmt.Fprintf(w, `{"error":{"code":"refused","message":"%s"},"request_id":"r"}`, http.StatusText(status))
			}))
			defer wrong.Close()
			dir := t.TempDir()
			in := filepath.Join(dir, "in.csv")
			os.WriteFile(in, []byte("application_id,income,credit_score,loan_amount,years_employed,points\n"+
				"A-1,1,700,1,1,1\nA-2,1,700,1,1,1\nA-3,1,700,1,1,1\nA-4,1,700,1,1,1\n"), 0o644)
			out := filepath.Join(dir, "out.csv")
			fast := retry.Policy{Initial: time.Millisecond, Max: time.Millisecond, Attempts: 2}
			sum, err := (&Job{In: in, Out: out, ChunkSize: 4, Decider: &client.Client{BaseURL: wrong.URL}, Retry: fast}).Run(context.Background())
			if err == nil || errors.Is(err, ErrRowsRejected) || errors.Is(err, ErrRowsUndecided) || sum.Rejected != 0 || calls != 1 {
				t.Fatalf("refused as a whole: %v, %v after %d calls; want the job to stop at once, no row rejected", sum, err, calls)
			}
			for _, r := range legacytest.Rows(t, filepath.Join(dir, "out.rejects.csv")) {
				if r[4] != "yes" {
					t.Fatalf("row %q is not left for the rerun", r)
				}
			}
			sum, err = (&Job{In: in, Out: out, ChunkSize: 4, Decider: &flakyService{}, Retry: fast}).Run(context.Background())
			if err != nil || sum.Decided != 4 {
				t.Fatalf("the rerun against the service: %v, %v", sum, err)
			}
		})
	}
}

// TestRegeneratedExportKeepsEachRowsOwnReject: a rerun over the export as
// the legacy system wrote it again, in another order, skips only the rows
// rejected before (each known by its application_id), never another row
// that now sits on a rejected row's line.
func TestRegeneratedExportKeepsEachRowsOwnReject(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in.csv")
	const header = "application_id,income,credit_score,loan_amount,years_employed,points\n"
	os.WriteFile(in, []byte(header+"A-1,1,100,1,1,1\nA-2,1,700,1,1,1\n"), 0o644)
	out := filepath.Join(dir, "out.csv")
	fast := retry.Policy{Initial: time.Millisecond, Max: time.Millisecond, Attempts: 2}
	// A-1 is refused (credit score 100); the service goes down before A-2.
	svc := &flakyService{}
	downForA2 := deciderFunc(func(ctx context.Context, apps []client.Application) ([]client.Result, error) {
		if apps[0].ApplicationID == "A-2" {
			return nil, &client.UnavailableError{Err: errors.New("connection refused")}
		}
		return svc.DecideBatch(ctx, apps)
	})
	job := &Job{In: in, Out: out, ChunkSize: 1, Decider: downForA2, Retry: fast}
	if sum, err := job.Run(context.Background()); !errors.Is(err, ErrRowsUndecided) || sum.Rejected != 1 || sum.Undecided != 1 {
		t.Fatalf("first run: %v, %v", sum, err)
	}
	os.WriteFile(in, []byte(header+"A-2,1,700,1,1,1\nA-1,1,100,1,1,1\n"), 0o644) // exported again, in another order
	sum, err := (&Job{In: in, Out: out, ChunkSize: 1, Decider: svc, Retry: fast}).Run(context.Background())
	if !errors.Is(err, ErrRowsRejected) || errors.Is(err, ErrRowsUndecided) || sum.Decided != 1 {
		t.Fatalf("rerun: %v, %v", sum, err)
	}
	_, decided := legacytest.ReadCSV(t, out)
	if len(decided) != 1 || decided[0][1] != "A-2" {
		t.Fatalf("decisions %q, want A-2's", decided)
	}
}

type deciderFunc func(ctx context.Context, apps []client.Application) ([]client.Result, error)

func (f deciderFunc) DecideBatch(ctx context.Context, apps []client.Application) ([]client.Result, error) {
	return f(ctx, apps)
}

// TestServiceFailingOnEveryRowRejectsNone: a service that fails every call
// (a broken release answering 500 to everything) is failing, not the rows:
// once a whole chunk has failed row by row, the job stops with the rows
// left for the rerun (retry=yes), rather than rejecting every row of the
// export for good.
func TestServiceFailingOnEveryRowRejectsNone(t *testing.T) {
	dir := t.TempDir()
	in := filepath.Join(dir, "in.csv")
	var b strings.Builder
	b.WriteString("application_id,income,credit_score,loan_amount,years_employed,points\n")
	for i := range 40 {
		fmt.Fprintf(&b, "A-%d,1e39,700,1,1,1\n", i) // every row makes the service fail its call
	}
	os.WriteFile(in, []byte(b.String()), 0o644)
	svc := &poisoned{fail: &client.APIError{Status: 500, Code: "internal", Message: "internal error"}}
	sum, err := (&Job{In: in, Out: filepath.Join(dir, "out.csv"), ChunkSize: 20, Decider: svc,
		Retry: retry.Policy{Initial: time.Millisecond, Max: time.Millisecond, Attempts: 2}}).Run(context.Background())
	if !errors.Is(err, ErrRowsUndecided) || errors.Is(err, ErrRowsRejected) || sum.Undecided != 40 {
		t.Fatalf("%v, %v", sum, err)
	}
	for _, r := range legacytest.Rows(t, filepath.Join(dir, "out.rejects.csv")) {
		if r[4] != "yes" || !strings.Contains(r[3], "failing") {
			t.Fatalf("row %q", r)
		}
	}
	if svc.calls > 2*2*20 {
		t.Errorf("%d calls: the job went on past the first chunk", svc.calls)
	}
}
