package api

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"

	"mlservice/schemas"
	"mlservice/serve/decision"
	"mlservice/serve/metrics"
	"mlservice/serve/models"
	"mlservice/serve/rollout"
	"mlservice/serve/routing"
)

// fakeScorer approves when the first feature (income) is above 50,000 and
// reports that as the probability income/100,000. It counts its runs.
type fakeScorer struct {
	columns int
	runs    atomic.Int64
	closed  atomic.Bool
}

func (f *fakeScorer) Columns() int { return f.columns }

func (f *fakeScorer) Score(x []float32, probs []float32, approve []bool) error {
	f.runs.Add(1)
	for i := range probs {
		probs[i] = x[i*f.columns] / 100000
		approve[i] = probs[i] > 0.5
	}
	return nil
}

func (f *fakeScorer) Close() error { f.closed.Store(true); return nil }

var allFeatures = []schemas.Feature{schemas.Income, schemas.CreditScore, schemas.LoanAmount, schemas.YearsEmployed, schemas.Points}

type testServer struct {
	app        *fiber.App
	router     *routing.Router
	registry   *prometheus.Registry
	champion   *fakeScorer
	challenger *fakeScorer
	ready      atomic.Bool
}

func newTestServer(t *testing.T, cfg Config) *testServer {
	t.Helper()
	ts := &testServer{router: &routing.Router{}, registry: prometheus.NewRegistry(),
		champion: &fakeScorer{columns: 5}, challenger: &fakeScorer{columns: 5}}
	ts.ready.Store(true)
	app, _, err := New(cfg, Deps{
		Decisions: decision.New(decision.Config{Router: ts.router}),
		Router:    ts.router,
		Registry:  ts.registry,
		Status: func() rollout.Status {
			if !ts.ready.Load() {
				return rollout.Status{Reason: "starting: no champion loaded yet"}
			}
			return rollout.Status{Ready: true, Source: "artifacts"}
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	ts.app = app
	return ts
}

// publish puts a champion (version "1") and optionally a challenger ("2") live.
func (ts *testServer) publish(t *testing.T, challengerWeight int) {
	t.Helper()
	m := metrics.New(prometheus.NewRegistry())
	champ := &routing.Route{Variant: routing.Champion,
		Version: models.NewVersion("loan-approval", "1", strings.Repeat("a", 64), "artifacts", allFeatures, ts.champion),
		Metrics: m.ForVersion("loan-approval", "1", "champion")}
	var chall *routing.Route
	if challengerWeight > 0 {
		chall = &routing.Route{Variant: routing.Challenger,
			Version: models.NewVersion("loan-approval", "2", strings.Repeat("b", 64), "artifacts", allFeatures, ts.challenger),
			Metrics: m.ForVersion("loan-approval", "2", "challenger")}
	}
	table, err := routing.NewTable("loan-approval", champ, chall, nil,
		routing.Weights{Champion: 100 - challengerWeight, Challenger: challengerWeight})
	if err != nil {
		t.Fatal(err)
	}
	ts.router.Publish(table)
}

func (ts *testServer) do(t *testing.T, method, path, contentType, body string, headers ...string) (*http.Response, map[string]any) {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := ts.app.Test(req, -1)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	// Every reply satisfies its published schema.
	newReplyValidator(t).check(t, method, path, resp.StatusCode, resp.Header.Get("Content-Type"), raw)
	var out map[string]any
	if len(raw) > 0 && strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		if err := json.Unmarshal(raw, &out); err != nil {
			t.Fatalf("%s %s: response is not JSON: %v: %s", method, path, err, raw)
		}
	}
	return resp, out
}

// get returns the status and raw body of a GET.
func (ts *testServer) get(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := ts.app.Test(httptest.NewRequest("GET", path, nil), -1)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(raw)
}

const goodApplication = `{"application_id":"A-1001","income":60000,"credit_score":700,"loan_amount":20000,"years_employed":5,"points":60}`

func TestPredict(t *testing.T) {
	ts := newTestServer(t, Config{Model: "loan-approval"})
	ts.publish(t, 0)
	resp, body := ts.do(t, "POST", "/v1/predict", "application/json", goodApplication, "X-Request-ID", "legacy-42")
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %v", resp.StatusCode, body)
	}
	if body["application_id"] != "A-1001" || body["approve"] != true || body["probability"].(float64) != 0.6 {
		t.Fatalf("wrong decision: %v", body)
	}
	model := body["model"].(map[string]any)
	if model["name"] != "loan-approval" || model["version"] != "1" || model["variant"] != "champion" {
		t.Fatalf("wrong model: %v", model)
	}
	if body["request_id"] != "legacy-42" || resp.Header.Get("X-Request-ID") != "legacy-42" {
		t.Fatalf("request id not echoed: %v / %q", body["request_id"], resp.Header.Get("X-Request-ID"))
	}
	// An unusable incoming id is replaced, not echoed.
	resp, body = ts.do(t, "POST", "/v1/predict", "application/json; charset=utf-8", goodApplication, "X-Request-ID", "bad id with spaces")
	if resp.StatusCode != 200 || body["request_id"] == "" || strings.Contains(body["request_id"].(string), " ") {
		t.Fatalf("status %d, request id %v", resp.StatusCode, body["request_id"])
	}
}

func TestPredictErrors(t *testing.T) {
	ts := newTestServer(t, Config{Model: "loan-approval", PredictBodyLimit: 1024, BodyLimit: 4096})
	ts.publish(t, 0)
	tests := []struct {
		name, method, path, contentType, body string
		status                                int
		code                                  string
		fields                                []string
	}{
		{"malformed json", "POST", "/v1/predict", "application/json", `{"income":`, 400, CodeMalformedJSON, nil},
		{"empty body", "POST", "/v1/predict", "application/json", ``, 400, CodeMalformedJSON, nil},
		{"wrong content type", "POST", "/v1/predict", "text/plain", goodApplication, 415, CodeUnsupportedMediaType, nil},
		{"no content type", "POST", "/v1/predict", "", goodApplication, 415, CodeUnsupportedMediaType, nil},
		{"json lookalike type", "POST", "/v1/predict", "application/jsonp", goodApplication, 415, CodeUnsupportedMediaType, nil},
		{"over the predict limit", "POST", "/v1/predict", "application/json", `{"application_id":"` + strings.Repeat("x", 2000) + `"}`, 413, CodeBodyTooLarge, nil},
		{"invalid fields", "POST", "/v1/predict", "application/json", `{"income":-5,"credit_score":"700","loan_amount":1,"years_employed":1,"colour":"red"}`,
			422, CodeValidationFailed, []string{"income", "credit_score", "points", "colour"}},
		{"wrong types", "POST", "/v1/predict", "application/json", `{"income":true,"credit_score":[],"loan_amount":{},"years_employed":null,"points":"1"}`,
			422, CodeValidationFailed, []string{"income", "credit_score", "loan_amount", "years_employed", "points"}},
		{"not an object", "POST", "/v1/predict", "application/json", `"hello"`, 422, CodeValidationFailed, []string{""}},
		{"unknown route", "GET", "/v9/predict", "", "", 404, CodeNotFound, nil},
		{"wrong method", "GET", "/v1/predict", "", "", 405, CodeMethodNotAllowed, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp, body := ts.do(t, tc.method, tc.path, tc.contentType, tc.body)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %v", resp.StatusCode, tc.status, body)
			}
			e, ok := body["error"].(map[string]any)
			if !ok {
				t.Fatalf("no error object: %v", body)
			}
			if e["code"] != tc.code || e["message"] == "" || body["request_id"] == "" {
				t.Fatalf("error %v, want code %s", body, tc.code)
			}
			fields, _ := e["fields"].(map[string]any)
			for _, f := range tc.fields {
				if _, ok := fields[f]; !ok {
					t.Errorf("field %q not named: %v", f, fields)
				}
			}
		})
	}
}

func TestNotReady(t *testing.T) {
	ts := newTestServer(t, Config{})
	ts.ready.Store(false)
	resp, body := ts.do(t, "GET", "/ready", "", "")
	if resp.StatusCode != 503 || !strings.Contains(body["error"].(map[string]any)["message"].(string), "no champion") {
		t.Fatalf("/ready: %d %v", resp.StatusCode, body)
	}
	resp, _ = ts.do(t, "POST", "/v1/predict", "application/json", goodApplication)
	if resp.StatusCode != 503 {
		t.Fatalf("predict before a champion: %d", resp.StatusCode)
	}
	resp, _ = ts.do(t, "GET", "/health", "", "")
	if resp.StatusCode != 200 {
		t.Fatalf("/health: %d", resp.StatusCode)
	}
	ts.publish(t, 0)
	ts.ready.Store(true)
	resp, body = ts.do(t, "GET", "/ready", "", "")
	if resp.StatusCode != 200 || body["champion"].(map[string]any)["version"] != "1" {
		t.Fatalf("/ready after publish: %d %v", resp.StatusCode, body)
	}
}

func TestBatch(t *testing.T) {
	ts := newTestServer(t, Config{Model: "loan-approval"})
	ts.publish(t, 50)
	var b strings.Builder
	b.WriteString(`{"applications":[`)
	const n = 200
	for i := range n {
		if i > 0 {
			b.WriteString(",")
		}
		if i%10 == 3 {
			b.WriteString(`{"application_id":"bad-` + itoa(i) + `","income":-1,"credit_score":700,"loan_amount":1,"years_employed":1,"points":1}`)
			continue
		}
		b.WriteString(`{"application_id":"A-` + itoa(i) + `","income":` + itoa(500*(i+1)) + `,"credit_score":700,"loan_amount":1,"years_employed":1,"points":1}`)
	}
	b.WriteString("]}")
	resp, body := ts.do(t, "POST", "/v1/predict/batch", "application/json", b.String())
	if resp.StatusCode != 200 {
		t.Fatalf("status %d: %v", resp.StatusCode, body)
	}
	results := body["results"].([]any)
	if len(results) != n || body["accepted"].(float64) != 180 || body["rejected"].(float64) != 20 {
		t.Fatalf("%d results, accepted %v, rejected %v", len(results), body["accepted"], body["rejected"])
	}
	variants := map[string]int{}
	for i, r := range results {
		item := r.(map[string]any)
		if int(item["index"].(float64)) != i {
			t.Fatalf("result %d has index %v: out of order", i, item["index"])
		}
		if i%10 == 3 {
			if item["error"].(map[string]any)["fields"].(map[string]any)["income"] == nil || item["application_id"] != "bad-"+itoa(i) {
				t.Fatalf("item %d: want its own income error: %v", i, item)
			}
			continue
		}
		if item["application_id"] != "A-"+itoa(i) || float32(item["probability"].(float64)) != float32(500*(i+1))/100000 {
			t.Fatalf("item %d decided wrongly: %v", i, item)
		}
		model := item["model"].(map[string]any)
		variants[model["variant"].(string)]++
		if want := map[string]string{"champion": "1", "challenger": "2"}[model["variant"].(string)]; model["version"] != want {
			t.Fatalf("item %d: variant %v with version %v", i, model["variant"], model["version"])
		}
	}
	if variants["champion"] == 0 || variants["challenger"] == 0 {
		t.Fatalf("a 50/50 split used one variant only: %v", variants)
	}
	if ts.champion.runs.Load() != 1 || ts.challenger.runs.Load() != 1 {
		t.Fatalf("want one model run per variant, got champion %d, challenger %d", ts.champion.runs.Load(), ts.challenger.runs.Load())
	}
}

func TestStickyRouting(t *testing.T) {
	ts := newTestServer(t, Config{Model: "loan-approval"})
	ts.publish(t, 10)
	for i := range 50 {
		id := "APP-" + itoa(i)
		var first string
		for range 3 {
			_, body := ts.do(t, "POST", "/v1/predict", "application/json",
				`{"application_id":"`+id+`","income":60000,"credit_score":700,"loan_amount":20000,"years_employed":5,"points":60}`)
			v := body["model"].(map[string]any)["variant"].(string)
			if first == "" {
				first = v
			} else if v != first {
				t.Fatalf("%s went to %s, then %s", id, first, v)
			}
		}
	}
}

func TestMetricsCountClientErrorsAsClientErrors(t *testing.T) {
	ts := newTestServer(t, Config{Model: "loan-approval"})
	ts.publish(t, 0)
	ts.do(t, "POST", "/v1/predict", "application/json", `{"income":-1}`)
	ts.do(t, "POST", "/v1/predict", "application/json", goodApplication)
	_, text := ts.get(t, "/metrics")
	for _, want := range []string{
		`http_requests_total{method="POST",path="/v1/predict",service="mlservice",status_code="422"} 1`,
		`http_requests_total{method="POST",path="/v1/predict",service="mlservice",status_code="200"} 1`,
	} {
		if !strings.Contains(text, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestContractAndDocs(t *testing.T) {
	ts := newTestServer(t, Config{})
	resp, body := ts.do(t, "GET", "/openapi.json", "", "")
	if resp.StatusCode != 200 || body["openapi"] != "3.1.0" {
		t.Fatalf("/openapi.json: %d", resp.StatusCode)
	}
	status, page := ts.get(t, "/docs")
	if status != 200 || !strings.Contains(page, "/docs/swagger-ui-bundle.js") || strings.Contains(page, "https://") {
		t.Fatalf("/docs must be Swagger UI with no external assets: %d %s", status, page)
	}
	if status, js := ts.get(t, "/docs/docs.js"); status != 200 || !strings.Contains(js, `url: "/openapi.json"`) {
		t.Fatalf("/docs/docs.js must point Swagger UI at /openapi.json: %d %s", status, js)
	}
	resp, body = ts.do(t, "GET", "/", "", "")
	if resp.StatusCode != 200 || body["service"] != "mlservice" {
		t.Fatalf("/: %d %v", resp.StatusCode, body)
	}
}

func TestConcurrentPredictions(t *testing.T) {
	ts := newTestServer(t, Config{Model: "loan-approval"})
	ts.publish(t, 30)
	var wg sync.WaitGroup
	var failures atomic.Int64
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				req := httptest.NewRequest("POST", "/v1/predict", strings.NewReader(
					`{"application_id":"C-`+itoa(g*1000+i)+`","income":70000,"credit_score":700,"loan_amount":1,"years_employed":1,"points":1}`))
				req.Header.Set("Content-Type", "application/json")
				resp, err := ts.app.Test(req, -1)
				if err != nil || resp.StatusCode != 200 {
					failures.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if failures.Load() != 0 {
		t.Fatalf("%d requests failed", failures.Load())
	}
}

func itoa(i int) string { return string(appendInt(nil, i)) }
