package queue

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"mlservice/internal/retry"
	"mlservice/legacy/client"
)

// picky decides every application but those it has a fixed answer for.
type picky struct {
	mu    sync.Mutex
	bad   map[string]func() (client.Decision, error)
	calls map[string]int
}

func (p *picky) Decide(_ context.Context, a client.Application) (client.Decision, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls[a.ApplicationID]++
	if f, ok := p.bad[a.ApplicationID]; ok {
		return f()
	}
	return client.Decision{Approve: true, Probability: 0.8, Model: client.Model{Name: "m", Version: "2", Variant: "champion"}}, nil
}

// TestRetrierSkipsWhatKeepsFailing: an application the service keeps
// failing on, or answers with something that sending again will not
// change, is set aside with its reason; the applications queued behind it
// are decided all the same.
func TestRetrierSkipsWhatKeepsFailing(t *testing.T) {
	serverFault := func() (client.Decision, error) {
		return client.Decision{}, &client.APIError{Status: 500, Code: "internal", Message: "internal error"}
	}
	tests := map[string]struct {
		answer func() (client.Decision, error)
		calls  int    // tries before it is set aside
		reason string // in Record.Failure
	}{
		"server fault on it every time": {serverFault, maxFaults, "failed on it 5 times"},
		"400": {func() (client.Decision, error) {
			return client.Decision{}, &client.APIError{Status: 400, Code: "malformed_json", Message: "the body is not JSON"}
		}, 1, "400 malformed_json"},
		"422 without fields (undecidable)": {func() (client.Decision, error) {
			return client.Decision{}, &client.APIError{Status: 422, Code: "undecidable", Message: "the model gave no finite score"}
		}, 1, "undecidable"},
		"an answer that is not JSON (NaN)": {func() (client.Decision, error) {
			return client.Decision{}, &client.ProtocolError{Reason: "undecodable response: invalid character 'N'"}
		}, 1, "undecodable"},
		"a non-finite probability": {func() (client.Decision, error) {
			return client.Decision{Probability: math.Inf(1), Model: client.Model{Version: "1"}}, nil
		}, 1, "not a number between 0 and 1"},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			now := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
			q, _ := Open(t.TempDir(), func() time.Time { now = now.Add(time.Second); return now })
			for _, id := range []string{"BAD", "A-2", "A-3"} { // BAD is the oldest: first in every pass
				if _, err := q.Keep(client.Application{ApplicationID: id}); err != nil {
					t.Fatal(err)
				}
			}
			svc := &picky{bad: map[string]func() (client.Decision, error){"BAD": tt.answer}, calls: map[string]int{}}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			r := &Retrier{Queue: q, Decider: svc, Interval: time.Millisecond,
				Retry: retry.Policy{Initial: time.Millisecond, Max: 2 * time.Millisecond},
				Log:   slog.New(slog.NewTextHandler(io.Discard, nil))}
			stopped := make(chan struct{})
			go func() { _ = r.Run(ctx); close(stopped) }()
			for {
				if waiting, _ := q.Waiting(); len(waiting) == 0 {
					break
				}
				if ctx.Err() != nil {
					waiting, _ := q.Waiting()
					t.Fatalf("still queued: %+v", waiting)
				}
				time.Sleep(2 * time.Millisecond)
			}
			cancel()
			<-stopped
			for _, id := range []string{"A-2", "A-3"} {
				if rec, _ := q.Get(id); rec.Status != Decided {
					t.Errorf("%s behind the bad one: %s, want decided", id, rec.Status)
				}
			}
			rec, _ := q.Get("BAD")
			if rec.Status != Failed || !strings.Contains(rec.Failure, tt.reason) {
				t.Errorf("the bad one: status %s, failure %q; want failed with %q", rec.Status, rec.Failure, tt.reason)
			}
			if n := svc.calls["BAD"]; n != tt.calls {
				t.Errorf("the bad one was tried %d times, want %d", n, tt.calls)
			}
			// Set aside means set aside: a reopened queue does not retry it.
			again, _ := Open(q.dir, nil)
			if kept, _ := again.Get("BAD"); kept.Status != Failed {
				t.Errorf("after reopening: %s", kept.Status)
			}
		})
	}
}

// TestRetrierWaitsOutAnOutage: while the service is down, nothing is set
// aside, however long it lasts: unreachable, not ready, or a gateway in
// front of it answering 502 or 504 with its own page.
func TestRetrierWaitsOutAnOutage(t *testing.T) {
	q, _ := Open(t.TempDir(), nil)
	rec, _ := q.Keep(client.Application{ApplicationID: "A-1"})
	down := answer{err: &client.UnavailableError{Err: errors.New("connection refused")}}
	notReady := answer{err: &client.APIError{Status: 503, Code: "not_ready"}}
	outages := []Decider{down, notReady, gatewayAnswering(t, http.StatusBadGateway), gatewayAnswering(t, http.StatusGatewayTimeout)}
	for range 3 * maxFaults {
		for _, d := range outages {
			rec, _ = Attempt(context.Background(), q, d, rec)
		}
	}
	if rec.Status != Queued || rec.Faults != 0 || rec.Attempts != 3*maxFaults*len(outages) {
		t.Fatalf("after a long outage: %+v", rec)
	}
}

// gatewayAnswering is the service behind a gateway that answers every call
// with status and its own HTML page.
func gatewayAnswering(t *testing.T, status int) Decider {
	gateway := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(status)
		fmt.Fprintf(w, "<html><body><h1>%d %s</h1></body></html>", status, http.StatusText(status))
	}))
	t.Cleanup(gateway.Close)
	return &client.Client{BaseURL: gateway.URL, HTTP: &http.Client{Timeout: 5 * time.Second}}
}

// TestDamagedFileHoldsUpNoOne: a queued file that cannot be read (a disk
// fault, a hand edit), or the damaged outcome of a queued application, is
// left in place and logged; the applications beside it are decided all
// the same.
func TestDamagedFileHoldsUpNoOne(t *testing.T) {
	dir := t.TempDir()
	q, _ := Open(dir, nil)
	for _, id := range []string{"A-0", "A-1"} {
		if _, err := q.Keep(client.Application{ApplicationID: id}); err != nil {
			t.Fatal(err)
		}
	}
	damaged := filepath.Join(dir, string(Queued), "0000.json")
	if err := os.WriteFile(damaged, nil, 0o640); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(q.path(Decided, "A-0"), []byte("{"), 0o640); err != nil {
		t.Fatal(err)
	}
	var log strings.Builder
	r := &Retrier{Queue: q, Decider: &counting{}, Interval: time.Millisecond, Log: slog.New(slog.NewTextHandler(&log, nil))}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	stopped := make(chan struct{})
	go func() { _ = r.Run(ctx); close(stopped) }()
	for {
		if rec, _ := q.Get("A-1"); rec.Status == Decided {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("the application beside a damaged file was never decided")
		}
		time.Sleep(2 * time.Millisecond)
	}
	cancel()
	<-stopped
	if _, err := os.Stat(damaged); err != nil {
		t.Errorf("the damaged file must stay for IT support to look at: %v", err)
	}
	if !strings.Contains(log.String(), "0000.json") || strings.Contains(log.String(), "decision service unavailable") {
		t.Errorf("the log must name the damaged file, and not blame the service:\n%s", log.String())
	}
}

// TestServiceFailingOnEveryApplicationSetsNoneAside: a service that fails
// every call (a broken release answering 500 to everything) is failing,
// not the applications: a pass in which it decides none of several is
// waited out like an outage, and once it is fixed every one is decided.
func TestServiceFailingOnEveryApplicationSetsNoneAside(t *testing.T) {
	var broken atomic.Bool
	broken.Store(true)
	svc := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		if broken.Load() {
			w.WriteHeader(http.StatusInternalServerError)
			fmt.Fprint(w, `{"error":{"code":"internal","message":"internal error"},"request_id":"r"}`)
			return
		}
		fmt.Fprint(w, `{"approve":true,"probability":0.8,"model":{"name":"m","version":"2","variant":"champion"},"request_id":"r"}`)
	}))
	defer svc.Close()
	q, _ := Open(t.TempDir(), nil)
	for i := range 4 {
		if _, err := q.Keep(client.Application{ApplicationID: fmt.Sprintf("A-%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	r := &Retrier{Queue: q, Decider: &client.Client{BaseURL: svc.URL, HTTP: &http.Client{Timeout: 5 * time.Second}},
		Interval: time.Millisecond, Retry: retry.Policy{Initial: time.Millisecond, Max: 2 * time.Millisecond},
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	stopped := make(chan struct{})
	go func() { _ = r.Run(ctx); close(stopped) }()
	for {
		rec, _ := q.Get("A-0")
		if rec.Attempts >= 3*maxFaults {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("A-0 after 10 s: %+v", rec)
		}
		time.Sleep(time.Millisecond)
	}
	for i := range 4 {
		if rec, _ := q.Get(fmt.Sprintf("A-%d", i)); rec.Status != Queued || rec.Faults != 0 {
			t.Fatalf("while the service fails everything: %+v", rec)
		}
	}
	broken.Store(false)
	for {
		if waiting, _ := q.Waiting(); len(waiting) == 0 {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("not all decided once the service was fixed")
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	<-stopped
}
