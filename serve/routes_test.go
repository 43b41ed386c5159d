package main

import (
	"bufio"
	"context"
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"mlservice/internal/servetest"
	"mlservice/schemas"
)

// TestEveryRouteIsInTheContract holds the routes the server mounts (record
// and outcomes on) to /openapi.json, both ways: a route added without its
// contract, or a contract path no route serves, fails here.
func TestEveryRouteIsInTheContract(t *testing.T) {
	env := map[string]string{"SERVE_ADDR": "127.0.0.1:0", "SERVE_CACHE_DIR": t.TempDir(), "SERVE_DATA_DIR": t.TempDir(),
		"ONNXRUNTIME_SHARED_LIBRARY_PATH": servetest.ORTLibrary(t), "SERVE_SHUTDOWN_DRAIN": "0s", "SERVE_LOG_LEVEL": "debug",
		"SERVE_ADMIN_TOKEN": "routes-test-admin-token"}
	var logs servetest.SafeBuffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, nil, func(k string) string { return env[k] }, &logs) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(logs.String(), `"msg":"serving"`); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the server never started:\n%s", logs.String())
		}
	}

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
