package admin

import (
	"encoding/json"
	"testing"
	"time"

	"mlservice/internal/schematest"
)

// TestAnswersMatchPublishedContract validates what /admin answers against
// the published /openapi.json, and checks that every /admin operation
// declares the ?model= parameter and its 404.
func TestAnswersMatchPublishedContract(t *testing.T) {
	contract := schematest.OpenAPI(t)
	var paths struct {
		Paths map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(contract.Raw(), &paths); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/admin/models", "/admin/promote", "/admin/traffic", "/admin/rollback", "/admin/retire"} {
		var ops map[string]struct {
			Parameters []struct {
				Ref string `json:"$ref"`
			} `json:"parameters"`
			Responses map[string]any `json:"responses"`
		}
		if err := json.Unmarshal(paths.Paths[p], &ops); err != nil || len(ops) == 0 {
			t.Errorf("/openapi.json has no %s: %v", p, err)
		}
		for method, op := range ops {
			declared := false
			for _, prm := range op.Parameters {
				declared = declared || prm.Ref == "#/components/parameters/AdminModel"
			}
			if _, ok := op.Responses["404"]; !declared || !ok {
				t.Errorf("%s %s: the model parameter (%v) or its 404 (%v) is not declared", method, p, declared, ok)
			}
		}
	}

	f := newFixture(t, time.Second)
	close(f.ctrl.release)
	close(f.other.release)
	for _, tc := range []struct {
		method, path, body string
		status             int
		component          string
	}{
		{"GET", "/admin/models", "", 200, "AdminModels"},
		{"GET", "/admin/models?model=" + otherModel, "", 200, "AdminModels"},
		{"POST", "/admin/promote?model=" + otherModel, `{"version":"2"}`, 200, "AdminChange"},
		{"POST", "/admin/rollback", "", 200, "AdminChange"},
		{"POST", "/admin/retire?model=nope", `{"alias":"shadow"}`, 404, "Error"},
	} {
		contentType := ""
		if tc.body != "" {
			contentType = "application/json"
		}
		status, out := f.do(t, tc.method, tc.path, contentType, tc.body)
		if status != tc.status {
			t.Fatalf("%s %s: %d %v", tc.method, tc.path, status, out)
		}
		// The fixture decoded the answer; as JSON again for the validator.
		b, _ := json.Marshal(out)
		if err := contract.Validate(tc.component, b); err != nil {
			t.Errorf("%s %s: %v", tc.method, tc.path, err)
		}
	}
}
