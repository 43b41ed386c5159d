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
	send := rawSender(t, Config{BodyLimit: 4096})
	for _, c := range []struct {
		name, raw string
		status    int
		code      string
	}{
		{"body over the limit", "POST /v1/predict/batch HTTP/1.1\r\nHost: x\r\nX-Request-ID: mine-1\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{",
			413, CodeBodyTooLarge},
		{"headers too large", "GET /ready HTTP/1.1\r\nHost: x\r\nX-Filler: " + strings.Repeat("a", 9000) + "\r\n\r\n",
			431, CodeHeadersTooLarge},
		{"chunked body over the limit", "POST /v1/predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n" +
			overLimitChunks, 413, CodeBodyTooLarge},
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

// overLimitChunks is a chunked body over a 4096-byte limit, unterminated.
var overLimitChunks = "1400\r\n" + strings.Repeat("1", 0x1400) + "\r\n"

// Errors fasthttp raises while reading a /v2 body reset the request, path
// included; the protocol's clients must still get {"error": "..."}.
func TestProtocolTransportErrorsKeepItsShape(t *testing.T) {
	send := rawSender(t, Config{BodyLimit: 4096, ReadTimeout: 300 * time.Millisecond})
	for _, c := range []struct {
		name, raw string
		status    int
	}{
		{"content-length over the limit", "POST /v2/models/m/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n{", 413},
		{"chunked body over the limit", "POST /v2/models/m/infer HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + overLimitChunks, 413},
		{"absolute form, with a query", "POST http://x/v2/models/m/infer?a=1 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + overLimitChunks, 413},
		{"body slower than the read timeout", "POST /v2/models/m/infer HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{", 408},
	} {
		resp, body := send(c.raw)
		msg, ok := body["error"].(string)
		if resp.StatusCode != c.status || !ok || msg == "" || len(body) != 1 {
			t.Errorf("%s: %d %v, want %d {\"error\": \"...\"}", c.name, resp.StatusCode, body, c.status)
		}
	}
	// The server forgets each of them: a /v1 request on a reused context
	// gets /v1's shape.
	resp, body := send("POST /v1/predict HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + overLimitChunks)
	if e, _ := body["error"].(map[string]any); resp.StatusCode != 413 || e["code"] != CodeBodyTooLarge {
		t.Errorf("/v1 after /v2: %d %v", resp.StatusCode, body)
	}
}

// rawSender serves a test server on a free port and returns a function that
// writes raw bytes on a new connection and reads the JSON answer.
func rawSender(t *testing.T, cfg Config) func(raw string) (*http.Response, map[string]any) {
	t.Helper()
	ts := newTestServer(t, cfg)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go ts.app.Listener(ln)
	t.Cleanup(func() { ts.app.Shutdown() })
	return func(raw string) (*http.Response, map[string]any) {
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
}
