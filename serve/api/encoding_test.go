package api

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"io"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
)

func gzipped(t *testing.T, raw []byte) string {
	t.Helper()
	var b bytes.Buffer
	w := gzip.NewWriter(&b)
	if _, err := w.Write(raw); err != nil {
		t.Fatal(err)
	}
	_ = w.Close()
	return b.String()
}

func zlibbed(t *testing.T, raw []byte) string {
	t.Helper()
	var b bytes.Buffer
	w := zlib.NewWriter(&b)
	_, _ = w.Write(raw)
	_ = w.Close()
	return b.String()
}

// A compressed body is decoded before the handlers, and never past the body
// limit: a gzip of zeros under the limit on the wire that inflates to 2 MiB
// is refused with 413.
func TestCompressedBodies(t *testing.T) {
	ts := newTestServer(t, Config{Model: "loan-approval", PredictBodyLimit: 1024, BodyLimit: 4096})
	ts.publish(t, 0)
	bomb := gzipped(t, make([]byte, 2<<20))
	if len(bomb) > 4096 {
		t.Fatalf("the bomb is %d bytes on the wire", len(bomb))
	}
	tests := []struct {
		name, encoding, body string
		status               int
		code                 string
	}{
		{"gzip", "gzip", gzipped(t, []byte(goodApplication)), 200, ""},
		{"deflate", "deflate", zlibbed(t, []byte(goodApplication)), 200, ""},
		{"identity", "identity", goodApplication, 200, ""},
		{"decodes past the limit", "gzip", bomb, 413, CodeBodyTooLarge},
		{"truncated gzip", "gzip", gzipped(t, []byte(goodApplication))[:20], 400, CodeMalformedJSON},
		{"not gzip at all", "gzip", goodApplication, 400, CodeMalformedJSON},
		{"an encoding not accepted", "br", goodApplication, 415, CodeUnsupportedMediaType},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := ts.do(t, "POST", "/v1/predict", "application/json", tc.body, "Content-Encoding", tc.encoding)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %v", resp.StatusCode, tc.status, body)
			}
			if tc.code == "" {
				if body["approve"] != true {
					t.Fatalf("wrong decision: %v", body)
				}
				return
			}
			if e, _ := body["error"].(map[string]any); e["code"] != tc.code || e["message"] == "" {
				t.Fatalf("error %v, want code %s", body, tc.code)
			}
		})
	}
}

// The decoder allocates what it keeps, not what the bomb would inflate to.
func TestCompressedBombAllocatesLittle(t *testing.T) {
	ts := newTestServer(t, Config{Model: "loan-approval"})
	ts.publish(t, 0)
	bomb := gzipped(t, make([]byte, 256<<20))
	send := func() {
		req := httptest.NewRequest("POST", "/v1/predict/batch", strings.NewReader(bomb))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Content-Encoding", "gzip")
		resp, err := ts.app.Test(req, -1)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 413 {
			t.Fatalf("status %d, want 413", resp.StatusCode)
		}
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	send()
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 64<<20 {
		t.Fatalf("one 413 allocated %d MiB", grew>>20)
	}
}
