package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"mlservice/internal/servetest"
	"mlservice/schemas"
)

// The tokens of the contract server: the admin's, and an examiner's of role
// audit only.
const (
	routesAdminToken = "routes-test-admin-token"
	routesAuditToken = "routes-test-audit-token"
	routesHookSecret = "routes-test-webhook-secret"
)

// contractServer runs the server in process with every optional route on
// (the record, outcomes, the tokens of both roles, the MLflow webhook) and
// debug logs, which list the routes. It returns the address and the logs.
func contractServer(t *testing.T) (addr string, logs *servetest.SafeBuffer) {
	t.Helper()
	dir := t.TempDir()
	sum := sha256.Sum256([]byte(routesAuditToken))
	tokens := filepath.Join(dir, "tokens.yaml")
	if err := os.WriteFile(tokens, []byte("- name: examiner-1\n  sha256: "+hex.EncodeToString(sum[:])+"\n  roles: [audit]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"SERVE_ADDR": "127.0.0.1:0", "SERVE_CACHE_DIR": t.TempDir(), "SERVE_DATA_DIR": t.TempDir(),
		"ONNXRUNTIME_SHARED_LIBRARY_PATH": servetest.ORTLibrary(t), "SERVE_SHUTDOWN_DRAIN": "0s", "SERVE_LOG_LEVEL": "debug",
		"SERVE_ADMIN_TOKEN": routesAdminToken, "SERVE_TOKENS_FILE": tokens, "SERVE_WEBHOOK_SECRET": routesHookSecret}
	logs = &servetest.SafeBuffer{}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, nil, func(k string) string { return env[k] }, logs) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		sc := bufio.NewScanner(strings.NewReader(logs.String()))
		for sc.Scan() {
			var line struct{ Msg, Addr string }
			if json.Unmarshal(sc.Bytes(), &line) == nil && line.Msg == "serving" {
				return line.Addr, logs
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("the server never started:\n%s", logs.String())
		}
	}
}

// TestEveryRouteIsInTheContract holds the routes the server mounts (record,
// outcomes and the webhook on) to /openapi.json, both ways: a route added
// without its contract, or a contract path no route serves, fails here.
func TestEveryRouteIsInTheContract(t *testing.T) {
	_, logs := contractServer(t)

	// Not API routes: the contract itself and the page that renders it.
	meta := func(path string) bool {
		return path == "/openapi.json" || path == "/docs" || strings.HasPrefix(path, "/docs/")
	}
	// Path parameters by place, not by name (Fiber's :model is the spec's
	// {model_name}).
	routeParam, contractParam := regexp.MustCompile(`:[A-Za-z_]+`), regexp.MustCompile(`\{[^}]+\}`)
	served := map[string]bool{}
	sc := bufio.NewScanner(strings.NewReader(logs.String()))
	for sc.Scan() {
		var line struct{ Msg, Method, Path string }
		if json.Unmarshal(sc.Bytes(), &line) != nil || line.Msg != "route" || line.Method == "HEAD" || meta(line.Path) {
			continue
		}
		served[line.Method+" "+routeParam.ReplaceAllString(line.Path, "{}")] = true
	}
	var contract struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	raw, err := schemas.OpenAPI()
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &contract); err != nil {
		t.Fatal(err)
	}
	documented := map[string]bool{}
	for path, ops := range contract.Paths {
		for method := range ops {
			if method != "parameters" {
				documented[strings.ToUpper(method)+" "+contractParam.ReplaceAllString(path, "{}")] = true
			}
		}
	}
	if len(served) < 20 {
		t.Fatalf("only %d routes logged: %v", len(served), served)
	}
	var missing, unserved []string
	for r := range served {
		if !documented[r] {
			missing = append(missing, r)
		}
	}
	for r := range documented {
		if !served[r] {
			unserved = append(unserved, r)
		}
	}
	slices.Sort(missing)
	slices.Sort(unserved)
	if len(missing) > 0 {
		t.Errorf("served but not in /openapi.json: %v", missing)
	}
	if len(unserved) > 0 {
		t.Errorf("in /openapi.json but not served: %v", unserved)
	}
}
