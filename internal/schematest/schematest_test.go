package schematest

import (
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
