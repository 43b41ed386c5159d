package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"mlservice/internal/schematest"
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

// TestEveryAnswerIsInTheContract sends every operation of /openapi.json its
// successes and its errors, and holds each real answer to what the document
// says that operation answers with that status: the status is listed, the
// Content-Type is the listed one, required headers (Retry-After,
// WWW-Authenticate) are set and the body satisfies the listed schema. Each
// operation must answer 2xx at least once, and each request body example
// the document shows (Swagger UI's "Try it out" sends it) must succeed as
// sent, so an operation or an example added without its proof fails here.
func TestEveryAnswerIsInTheContract(t *testing.T) {
	addr, _ := contractServer(t)
	contract := schematest.OpenAPI(t)
	const (
		admin = "Bearer " + routesAdminToken
		audit = "Bearer " + routesAuditToken
		js    = "application/json"
	)
	app := `{"application_id":"C-1","income":50000,"credit_score":700,"loan_amount":20000,"years_employed":5,"points":60}`
	infer := `{"inputs":[{"name":"features","shape":[1,4],"datatype":"FP32","data":[50000,700,20000,5]}]}`
	tooLarge := `{"x":"` + strings.Repeat("x", schemas.MaxBatchBytes) + `"}`
	now := time.Now().UTC()
	export := "/v1/decisions?from=" + now.Add(-time.Hour).Format(time.RFC3339) + "&to=" + now.Add(time.Hour).Format(time.RFC3339)

	type request struct {
		method, path string
		auth         string // the Authorization header
		contentType  string
		body         string
		headers      map[string]string
		signed       bool // an MLflow webhook delivery: signed with the secret
		status       int
		// example: the path's parameters and the body are the document's
		// examples for this operation (path is its template).
		example bool
	}
	// In order: the record's reads find what the predictions recorded, the
	// admin changes build on one another, and the failed tokens come last
	// (after ten from one address every token route answers 429).
	cases := []request{
		{method: "GET", path: "/health", status: 200},
		{method: "GET", path: "/ready", status: 200},
		{method: "GET", path: "/", status: 200},
		{method: "GET", path: "/metrics", status: 200},

		{method: "POST", path: "/v1/predict", example: true, contentType: js, status: 200},
		{method: "POST", path: "/v1/predict", contentType: js, body: app, status: 200},
		{method: "POST", path: "/v1/predict", contentType: js, body: `{`, status: 400},
		{method: "POST", path: "/v1/predict", contentType: js, body: `{"application_id":"` + strings.Repeat("x", 70000) + `"}`, status: 413},
		{method: "POST", path: "/v1/predict", contentType: js, body: tooLarge, status: 413},
		{method: "POST", path: "/v1/predict", contentType: "text/plain", body: app, status: 415},
		{method: "POST", path: "/v1/predict", contentType: js, body: app, headers: map[string]string{"Content-Encoding": "br"}, status: 415},
		{method: "POST", path: "/v1/predict", contentType: js, body: `{"income":-1,"colour":"red"}`, status: 422},
		{method: "POST", path: "/v1/predict/batch", example: true, contentType: js, status: 200},
		{method: "POST", path: "/v1/predict/batch", contentType: js, body: `{"applications":[` + app + `,{"income":-1}]}`, status: 200},
		{method: "POST", path: "/v1/predict/batch", contentType: js, body: `{"applications":[NaN]}`, status: 400},
		{method: "POST", path: "/v1/predict/batch", contentType: "text/plain", body: `{}`, status: 415},
		{method: "POST", path: "/v1/predict/batch", contentType: js, body: `{"applications":[]}`, status: 422},

		{method: "GET", path: "/v2", status: 200},
		{method: "GET", path: "/v2/health/live", status: 200},
		{method: "GET", path: "/v2/health/ready", status: 200},
		{method: "GET", path: "/v2/models/{model_name}", example: true, status: 200},
		{method: "GET", path: "/v2/models/nope", status: 404},
		{method: "GET", path: "/v2/models/{model_name}/ready", example: true, status: 200},
		{method: "GET", path: "/v2/models/{model_name}/versions/{model_version}", example: true, status: 200},
		{method: "GET", path: "/v2/models/loan-approval/versions/99", status: 404},
		{method: "GET", path: "/v2/models/{model_name}/versions/{model_version}/ready", example: true, status: 200},
		{method: "POST", path: "/v2/models/{model_name}/infer", example: true, contentType: js, status: 200},
		{method: "POST", path: "/v2/models/loan-approval/infer", body: infer, status: 200},
		{method: "POST", path: "/v2/models/loan-approval/infer", body: `{`, status: 400},
		{method: "POST", path: "/v2/models/nope/infer", body: infer, status: 404},
		{method: "POST", path: "/v2/models/loan-approval/infer", body: tooLarge, status: 413},
		{method: "POST", path: "/v2/models/loan-approval/infer", body: infer, headers: map[string]string{"Content-Encoding": "br"}, status: 415},
		{method: "POST", path: "/v2/models/{model_name}/versions/{model_version}/infer", example: true, contentType: js, status: 200},
		{method: "POST", path: "/v2/models/loan-approval/versions/99/infer", body: infer, status: 404},

		{method: "GET", path: "/admin/models", auth: admin, status: 200},
		{method: "GET", path: "/admin/models?model=nope", auth: admin, status: 404},
		{method: "GET", path: "/admin/models", auth: audit, status: 403},
		{method: "POST", path: "/admin/promote", example: true, auth: admin, contentType: js, status: 200},
		{method: "POST", path: "/admin/promote", auth: admin, contentType: js, body: `{"alias":"shadow","version":"1"}`, status: 200},
		{method: "POST", path: "/admin/promote", auth: admin, contentType: js, body: `{"alias":"champion","version":"1"}`, status: 409},
		{method: "POST", path: "/admin/promote", auth: admin, contentType: js, body: `{"version":"99"}`, status: 422},
		{method: "POST", path: "/admin/promote", auth: admin, contentType: js, body: `{`, status: 400},
		{method: "POST", path: "/admin/promote", auth: admin, contentType: "text/plain", body: `{}`, status: 415},
		{method: "POST", path: "/admin/promote", auth: admin, contentType: js, body: tooLarge, status: 413},
		{method: "PUT", path: "/admin/traffic", example: true, auth: admin, contentType: js, status: 200},
		{method: "PUT", path: "/admin/traffic", auth: admin, contentType: js, body: `{"champion":90,"challenger":20}`, status: 422},
		{method: "PUT", path: "/admin/traffic", auth: admin, contentType: js, body: `x`, status: 400},
		{method: "POST", path: "/admin/rollback", auth: admin, status: 409},
		{method: "POST", path: "/admin/retire", example: true, auth: admin, contentType: js, status: 200},
		{method: "POST", path: "/admin/retire", auth: admin, contentType: js, body: `{"alias":"shadow"}`, status: 422},
		{method: "POST", path: "/admin/retire", auth: admin, contentType: js, body: `[`, status: 400},
		{method: "POST", path: "/admin/promote", auth: admin, contentType: js, body: `{"version":"4"}`, status: 200},
		{method: "POST", path: "/admin/rollback", auth: admin, status: 200},

		{method: "GET", path: "/v1/decisions/{application_id}", example: true, auth: audit, status: 200},
		{method: "GET", path: "/v1/decisions/NOPE-1", auth: audit, status: 404},
		{method: "GET", path: "/v1/decisions/" + strings.Repeat("x", 65), auth: audit, status: 422},
		{method: "GET", path: "/v1/decisions/by-decision-id/{decision_id}", auth: audit, status: 200}, // the id is filled in below
		{method: "GET", path: "/v1/decisions/by-decision-id/019ade6c-7b3a-7c2e-8f00-3a1b2c3d4e5f", auth: audit, status: 404},
		{method: "GET", path: "/v1/decisions/by-decision-id/not-a-uuid", auth: audit, status: 422},
		{method: "GET", path: export, auth: audit, status: 200},
		{method: "GET", path: "/v1/decisions", auth: audit, status: 422},
		{method: "PUT", path: "/v1/decisions/{application_id}/legal-hold", example: true, auth: admin, contentType: js, status: 200},
		// A hold may come before the application's first decision.
		{method: "PUT", path: "/v1/decisions/NOT-YET-DECIDED/legal-hold", auth: admin, contentType: js, body: `{"reason":"case 9"}`, status: 200},
		{method: "PUT", path: "/v1/decisions/C-1/legal-hold", auth: admin, contentType: js, body: `{`, status: 400},
		{method: "PUT", path: "/v1/decisions/C-1/legal-hold", auth: audit, contentType: js, body: `{"reason":"x"}`, status: 403},
		{method: "PUT", path: "/v1/decisions/C-1/legal-hold", auth: admin, contentType: js, body: tooLarge, status: 413},
		{method: "PUT", path: "/v1/decisions/C-1/legal-hold", auth: admin, contentType: "text/plain", body: `{}`, status: 415},
		{method: "PUT", path: "/v1/decisions/C-1/legal-hold", auth: admin, contentType: js, body: `{}`, status: 422},
		{method: "GET", path: "/v1/legal-holds", auth: audit, status: 200},
		{method: "DELETE", path: "/v1/decisions/{application_id}/legal-hold", example: true, auth: admin, status: 200},
		{method: "DELETE", path: "/v1/decisions/NEVER-HELD/legal-hold", auth: admin, status: 200},
		{method: "POST", path: "/v1/outcomes", example: true, auth: audit, contentType: js, status: 200},
		{method: "POST", path: "/v1/outcomes", auth: audit, contentType: js, body: `{"outcomes":[{"application_id":"C-1","approved":false},{"application_id":"NOPE-1","approved":true}]}`, status: 200},
		{method: "POST", path: "/v1/outcomes", auth: audit, contentType: js, body: `{`, status: 400},
		{method: "POST", path: "/v1/outcomes", auth: audit, contentType: js, body: `{"application_id":"NOPE-1","approved":true}`, status: 404},
		{method: "POST", path: "/v1/outcomes", auth: audit, contentType: js, body: tooLarge, status: 413},
		{method: "POST", path: "/v1/outcomes", auth: audit, contentType: "text/plain", body: `{}`, status: 415},
		{method: "POST", path: "/v1/outcomes", auth: audit, contentType: js, body: `{"application_id":"C-1"}`, status: 422},

		{method: "POST", path: "/hooks/mlflow", example: true, contentType: js, signed: true, status: 202},
		{method: "POST", path: "/hooks/mlflow", example: true, contentType: js, signed: true, status: 200}, // the same delivery again
		{method: "POST", path: "/hooks/mlflow", contentType: js, body: `{}`, status: 401},

		{method: "GET", path: "/admin/models", status: 401},
		{method: "GET", path: "/v1/legal-holds", auth: "Bearer not-a-token", status: 401},
	}
	// Failed tokens until the address is refused, on every token route.
	for range 10 {
		cases = append(cases, request{method: "GET", path: "/v1/decisions/C-1", auth: "Bearer not-a-token"})
	}
	for _, op := range []string{"GET /admin/models", "POST /admin/promote", "PUT /admin/traffic", "POST /admin/rollback", "POST /admin/retire",
		"GET /v1/decisions/C-1", "GET /v1/decisions/by-decision-id/019ade6c-7b3a-7c2e-8f00-3a1b2c3d4e5f", "GET " + export,
		"PUT /v1/decisions/C-1/legal-hold", "DELETE /v1/decisions/C-1/legal-hold", "GET /v1/legal-holds", "POST /v1/outcomes"} {
		method, path, _ := strings.Cut(op, " ")
		cases = append(cases, request{method: method, path: path, auth: "Bearer not-a-token", status: 429})
	}

	succeeded := map[schematest.Operation]bool{}
	exampled := map[schematest.Operation]bool{}
	decisionID := ""
	for _, tc := range cases {
		path, body := tc.path, []byte(tc.body)
		if tc.example {
			op := schematest.Operation{Method: tc.method, Path: tc.path}
			var example []byte
			var err error
			if path, example, err = contract.Example(op); err != nil {
				t.Error(err)
				continue
			}
			if example != nil {
				body = example
				exampled[op] = true
			}
		}
		path = strings.Replace(path, "{decision_id}", decisionID, 1)
		var reader io.Reader = bytes.NewReader(body)
		var release chan struct{}
		if len(body) > schemas.MaxBatchBytes {
			// The server refuses it from Content-Length and closes. Sent
			// whole, the client's write could meet the reset before it
			// reads the 413; a body that stalls until the answer is in
			// cannot.
			release = make(chan struct{})
			reader = io.MultiReader(bytes.NewReader(body[:1024]), stall(release))
		}
		req, err := http.NewRequest(tc.method, "http://"+addr+path, reader)
		if err != nil {
			t.Fatal(err)
		}
		req.ContentLength = int64(len(body))
		for k, v := range map[string]string{"Authorization": tc.auth, "Content-Type": tc.contentType} {
			if v != "" {
				req.Header.Set(k, v)
			}
		}
		for k, v := range tc.headers {
			req.Header.Set(k, v)
		}
		if tc.signed {
			for k, v := range hookHeaders(body) {
				req.Header.Set(k, v)
			}
		}
		resp, err := http.DefaultClient.Do(req)
		if release != nil {
			close(release)
		}
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			t.Fatal(err)
		}
		what := tc.method + " " + path
		if len(what) > 120 {
			what = what[:120] + "…"
		}
		if tc.status != 0 && resp.StatusCode != tc.status {
			t.Errorf("%s: %d, want %d: %.300s", what, resp.StatusCode, tc.status, got)
		}
		op, ok := contract.Find(tc.method, path)
		if !ok {
			t.Errorf("%s: no operation of the contract matches", what)
			continue
		}
		if err := contract.ValidateAnswer(op, resp.StatusCode, resp.Header, got); err != nil {
			t.Errorf("%s: %v", what, err)
		}
		if resp.StatusCode/100 == 2 {
			succeeded[op] = true
		}
		if op.Path == "/v1/predict" && resp.StatusCode == 200 && decisionID == "" {
			var d struct {
				DecisionID string `json:"decision_id"`
			}
			if err := json.Unmarshal(got, &d); err != nil || d.DecisionID == "" {
				t.Fatalf("%s: no decision_id in %s", what, got)
			}
			decisionID = d.DecisionID
		}
	}

	ops, err := contract.Operations()
	if err != nil {
		t.Fatal(err)
	}
	for _, op := range ops {
		if !succeeded[op] {
			t.Errorf("%s never answered 2xx here: give it a case", op)
		}
		switch _, body, err := contract.Example(op); {
		case err != nil:
			t.Error(err)
		case body != nil && !exampled[op]:
			t.Errorf("%s: its request body example was never sent: give it an example case", op)
		}
	}
}

// hookHeaders signs an MLflow webhook delivery of body as MLflow does.
func hookHeaders(body []byte) map[string]string {
	id, ts := "routes-test-delivery", strconv.FormatInt(time.Now().Unix(), 10)
	mac := hmac.New(sha256.New, []byte(routesHookSecret))
	mac.Write([]byte(id + "." + ts + "."))
	mac.Write(body)
	return map[string]string{"X-MLflow-Delivery-Id": id, "X-MLflow-Timestamp": ts,
		"X-MLflow-Signature": "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))}
}

// stall is a body's end that never comes: Read waits until release is
// closed, then reports the body cut short.
type stall chan struct{}

func (s stall) Read([]byte) (int, error) {
	<-s
	return 0, io.ErrUnexpectedEOF
}
