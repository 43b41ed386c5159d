package main

import (
	"bufio"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"mlservice/internal/servetest"
)

// TestRecordAuditNamesTheForwardedClient: behind a trusted proxy, the
// record's audit lines name the client X-Forwarded-For gives, as auth's do,
// not the proxy.
func TestRecordAuditNamesTheForwardedClient(t *testing.T) {
	s := servetest.Start(t, servetest.Options{Env: []string{"SERVE_TRUSTED_PROXIES=127.0.0.1/32", "SERVE_ADMIN_TOKEN=" + adminToken}})
	req, err := http.NewRequest("GET", s.URL+"/v1/decisions/A-1", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+adminToken)
	req.Header.Set("X-Forwarded-For", "203.0.113.9")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Fatalf("GET /v1/decisions/A-1 = %d, want 404", resp.StatusCode)
	}
	if !s.WaitLog(`"msg":"decision record read"`, 5*time.Second) {
		t.Fatalf("no audit line for the read:\n%s", s.Log.String())
	}
	sc := bufio.NewScanner(strings.NewReader(s.Log.String()))
	for sc.Scan() {
		var line struct{ Msg, Remote string }
		if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "decision record read" && line.Remote != "203.0.113.9" {
			t.Fatalf("the record's audit line names %q, want the forwarded client 203.0.113.9: %s", line.Remote, sc.Text())
		}
	}
}
