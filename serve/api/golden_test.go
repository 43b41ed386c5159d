package api

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io"
	"math"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"

	"mlservice/internal/schematest"
	"mlservice/schemas"
	"mlservice/serve/decision"
	"mlservice/serve/metrics"
	"mlservice/serve/models"
	"mlservice/serve/rollout"
	"mlservice/serve/routing"
)

// Golden contracts for what the server writes (as Caddy's adapt tests do):
// testdata/golden/<case>.json is a request, <case>.want.json the reply it
// must get, byte for byte once indented. `go test ./serve/api -run Golden
// -update` rewrites the want files; review the diff. Every reply is also
// validated against its published JSON Schema.

var update = flag.Bool("update", false, "rewrite the golden want files from the server's replies")

// goldenRequest is one case's request.
type goldenRequest struct {
	Method  string            `json:"method"`
	Path    string            `json:"path"`
	Headers map[string]string `json:"headers,omitempty"`
	// Body is the raw body (not necessarily JSON).
	Body string `json:"body,omitempty"`
	// Server picks the server: "" (a champion 1 and a 50% challenger 2),
	// "not-ready" (no table) or "busy" (every batch slot taken).
	Server string `json:"server,omitempty"`
}

// goldenReply is what a case's reply must be.
type goldenReply struct {
	Status  int               `json:"status"`
	Headers map[string]string `json:"headers,omitempty"`
	Body    json.RawMessage   `json:"body"`
}

// goldenScorer scores income/(income+50,000), approves above 0.5, and gives
// NaN for an income of 666 (a model output that is not finite).
type goldenScorer struct{}

func (goldenScorer) Columns() int { return 5 }
func (goldenScorer) Score(x, probs []float32, approve []bool) error {
	for i := range probs {
		income := x[i*5]
		probs[i] = income / (income + 50000)
		if income == 666 {
			probs[i] = float32(math.NaN())
		}
		approve[i] = probs[i] > 0.5
	}
	return nil
}
func (goldenScorer) Close() error { return nil }

const (
	goldenSHA1 = "1111111111111111111111111111111111111111111111111111111111111111"
	goldenSHA2 = "2222222222222222222222222222222222222222222222222222222222222222"
)

// goldenServer is the API over fakes with deterministic decision ids, a
// fixed clock and the given state.
func goldenServer(t *testing.T, state string) *fiber.App {
	t.Helper()
	router := &routing.Router{}
	if state != "not-ready" {
		m := metrics.New(prometheus.NewRegistry())
		route := func(v routing.Variant, version, sha string) *routing.Route {
			return &routing.Route{Variant: v, Version: models.NewVersion("loan-approval", version, sha, "artifacts", allFeatures, goldenScorer{}),
				Metrics: m.ForVersion("loan-approval", version, string(v))}
		}
		tab, err := routing.NewTable("loan-approval", route(routing.Champion, "1", goldenSHA1), route(routing.Challenger, "2", goldenSHA2), nil,
			routing.Weights{Champion: 50, Challenger: 50})
		if err != nil {
			t.Fatal(err)
		}
		router.Publish(tab)
	}
	var n atomic.Int64
	path := decision.New(decision.Config{Router: router,
		NewIDs: func(ids []string, _ time.Time) {
			for i := range ids {
				ids[i] = fmt.Sprintf("00000000-0000-7000-8000-%012d", n.Add(1))
			}
		},
		Now: func() time.Time { return time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC) }})
	cfg := Config{Model: "loan-approval", PredictBodyLimit: 1024, BodyLimit: 64 << 10}
	if state == "busy" {
		cfg.BatchConcurrency, cfg.BatchQueue = 1, -1
	}
	app, srv, err := New(cfg, Deps{Decisions: path, Router: router, Registry: prometheus.NewRegistry(),
		Status: func() rollout.Status { return rollout.Status{Ready: state != "not-ready", Source: "artifacts"} }})
	if err != nil {
		t.Fatal(err)
	}
	if state == "busy" {
		if _, ok := srv.batches.admit(); !ok { // the one slot, never given back
			t.Fatal("no slot")
		}
	}
	return app
}

func TestGolden(t *testing.T) {
	cases, err := filepath.Glob(filepath.Join("testdata", "golden", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	cases = slices.DeleteFunc(cases, func(p string) bool { return strings.HasSuffix(p, ".want.json") })
	if len(cases) < 10 {
		t.Fatalf("only %d golden cases", len(cases))
	}
	v := newReplyValidator(t)
	for _, file := range cases {
		name := strings.TrimSuffix(filepath.Base(file), ".json")
		t.Run(name, func(t *testing.T) {
			raw, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			var in goldenRequest
			dec := json.NewDecoder(bytes.NewReader(raw))
			dec.DisallowUnknownFields()
			if err := dec.Decode(&in); err != nil {
				t.Fatalf("%s: %v", file, err)
			}
			app := goldenServer(t, in.Server)
			req := httptest.NewRequest(in.Method, in.Path, strings.NewReader(in.Body))
			if _, ok := in.Headers["X-Request-ID"]; !ok {
				req.Header.Set("X-Request-ID", "golden-"+name)
			}
			for k, val := range in.Headers {
				req.Header.Set(k, val)
			}
			resp, err := app.Test(req, -1)
			if err != nil {
				t.Fatal(err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			v.check(t, in.Method, in.Path, resp.StatusCode, resp.Header.Get("Content-Type"), body)
			got := goldenReply{Status: resp.StatusCode, Headers: map[string]string{"Content-Type": resp.Header.Get("Content-Type")}}
			for _, h := range []string{"Retry-After", "WWW-Authenticate"} {
				if val := resp.Header.Get(h); val != "" {
					got.Headers[h] = val
				}
			}
			got.Body = body
			if !json.Valid(body) {
				t.Fatalf("reply is not JSON: %s", body)
			}
			gotRaw := indent(t, got)
			wantFile := strings.TrimSuffix(file, ".json") + ".want.json"
			if *update {
				if err := os.WriteFile(wantFile, gotRaw, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(wantFile)
			if err != nil {
				t.Fatalf("%v (run with -update to write it)", err)
			}
			if !bytes.Equal(gotRaw, want) {
				t.Fatalf("reply differs from %s (run with -update and review the diff)\ngot:\n%s\nwant:\n%s", wantFile, gotRaw, want)
			}
		})
	}
}

func indent(t *testing.T, r goldenReply) []byte {
	t.Helper()
	raw, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, raw, "", "  "); err != nil {
		t.Fatal(err)
	}
	buf.WriteByte('\n')
	return buf.Bytes()
}

// replyValidator validates replies against the published contract (the
// components /openapi.json builds from the JSON Schema files).
type replyValidator struct{ contract *schematest.Contract }

func newReplyValidator(t testing.TB) *replyValidator {
	t.Helper()
	return &replyValidator{contract: schematest.OpenAPI(t)}
}

// component names the schema a reply must satisfy: the decision routes'
// 200s their own, every error the Error shape. Other 200s have none.
func component(method, path string, status int) string {
	switch {
	case status >= 400:
		return "Error"
	case method == "POST" && path == "/v1/predict":
		return "Decision"
	case method == "POST" && path == "/v1/predict/batch":
		return "BatchResponse"
	}
	return ""
}

func (v *replyValidator) check(t testing.TB, method, path string, status int, contentType string, body []byte) {
	t.Helper()
	name := component(method, path, status)
	if name == "" {
		return
	}
	if !strings.HasPrefix(contentType, "application/json") {
		t.Fatalf("%s %s %d: Content-Type %q", method, path, status, contentType)
	}
	if err := v.contract.Validate(name, body); err != nil {
		t.Fatalf("%s %s %d: the reply does not satisfy the %s schema: %v\n%s", method, path, status, name, err, body)
	}
}

// TestErrorCodesAreTheSchemaEnum ties the Code* constants of errors.go to the
// error schema's enum, both ways: a code the server can write is published,
// and the schema lists no code nobody writes.
func TestErrorCodesAreTheSchemaEnum(t *testing.T) {
	fset := token.NewFileSet()
	f, err := parser.ParseFile(fset, "errors.go", nil, 0)
	if err != nil {
		t.Fatal(err)
	}
	var codes []string
	ast.Inspect(f, func(n ast.Node) bool {
		spec, ok := n.(*ast.ValueSpec)
		if !ok {
			return true
		}
		for i, name := range spec.Names {
			if strings.HasPrefix(name.Name, "Code") && i < len(spec.Values) {
				if lit, ok := spec.Values[i].(*ast.BasicLit); ok && lit.Kind == token.STRING {
					s, _ := strconv.Unquote(lit.Value)
					codes = append(codes, s)
				}
			}
		}
		return true
	})
	raw, err := schemas.Schema("Error")
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Properties struct {
			Error struct {
				Properties struct {
					Code struct {
						Enum []string `json:"enum"`
					} `json:"code"`
				} `json:"properties"`
			} `json:"error"`
		} `json:"properties"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	enum := doc.Properties.Error.Properties.Code.Enum
	sort.Strings(codes)
	sort.Strings(enum)
	if len(codes) < 12 || strings.Join(codes, ",") != strings.Join(enum, ",") {
		t.Fatalf("error codes in errors.go:\n  %v\nin error.schema.json's enum:\n  %v", codes, enum)
	}
}
