package main

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"testing"
	"time"
)

// replica is a fake serve replica that says who answered and whether it is ready.
func replica(t *testing.T, name string, ready bool) *httptest.Server {
	t.Helper()
	s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/ready" && !ready {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		io.WriteString(w, name)
	}))
	t.Cleanup(s.Close)
	return s
}

func get(t *testing.T, h http.Handler, path string) (int, string) {
	t.Helper()
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
	return rec.Code, rec.Body.String()
}

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

func TestPoolRoundRobinsOverHealthyReplicas(t *testing.T) {
	a, b, down := replica(t, "a", true), replica(t, "b", true), replica(t, "down", false)
	p := NewPool([]string{a.URL, down.URL, b.URL}, "", "/ready", time.Second, quiet())
	p.Refresh(context.Background())

	seen := map[string]int{}
	for range 10 {
		code, body := get(t, p, "/v1/predict")
		if code != http.StatusOK {
			t.Fatalf("status %d", code)
		}
		seen[body]++
	}
	if seen["a"] != 5 || seen["b"] != 5 || seen["down"] != 0 {
		t.Fatalf("want 5 each from a and b and none from the unready replica, got %v", seen)
	}

	code, body := get(t, p, "/-/lb")
	var st struct {
		Backends []struct {
			URL     string `json:"url"`
			Healthy bool   `json:"healthy"`
		} `json:"backends"`
		Healthy int `json:"healthy"`
	}
	if code != http.StatusOK || json.Unmarshal([]byte(body), &st) != nil || st.Healthy != 2 || len(st.Backends) != 3 {
		t.Fatalf("/-/lb: %d %s", code, body)
	}
}

func TestPoolDropsAFailedReplicaAndAnswers503WhenNoneIsLeft(t *testing.T) {
	a := replica(t, "a", true)
	p := NewPool([]string{a.URL}, "", "/ready", time.Second, quiet())
	p.Refresh(context.Background())
	if code, _ := get(t, p, "/x"); code != http.StatusOK {
		t.Fatalf("status %d", code)
	}
	a.Close()
	if code, body := get(t, p, "/x"); code != http.StatusBadGateway {
		t.Fatalf("after the replica died: %d %s", code, body)
	}
	code, body := get(t, p, "/x")
	if code != http.StatusServiceUnavailable {
		t.Fatalf("no replica left: %d %s", code, body)
	}
	var e struct {
		Error struct{ Code string } `json:"error"`
	}
	if json.Unmarshal([]byte(body), &e) != nil || e.Error.Code != "not_ready" {
		t.Fatalf("error body %s", body)
	}
}

func TestPoolFollowsDNS(t *testing.T) {
	a := replica(t, "a", true)
	host := func(s *httptest.Server) string {
		u, _ := url.Parse(s.URL)
		h, _, _ := net.SplitHostPort(u.Host)
		return h
	}
	port := func(s *httptest.Server) string {
		u, _ := url.Parse(s.URL)
		_, p, _ := net.SplitHostPort(u.Host)
		return p
	}
	// A scaled service is one port on many addresses; the fake has one, so
	// the name resolves to it, then (scaled to zero) to nothing.
	var answer []string
	p := NewPool(nil, "serve:"+port(a), "/ready", time.Second, quiet())
	p.lookup = func(_ context.Context, name string) ([]string, error) {
		if name != "serve" {
			t.Errorf("looked up %q", name)
		}
		return answer, nil
	}
	answer = []string{host(a)}
	p.Refresh(context.Background())
	if code, body := get(t, p, "/"); code != http.StatusOK || body != "a" {
		t.Fatalf("got %d %q", code, body)
	}
	answer = nil
	p.Refresh(context.Background())
	if code, _ := get(t, p, "/"); code != http.StatusServiceUnavailable {
		t.Fatalf("scaled to zero: %d", code)
	}
}

func TestRunRejectsBadFlags(t *testing.T) {
	for _, args := range [][]string{{}, {"-backends", "http://x", "-resolve", "serve:8000"}, {"-backends", "http://x", "-interval", "1ms"}} {
		if err := run(context.Background(), args, io.Discard); err == nil {
			t.Errorf("%v: no error", args)
		}
	}
}
