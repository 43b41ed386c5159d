package web_test

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"mlservice/internal/retry"
	"mlservice/legacy/client"
	"mlservice/legacy/queue"
	"mlservice/legacy/web"
)

// countingService answers like the service after an optional delay and
// counts the decisions it makes.
type countingService struct {
	delay atomic.Int64 // nanoseconds
	calls atomic.Int32
}

func (s *countingService) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	time.Sleep(time.Duration(s.delay.Load()))
	s.calls.Add(1)
	w.Header().Set("Content-Type", "application/json")
	io.WriteString(w, `{"approve":true,"probability":0.9,"model":{"name":"loan-approval","version":"7","variant":"champion"},"request_id":"r"}`)
}

func newForm(t *testing.T, svc http.Handler, timeout time.Duration) (*httptest.Server, *queue.Queue) {
	t.Helper()
	api := httptest.NewServer(svc)
	t.Cleanup(api.Close)
	q, err := queue.Open(t.TempDir(), nil)
	if err != nil {
		t.Fatal(err)
	}
	srv, err := web.New(web.Config{Queue: q, Log: slog.New(slog.NewTextHandler(io.Discard, nil)),
		Decider: &client.Client{BaseURL: api.URL, HTTP: &http.Client{Timeout: timeout}}})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	return ts, q
}

var noRedirect = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

func submit(t *testing.T, formURL string, v url.Values) (*http.Response, string) {
	t.Helper()
	resp, err := noRedirect.PostForm(formURL+"/applications", v)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func values(id string) url.Values {
	return url.Values{"application_id": {id}, "income": {"50000"}, "credit_score": {"700"},
		"loan_amount": {"20000"}, "years_employed": {"5"}, "points": {"60"}}
}

func TestSlowServiceQueuesTheApplication(t *testing.T) {
	svc := &countingService{}
	svc.delay.Store(int64(500 * time.Millisecond))
	form, q := newForm(t, svc, 100*time.Millisecond)
	resp, _ := submit(t, form.URL, values("S-1"))
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), "/applications/S-1?key=") {
		t.Fatalf("status %d location %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	rec, err := q.Get("S-1")
	if err != nil || rec.Status != queue.Queued || rec.Attempts != 1 {
		t.Fatalf("record %+v, %v", rec, err)
	}
	page, _ := http.Get(form.URL + resp.Header.Get("Location"))
	b, _ := io.ReadAll(page.Body)
	page.Body.Close()
	if !strings.Contains(string(b), "is kept and will be decided") || !strings.Contains(string(b), `http-equiv="refresh"`) {
		t.Fatalf("queued page:\n%s", b)
	}

	// Once the service answers in time, the Retrier decides it.
	svc.delay.Store(0)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	stopped := make(chan struct{})
	defer func() { cancel(); <-stopped }()
	r := &queue.Retrier{Queue: q, Decider: &client.Client{BaseURL: apiURL(t, svc), HTTP: &http.Client{Timeout: time.Second}},
		Interval: 10 * time.Millisecond, Retry: retry.Policy{Initial: 10 * time.Millisecond, Max: 50 * time.Millisecond}}
	go func() { _ = r.Run(ctx); close(stopped) }()
	for {
		rec, _ := q.Get("S-1")
		if rec.Status == queue.Decided {
			if rec.Decision.Model.Version != "7" {
				t.Fatalf("decision %+v", rec.Decision)
			}
			return
		}
		if ctx.Err() != nil {
			t.Fatal("not decided after the service recovered")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func apiURL(t *testing.T, h http.Handler) string {
	t.Helper()
	ts := httptest.NewServer(h)
	t.Cleanup(ts.Close)
	return ts.URL
}

func TestResubmissionIsIdempotent(t *testing.T) {
	svc := &countingService{}
	form, _ := newForm(t, svc, time.Second)
	for range 2 {
		if resp, _ := submit(t, form.URL, values("S-2")); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("status %d", resp.StatusCode)
		}
	}
	if n := svc.calls.Load(); n != 1 {
		t.Errorf("the service decided the same application %d times", n)
	}

	other := values("S-2")
	other.Set("income", "99999")
	resp, body := submit(t, form.URL, other)
	if resp.StatusCode != http.StatusConflict || !strings.Contains(body, "already used by another application") {
		t.Errorf("reused reference: status %d\n%s", resp.StatusCode, body)
	}
}

func TestDraftReferenceMakesRetriesIdempotent(t *testing.T) {
	svc := &countingService{}
	form, _ := newForm(t, svc, time.Second)
	page, err := http.Get(form.URL + "/")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(page.Body)
	page.Body.Close()
	_, rest, ok := strings.Cut(string(b), `name="draft_id" value="`)
	draft, _, _ := strings.Cut(rest, `"`)
	if !ok || !strings.HasPrefix(draft, "WEB-") {
		t.Fatalf("no draft reference in the form:\n%s", b)
	}
	v := values("")
	v.Set("draft_id", draft)
	for range 2 { // the officer double-submits the same form
		resp, _ := submit(t, form.URL, v)
		if loc := resp.Header.Get("Location"); !strings.HasPrefix(loc, "/applications/"+draft+"?key=") {
			t.Fatalf("location %q, want the draft reference %s", loc, draft)
		}
	}
	if n := svc.calls.Load(); n != 1 {
		t.Errorf("decided %d times", n)
	}
}
