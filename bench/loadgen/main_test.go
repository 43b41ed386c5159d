package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"
)

func bodiesFile(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "bodies.jsonl")
	if err := os.WriteFile(p, []byte("{\"a\":1}\n{\"a\":2}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func runLoad(t *testing.T, args ...string) Result {
	t.Helper()
	var out bytes.Buffer
	if err := run(args, &out); err != nil {
		t.Fatalf("run %v: %v", args, err)
	}
	var r Result
	if err := json.Unmarshal(out.Bytes(), &r); err != nil {
		t.Fatalf("%v: %s", err, out.Bytes())
	}
	return r
}

// TestClosedLoop: every request reaches the server with its body, answers
// are checked against -expect, and wrong answers are counted by kind.
func TestClosedLoop(t *testing.T) {
	var n atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var v map[string]int
		if r.Method != http.MethodPost || r.Header.Get("Content-Type") != "application/json" ||
			json.NewDecoder(r.Body).Decode(&v) != nil || v["a"] == 0 {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		if n.Add(1)%10 == 0 {
			http.Error(w, "busy", http.StatusServiceUnavailable)
			return
		}
		w.Write([]byte(`{"approve":true}`))
	}))
	defer srv.Close()
	r := runLoad(t, "-url", srv.URL+"/v1/predict", "-bodies", bodiesFile(t), "-c", "4",
		"-d", "400ms", "-warmup", "0s", "-expect", `"approve"`)
	if r.Mode != "closed" || r.Requests < 50 {
		t.Fatalf("mode %s, %d requests; want closed, ≥ 50", r.Mode, r.Requests)
	}
	if r.ErrorKinds["http_503"] == 0 || r.Errors != r.ErrorKinds["http_503"] {
		t.Errorf("errors %d %v; want only http_503", r.Errors, r.ErrorKinds)
	}
	if r.RPS <= 0 || r.P50ms <= 0 || r.P99ms < r.P50ms {
		t.Errorf("rps %.0f p50 %.3f p99 %.3f", r.RPS, r.P50ms, r.P99ms)
	}
}

// TestOpenLoopMeasuresFromDueTime: a stall of the server shows in the
// latencies of the requests that were due during it, though each is served
// fast once it is sent (no coordinated omission).
func TestOpenLoopMeasuresFromDueTime(t *testing.T) {
	var stalled atomic.Bool
	start := time.Now()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if time.Since(start) > 300*time.Millisecond && stalled.CompareAndSwap(false, true) {
			time.Sleep(300 * time.Millisecond)
		}
		w.Write([]byte(`{"approve":true}`))
	}))
	defer srv.Close()
	r := runLoad(t, "-url", srv.URL+"/v1/predict", "-bodies", bodiesFile(t), "-c", "1",
		"-rate", "200", "-d", "1s", "-warmup", "0s")
	if r.Mode != "open" || r.Errors != 0 {
		t.Fatalf("mode %s, errors %v", r.Mode, r.ErrorKinds)
	}
	// 200/s for 1 s: about 200 requests, ~60 of them due during the stall
	// and late; the p95 must carry the stall (≥ 100 ms), though the
	// server answers in microseconds otherwise.
	if r.Requests < 150 || r.Late < 20 {
		t.Errorf("requests %d, late %d; want ≥ 150 and ≥ 20", r.Requests, r.Late)
	}
	if r.P95ms < 100 || r.Maxms < 250 {
		t.Errorf("p95 %.1f ms, max %.1f ms: the stall does not show", r.P95ms, r.Maxms)
	}
	if r.P50ms > 50 {
		t.Errorf("p50 %.1f ms: most requests were not stalled", r.P50ms)
	}
}

func TestLoopbackOnly(t *testing.T) {
	for _, u := range []string{"http://10.0.0.1:80/x", "http://example.com/x"} {
		if err := run([]string{"-url", u, "-bodies", bodiesFile(t)}, &bytes.Buffer{}); err == nil {
			t.Errorf("%s: accepted a non-loopback target", u)
		}
	}
}
