package api

import (
	"encoding/json"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// FuzzPredict sends arbitrary bodies to both predict routes: whatever the
// body, the answer is never a 5xx and always JSON. The seed corpus is the
// nasty cases under schemas/testdata/nasty.
func FuzzPredict(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join("..", "..", "schemas", "testdata", "nasty", "*.json"))
	for _, p := range seeds {
		if strings.HasSuffix(p, ".want.json") { // a case's expected errors, not a body
			continue
		}
		raw, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	f.Add([]byte(goodApplication))
	ts := newTestServer(&testing.T{}, Config{Model: "loan-approval"})
	ts.publish(&testing.T{}, 20)
	f.Fuzz(func(t *testing.T, body []byte) {
		for _, path := range []string{"/v1/predict", "/v1/predict/batch"} {
			req := httptest.NewRequest("POST", path, strings.NewReader(string(body)))
			req.Header.Set("Content-Type", "application/json")
			resp, err := ts.app.Test(req, -1)
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode >= 500 {
				t.Fatalf("%s answered %d to %q: %s", path, resp.StatusCode, body, raw)
			}
			if !json.Valid(raw) {
				t.Fatalf("%s answered non-JSON to %q: %s", path, body, raw)
			}
		}
	})
}
