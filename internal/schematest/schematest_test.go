package schematest

import (
	"net/http"
	"strings"
	"testing"
)

// TestValidate pins what contract tests rely on: a component of the document
// is checked in full, formats included (a decision id that is no UUID fails),
// and an unknown component or a body that is not JSON is an error.
func TestValidate(t *testing.T) {
	c := OpenAPI(t)
	decision := func(id string) string {
		return `{"application_id":"a-1","decision_id":"` + id + `","approve":true,"probability":0.7,` +
			`"model":{"name":"loan-approval","version":"1","variant":"champion","sha256":"` + strings.Repeat("ab", 32) + `"},"request_id":"r"}`
	}
	for _, tc := range []struct {
		name, component, body, fails string
	}{
		{"valid", "Decision", decision("0190b3c4-5e6f-7a8b-9c0d-1e2f3a4b5c6d"), ""},
		{"format asserted", "Decision", decision("not-a-uuid"), "uuid"},
		{"extra field", "Decision", strings.Replace(decision("0190b3c4-5e6f-7a8b-9c0d-1e2f3a4b5c6d"), `"approve"`, `"x":1,"approve"`, 1), "additional"},
		{"error shape", "Error", `{"error":{"code":"no_such_code","message":"m"},"request_id":"r"}`, "does not match Error"},
		{"unknown component", "Nope", `{}`, "schema Nope"},
		{"not JSON", "Error", `{`, "not JSON"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := c.Validate(tc.component, []byte(tc.body))
			switch {
			case tc.fails == "" && err != nil:
				t.Fatal(err)
			case tc.fails != "" && (err == nil || !strings.Contains(err.Error(), tc.fails)):
				t.Fatalf("want an error with %q, got %v", tc.fails, err)
			}
		})
	}
}

// TestValidateAnswer pins what the answer test relies on: an answer is
// held to its operation's entry for its status, and each way an answer can
// drift from it is an error.
func TestValidateAnswer(t *testing.T) {
	c := OpenAPI(t)
	jsonHeader := http.Header{"Content-Type": {"application/json"}}
	errBody := `{"error":{"code":"unauthorized","message":"m"},"request_id":"r"}`
	for _, tc := range []struct {
		name, method, path string
		status             int
		header             http.Header
		body, fails        string
	}{
		{"valid", "GET", "/health", 200, jsonHeader, `{"status":"ok"}`, ""},
		{"path template", "DELETE", "/v1/decisions/A-1/legal-hold", 200, jsonHeader, `{"application_id":"A-1","legal_hold":false}`, ""},
		{"status not listed", "GET", "/health", 418, jsonHeader, `{}`, "status 418 is not in the contract"},
		{"wrong content type", "GET", "/health", 200, http.Header{"Content-Type": {"text/html"}}, `{"status":"ok"}`, "Content-Type"},
		{"body off its schema", "GET", "/health", 200, jsonHeader, `{"status":"ok","x":1}`, "does not match"},
		{"required header", "GET", "/admin/models", 401, jsonHeader, errBody, "WWW-Authenticate"},
		{"header set", "GET", "/admin/models", 401, http.Header{"Content-Type": {"application/json"}, "Www-Authenticate": {"Bearer"}}, errBody, ""},
		{"every NDJSON line", "GET", "/v1/decisions?from=a&to=b", 200, http.Header{"Content-Type": {"application/x-ndjson"}}, "{}\n", "line 1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			op, ok := c.Find(tc.method, tc.path)
			if !ok {
				t.Fatalf("no operation for %s %s", tc.method, tc.path)
			}
			err := c.ValidateAnswer(op, tc.status, tc.header, []byte(tc.body))
			switch {
			case tc.fails == "" && err != nil:
				t.Fatal(err)
			case tc.fails != "" && (err == nil || !strings.Contains(err.Error(), tc.fails)):
				t.Fatalf("want an error with %q, got %v", tc.fails, err)
			}
		})
	}
	if op, ok := c.Find("GET", "/v1/decisions/by-decision-id/x"); !ok || op.Path != "/v1/decisions/by-decision-id/{decision_id}" {
		t.Fatalf("the literal segment must win: %v", op)
	}
}
