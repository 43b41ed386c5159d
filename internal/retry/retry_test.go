package retry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// statusErr is an HTTP answer, as a client would report it.
type statusErr struct {
	status int
	after  time.Duration
}

func (e *statusErr) Error() string             { return "status " + strconv.Itoa(e.status) }
func (e *statusErr) HTTPStatus() int           { return e.status }
func (e *statusErr) RetryAfter() time.Duration { return e.after }

// noAnswer is a client's "no usable answer" error.
type noAnswer struct{ err error }

func (e *noAnswer) Error() string   { return e.err.Error() }
func (e *noAnswer) Unwrap() error   { return e.err }
func (e *noAnswer) Transient() bool { return true }

// get is a tiny client over the policy: the status of a GET as an error.
func get(ctx context.Context, url string) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err // a *url.Error: a net.Error
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, resp.Body)
	if resp.StatusCode != http.StatusOK {
		return &statusErr{status: resp.StatusCode, after: ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now())}
	}
	return nil
}

var quick = Policy{Initial: time.Millisecond, Max: 5 * time.Millisecond, Attempts: 4}

func TestWhatIsRetried(t *testing.T) {
	tests := []struct {
		name     string
		statuses []int // one per try; the last repeats
		tries    int32
		ok       bool
	}{
		{"503 then 200", []int{503, 200}, 2, true},
		{"500 502 504 then 200", []int{500, 502, 504, 200}, 4, true},
		{"429 then 200", []int{429, 200}, 2, true},
		{"5xx until out of attempts", []int{503}, 4, false},
		{"no retry on 400", []int{400, 200}, 1, false},
		{"no retry on 404", []int{404, 200}, 1, false},
		{"no retry on 422", []int{422, 200}, 1, false},
		{"no retry on 401", []int{401, 200}, 1, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var n atomic.Int32
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				i := int(n.Add(1)) - 1
				w.WriteHeader(tt.statuses[min(i, len(tt.statuses)-1)])
			}))
			defer srv.Close()
			err := Do(context.Background(), quick, func(ctx context.Context) error { return get(ctx, srv.URL) }, nil)
			if got := n.Load(); got != tt.tries {
				t.Errorf("%d tries, want %d", got, tt.tries)
			}
			if (err == nil) != tt.ok {
				t.Errorf("error %v, want success %v", err, tt.ok)
			}
			var se *statusErr
			if err != nil && !errors.As(err, &se) {
				t.Errorf("the last error %v is not the answer's", err)
			}
		})
	}
}

func TestNetworkErrorsAreRetried(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + ln.Addr().String()
	ln.Close() // nothing listens: connection refused
	tries := 0
	err = Do(context.Background(), quick, func(ctx context.Context) error { tries++; return get(ctx, url) }, nil)
	if tries != 4 || err == nil {
		t.Fatalf("%d tries, error %v; want 4 tries and the refusal", tries, err)
	}

	// A client's own marker for "no usable answer" counts too, and an
	// error that is neither is final.
	tries = 0
	_ = Do(context.Background(), quick, func(context.Context) error {
		tries++
		return &noAnswer{io.ErrUnexpectedEOF}
	}, nil)
	if tries != 4 {
		t.Errorf("transient error: %d tries, want 4", tries)
	}
	tries = 0
	_ = Do(context.Background(), quick, func(context.Context) error { tries++; return errors.New("answer not understood") }, nil)
	if tries != 1 {
		t.Errorf("final error: %d tries, want 1", tries)
	}
}

func TestRetryAfterLengthensTheWait(t *testing.T) {
	var waits []time.Duration
	p := Policy{Initial: time.Millisecond, Max: 300 * time.Millisecond, Attempts: 3}
	start := time.Now()
	err := Do(context.Background(), p, func(context.Context) error {
		return &statusErr{status: 429, after: 100 * time.Millisecond}
	}, func(_ int, wait time.Duration, _ error) { waits = append(waits, wait) })
	if err == nil || len(waits) != 2 {
		t.Fatalf("error %v, waits %v", err, waits)
	}
	for _, w := range waits {
		if w < 100*time.Millisecond {
			t.Errorf("waited %v, the server asked for 100ms", w)
		}
	}
	if d := time.Since(start); d < 200*time.Millisecond {
		t.Errorf("two retries took %v, want at least 200ms", d)
	}

	// Capped by Max: a server cannot park a client for a day.
	pc := Policy{Initial: time.Millisecond, Max: 50 * time.Millisecond}.Pacer()
	if w := pc.Failed(&statusErr{status: 503, after: 24 * time.Hour}); w > 75*time.Millisecond {
		t.Errorf("Retry-After of a day: waited %v, want at most Max (+50%% jitter)", w)
	}
	// And it never shortens the backoff.
	pc = Policy{Initial: time.Second, Max: time.Second}.Pacer()
	if w := pc.Failed(&statusErr{status: 503, after: time.Millisecond}); w < 500*time.Millisecond {
		t.Errorf("a short Retry-After shortened the wait to %v", w)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 12, 1, 8, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Duration{
		"":     0,
		"7":    7 * time.Second,
		" 2 ":  2 * time.Second,
		"-3":   0,
		"soon": 0,
		now.Add(90 * time.Second).Format(http.TimeFormat): 90 * time.Second,
		now.Add(-time.Hour).Format(http.TimeFormat):       0,
	} {
		if got := ParseRetryAfter(in, now); got != want {
			t.Errorf("ParseRetryAfter(%q) = %v, want %v", in, got, want)
		}
	}
}

func TestWaitsGrowToMax(t *testing.T) {
	p := Policy{Initial: 100 * time.Millisecond, Max: time.Second}
	for range 20 {
		pc := p.Pacer()
		interval := 100 * time.Millisecond
		for n := 1; n <= 8; n++ {
			w := pc.Failed(errors.New("down"))
			if lo, hi := interval/2, interval*3/2+time.Millisecond; w < lo || w > hi {
				t.Fatalf("wait %d = %v, want within [%v, %v]", n, w, lo, hi)
			}
			interval = min(2*interval, time.Second)
		}
		pc.Succeeded()
		if w := pc.Failed(errors.New("down")); w > 150*time.Millisecond {
			t.Fatalf("after a success the wait starts over: %v", w)
		}
	}
}

func TestContextEndsTheRetries(t *testing.T) {
	p := Policy{Initial: time.Hour, Max: time.Hour, Attempts: -1}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := Do(ctx, p, func(context.Context) error { return &statusErr{status: 503} }, nil)
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("returned after %v", d)
	}
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("error %v, want DeadlineExceeded", err)
	}
	var se *statusErr
	if !errors.As(err, &se) {
		t.Errorf("error %v lost the last answer", err)
	}

	// A cancelled context is not retried even when the try reports it as a
	// network error.
	ctx, cancel = context.WithCancel(context.Background())
	tries := 0
	_ = Do(ctx, quick, func(ctx context.Context) error {
		tries++
		cancel()
		return fmt.Errorf("get: %w", ctx.Err())
	}, nil)
	if tries != 1 {
		t.Errorf("%d tries after cancel, want 1", tries)
	}
}

func TestAttemptTimeout(t *testing.T) {
	var n atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			<-r.Context().Done() // hang until the client gives up on this try
		}
	}))
	defer srv.Close()
	p := quick
	p.AttemptTimeout = 100 * time.Millisecond
	if err := Do(context.Background(), p, func(ctx context.Context) error { return get(ctx, srv.URL) }, nil); err != nil {
		t.Fatalf("a hung first try must cost one try: %v", err)
	}
	if got := n.Load(); got != 2 {
		t.Errorf("%d tries, want 2", got)
	}
}
