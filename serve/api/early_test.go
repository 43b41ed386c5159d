package api

import (
	"bufio"
	"encoding/json"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// Requests fasthttp refuses before any middleware runs (a Content-Length
// over the body limit, headers over its buffer) still get a request id and
// a code that says what is wrong.
func TestErrorsBeforeAnyRouteCarryARequestID(t *testing.T) {
	ts := newTestServer(t, Config{BodyLimit: 4096})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go ts.app.Listener(ln)
	defer ts.app.Shutdown()
	send := func(raw string) (*http.Response, map[string]any) {
		t.Helper()
		conn, err := net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(10 * time.Second))
		if _, err := conn.Write([]byte(raw)); err != nil {
			t.Fatal(err)
		}
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var body map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
			t.Fatal(err)
		}
		return resp, body
	}
	for _, c := range []struct {
		name, raw string
		status    int
		code      string
	}{
		{"body over the limit", "POST /v1/predict/batch HTTP/1.1\r\nHost: x\r\nX-Request-ID: mine-1\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{",
			413, CodeBodyTooLarge},
		{"headers too large", "GET /ready HTTP/1.1\r\nHost: x\r\nX-Filler: " + strings.Repeat("a", 9000) + "\r\n\r\n",
			431, CodeHeadersTooLarge},
	} {
		resp, body := send(c.raw)
		e, _ := body["error"].(map[string]any)
		if resp.StatusCode != c.status || e["code"] != c.code {
			t.Errorf("%s: %d %v, want %d %s", c.name, resp.StatusCode, body, c.status, c.code)
		}
		if id := resp.Header.Get("X-Request-ID"); id == "" || body["request_id"] != id {
			t.Errorf("%s: X-Request-ID %q, request_id %v", c.name, id, body["request_id"])
		}
	}
}
