// Package interop checks that the clients platform teams use for the Open
// Inference Protocol work against the real server: tritonclient[http] and
// KServe's InferenceRESTClient, pinned in interop/uv.lock, run by check.py.
package interop

import (
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mlservice/internal/servetest"
)

// TestClients starts the server with champion 2 and a challenger 1 at weight
// 0 (live, reachable by its version in the path, never routed to), then runs
// check.py against it.
func TestClients(t *testing.T) {
	python := filepath.Join(servetest.ModuleRoot(), "interop", ".venv", "bin", "python")
	if _, err := os.Stat(python); err != nil {
		t.Fatalf("no interop environment at %s: run `make interop-env` (make test does)", python)
	}
	const token = "interop-test-admin-token"
	srv := servetest.Start(t, servetest.Options{Env: []string{"SERVE_ADMIN_TOKEN=" + token}})
	admin(t, srv.URL, token, "POST", "/admin/promote", `{"alias":"challenger","version":"1"}`)
	admin(t, srv.URL, token, "PUT", "/admin/traffic", `{"champion":100,"challenger":0}`)

	cmd := exec.Command(python, filepath.Join(servetest.ModuleRoot(), "interop", "check.py"),
		"--url", srv.URL, "--model", "loan-approval", "--champion", "2", "--challenger", "1")
	done := make(chan struct{})
	timer := time.AfterFunc(3*time.Minute, func() {
		select {
		case <-done:
		default:
			_ = cmd.Process.Kill()
		}
	})
	out, err := cmd.CombinedOutput()
	close(done)
	timer.Stop()
	t.Logf("check.py:\n%s", out)
	if err != nil {
		t.Fatalf("check.py failed: %v\nserver log:\n%s", err, srv.Log.String())
	}
	if !strings.Contains(string(out), " 0 failed") {
		t.Fatal("check.py did not report its checks")
	}
}

func admin(t *testing.T, base, token, method, path, body string) {
	t.Helper()
	req, err := http.NewRequest(method, base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("%s %s: %d", method, path, resp.StatusCode)
	}
}
