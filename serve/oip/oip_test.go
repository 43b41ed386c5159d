package oip_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"

	"mlservice/schemas"
	"mlservice/serve/api"
	"mlservice/serve/decision"
	"mlservice/serve/metrics"
	"mlservice/serve/models"
	"mlservice/serve/oip"
	"mlservice/serve/rollout"
	"mlservice/serve/routing"
)

// fakeScorer scores probability = income/100,000 and approves above 0.5; it
// describes its tensors as an ONNX session would. With contrib set it also
// has one contribution output (the fake has no contributions to give).
type fakeScorer struct {
	columns int
	input   string
	contrib bool
	runs    atomic.Int64
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

func (f *fakeScorer) Close() error { return nil }

func (f *fakeScorer) Tensors() (in, out []models.TensorInfo) {
	in = []models.TensorInfo{{Name: f.input, DataType: "FP32", Shape: []int64{-1, int64(f.columns)}}}
	out = []models.TensorInfo{{Name: "label", DataType: "INT64", Shape: []int64{-1}},
		{Name: "probability", DataType: "FP32", Shape: []int64{-1}}}
	if f.contrib {
		out = append(out, models.TensorInfo{Name: "contrib_income", DataType: "FP32", Shape: []int64{-1}})
	}
	return in, out
}

var signature = []schemas.Feature{schemas.Income, schemas.CreditScore, schemas.LoanAmount, schemas.YearsEmployed}

type testServer struct {
	app    *fiber.App
	router *routing.Router
	api    *api.Server
	ready  atomic.Bool
}

func newTestServer(t testing.TB) *testServer {
	t.Helper()
	ts := &testServer{router: &routing.Router{}}
	ts.ready.Store(true)
	status := func() rollout.Status {
		if !ts.ready.Load() {
			return rollout.Status{Reason: "starting"}
		}
		return rollout.Status{Ready: true, Source: "artifacts"}
	}
	app, srv, err := api.New(api.Config{Model: "loan-approval"}, api.Deps{
		Decisions: decision.New(decision.Config{Router: ts.router}), Router: ts.router, Registry: prometheus.NewRegistry(), Status: status,
		Mount: []func(fiber.Router){func(r fiber.Router) {
			oip.Mount(r, oip.Config{ServerVersion: "test", BodyLimit: 1 << 20,
				Models: []oip.Model{{Name: "loan-approval", Router: ts.router,
					Ready: func() (bool, string) {
						st := status()
						return st.Ready && ts.router.Current() != nil, st.Reason
					},
					Decider: &oip.Path{Decisions: decision.New(decision.Config{Router: ts.router})}}},
				Draining: func() bool { return ts.api != nil && ts.api.Draining() },
			})
		}},
	})
	if err != nil {
		t.Fatal(err)
	}
	ts.app, ts.api = app, srv
	return ts
}

// publish puts champion version "2" live and, with a weight, challenger "1".
func (ts *testServer) publish(t testing.TB, challengerWeight int) {
	t.Helper()
	m := metrics.New(prometheus.NewRegistry())
	champ := &routing.Route{Variant: routing.Champion,
		Version: models.NewVersion("loan-approval", "2", "aa", "artifacts", signature, &fakeScorer{columns: 4, input: "features", contrib: true}),
		Metrics: m.ForVersion("loan-approval", "2", "champion")}
	var chall *routing.Route
	if challengerWeight > 0 {
		chall = &routing.Route{Variant: routing.Challenger,
			Version: models.NewVersion("loan-approval", "1", "bb", "artifacts", signature, &fakeScorer{columns: 4, input: "float_input"}),
			Metrics: m.ForVersion("loan-approval", "1", "challenger")}
	}
	table, err := routing.NewTable("loan-approval", champ, chall, nil,
		routing.Weights{Champion: 100 - challengerWeight, Challenger: challengerWeight})
	if err != nil {
		t.Fatal(err)
	}
	ts.router.Publish(table)
}

type response struct {
	status int
	header http.Header
	raw    []byte
	json   map[string]any
}

func (ts *testServer) do(t testing.TB, method, path string, body []byte, headers ...string) response {
	t.Helper()
	req := httptest.NewRequest(method, path, bytes.NewReader(body))
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := ts.app.Test(req, -1)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	r := response{status: resp.StatusCode, header: resp.Header, raw: raw}
	jsonPart := raw
	if h := resp.Header.Get("Inference-Header-Content-Length"); h != "" {
		n, err := strconv.Atoi(h)
		if err != nil || n > len(raw) {
			t.Fatalf("%s %s: bad Inference-Header-Content-Length %q for %d bytes", method, path, h, len(raw))
		}
		jsonPart = raw[:n]
	}
	if err := json.Unmarshal(jsonPart, &r.json); err != nil {
		t.Fatalf("%s %s: %d, not JSON: %v: %q", method, path, resp.StatusCode, err, raw)
	}
	if r.status != 200 {
		// Every non-200 under /v2 is exactly {"error": "<message>"}.
		msg, ok := r.json["error"].(string)
		if !ok || msg == "" || len(r.json) != 1 {
			t.Fatalf("%s %s: %d with body %s, want {\"error\": \"...\"}", method, path, r.status, raw)
		}
	}
	return r
}

func outputs(t testing.TB, r response) map[string]map[string]any {
	t.Helper()
	list, _ := r.json["outputs"].([]any)
	out := map[string]map[string]any{}
	for _, o := range list {
		m := o.(map[string]any)
		out[m["name"].(string)] = m
	}
	return out
}

const row1 = `[60000, 700, 20000, 5]`

func TestHealthAndMetadata(t *testing.T) {
	ts := newTestServer(t)
	if r := ts.do(t, "GET", "/v2/health/live", nil); r.status != 200 || r.json["live"] != true {
		t.Fatalf("live: %d %s", r.status, r.raw)
	}
	// No champion yet: not ready, metadata says why.
	if r := ts.do(t, "GET", "/v2/health/ready", nil); r.status != 503 {
		t.Fatalf("ready before a champion: %d %s", r.status, r.raw)
	}
	if r := ts.do(t, "GET", "/v2/models/loan-approval/ready", nil); r.status != 503 {
		t.Fatalf("model ready before a champion: %d %s", r.status, r.raw)
	}
	if r := ts.do(t, "POST", "/v2/models/loan-approval/infer", []byte(`{"inputs":[{"name":"features","shape":[1,4],"datatype":"FP32","data":`+row1+`}]}`)); r.status != 503 {
		t.Fatalf("infer before a champion: %d %s", r.status, r.raw)
	}
	ts.publish(t, 10)
	if r := ts.do(t, "GET", "/v2/health/ready", nil); r.status != 200 || r.json["ready"] != true {
		t.Fatalf("ready: %d %s", r.status, r.raw)
	}
	r := ts.do(t, "GET", "/v2", nil)
	if r.status != 200 || r.json["name"] != "mlservice" || r.json["version"] != "test" {
		t.Fatalf("server metadata: %d %s", r.status, r.raw)
	}
	if ext, _ := r.json["extensions"].([]any); len(ext) != 1 || ext[0] != "binary_tensor_data" {
		t.Fatalf("extensions: %s", r.raw)
	}
	cases := []struct {
		path, want string
	}{
		{"/v2/models/loan-approval", `{"name":"loan-approval","versions":["2","1"],"platform":"onnx_onnxv1","inputs":[{"name":"features","datatype":"FP32","shape":[-1,4]}],"outputs":[{"name":"label","datatype":"INT64","shape":[-1]},{"name":"probability","datatype":"FP32","shape":[-1]},{"name":"contrib_income","datatype":"FP32","shape":[-1]}]}`},
		{"/v2/models/loan-approval/versions/1", `{"name":"loan-approval","versions":["2","1"],"platform":"onnx_onnxv1","inputs":[{"name":"float_input","datatype":"FP32","shape":[-1,4]}],"outputs":[{"name":"label","datatype":"INT64","shape":[-1]},{"name":"probability","datatype":"FP32","shape":[-1]}]}`},
		{"/v2/models/loan-approval/ready", `{"name":"loan-approval","ready":true}`},
		{"/v2/models/loan-approval/versions/2/ready", `{"name":"loan-approval","ready":true}`},
	}
	for _, c := range cases {
		t.Run(c.path, func(t *testing.T) {
			r := ts.do(t, "GET", c.path, nil)
			if r.status != 200 || string(r.raw) != c.want {
				t.Fatalf("%d %s\nwant %s", r.status, r.raw, c.want)
			}
		})
	}
	for _, path := range []string{"/v2/models/nope", "/v2/models/nope/ready", "/v2/models/loan-approval/versions/7",
		"/v2/models/loan-approval/versions/7/ready", "/v2/nothing-here"} {
		if r := ts.do(t, "GET", path, nil); r.status != 404 {
			t.Errorf("%s: %d %s, want 404", path, r.status, r.raw)
		}
	}
	if r := ts.do(t, "GET", "/v2/models/loan-approval/infer", nil); r.status != 405 {
		t.Errorf("GET infer: %d %s, want 405", r.status, r.raw)
	}
	ts.api.Drain()
	if r := ts.do(t, "GET", "/v2/health/ready", nil); r.status != 503 {
		t.Fatalf("ready while draining: %d %s", r.status, r.raw)
	}
}

func TestInferJSON(t *testing.T) {
	ts := newTestServer(t)
	ts.publish(t, 0)
	// Four applications; the fake's probability is income/100,000.
	matrix := `[[60000,700,20000,5],[30000,650,10000,2],[90000,800,50000,10],[51000,300,1000,0]]`
	flat := `[60000,700,20000,5,30000,650,10000,2,90000,800,50000,10,51000,300,1000,0]`
	want := []float64{0.6, 0.3, 0.9, 0.51}
	columns := `{"name":"income","shape":[4],"datatype":"FP64","data":[60000,30000,90000,51000]},` +
		`{"name":"credit_score","shape":[4,1],"datatype":"INT64","data":[[700],[650],[800],[300]]},` +
		`{"name":"loan_amount","shape":[4],"datatype":"FP32","data":[20000,10000,50000,1000]},` +
		`{"name":"years_employed","shape":[4],"datatype":"INT32","data":[5,2,10,0]}`
	cases := []struct {
		name, body string
		outputs    []string
	}{
		{"nested", `{"inputs":[{"name":"features","shape":[4,4],"datatype":"FP32","data":` + matrix + `}]}`, []string{"label", "probability"}},
		{"flat", `{"inputs":[{"name":"features","shape":[4,4],"datatype":"FP32","data":` + flat + `}]}`, []string{"label", "probability"}},
		{"columns", `{"inputs":[` + columns + `]}`, []string{"label", "probability"}},
		{"requested output", `{"inputs":[` + columns + `],"outputs":[{"name":"probability"}]}`, []string{"probability"}},
		{"unknown parameters ignored", `{"parameters":{"foo":1,"bar":"x"},"extra":true,"inputs":[{"name":"features","shape":[4,4],"datatype":"FP32","parameters":{"baz":false},"data":` + flat + `}],"outputs":[{"name":"label","parameters":{"qux":3}},{"name":"probability"}]}`, []string{"label", "probability"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// No Content-Type (tritonclient sends none) and a wrong one: both fine.
			for _, ct := range []string{"", "text/plain"} {
				r := ts.do(t, "POST", "/v2/models/loan-approval/infer", []byte(c.body), "Content-Type", ct)
				if r.status != 200 {
					t.Fatalf("%d %s", r.status, r.raw)
				}
				if r.json["model_name"] != "loan-approval" || r.json["model_version"] != "2" {
					t.Fatalf("model: %s", r.raw)
				}
				if _, has := r.json["id"]; has {
					t.Fatalf("id without one in the request: %s", r.raw)
				}
				outs := outputs(t, r)
				if len(outs) != len(c.outputs) {
					t.Fatalf("outputs %v, want %v: %s", outs, c.outputs, r.raw)
				}
				if p, ok := outs["probability"]; ok {
					data := p["data"].([]any)
					for i, w := range want {
						if math.Abs(data[i].(float64)-w) > 1e-6 {
							t.Fatalf("probability[%d] = %v, want %v", i, data[i], w)
						}
					}
					if p["datatype"] != "FP32" || p["shape"].([]any)[0] != 4.0 {
						t.Fatalf("probability tensor: %v", p)
					}
				}
				if l, ok := outs["label"]; ok {
					if got, _ := json.Marshal(l["data"]); string(got) != "[1,0,1,1]" || l["datatype"] != "INT64" {
						t.Fatalf("label: %v", l)
					}
				}
			}
		})
	}
	t.Run("id echoed", func(t *testing.T) {
		r := ts.do(t, "POST", "/v2/models/loan-approval/infer", []byte(`{"id":"req-\"42\"","inputs":[{"name":"features","shape":[1,4],"datatype":"FP32","data":`+row1+`}]}`))
		if r.status != 200 || r.json["id"] != `req-"42"` {
			t.Fatalf("%d %s", r.status, r.raw)
		}
		// One row: the record's decision id, which is also the application
		// id of a row sent without one.
		params, _ := r.json["parameters"].(map[string]any)
		if params["variant"] != "champion" || params["decision_id"] == "" || params["decision_id"] == nil || params["application_id"] != params["decision_id"] {
			t.Fatalf("parameters %v", params)
		}
	})
	t.Run("application id echoed", func(t *testing.T) {
		r := ts.do(t, "POST", "/v2/models/loan-approval/infer", []byte(`{"parameters":{"application_id":"A-77"},"inputs":[{"name":"features","shape":[1,4],"datatype":"FP32","data":`+row1+`}]}`))
		if params, _ := r.json["parameters"].(map[string]any); r.status != 200 || params["application_id"] != "A-77" {
			t.Fatalf("%d %s", r.status, r.raw)
		}
	})
}

func TestInferRouting(t *testing.T) {
	ts := newTestServer(t)
	ts.publish(t, 50)
	body := func(appID string) []byte {
		params := ""
		if appID != "" {
			params = `"parameters":{"application_id":"` + appID + `"},`
		}
		return []byte(`{` + params + `"inputs":[{"name":"features","shape":[1,4],"datatype":"FP32","data":` + row1 + `}]}`)
	}
	// With an application id the variant is the one /v1/predict picks.
	for i := range 20 {
		id := "A-" + strconv.Itoa(i)
		want := "2"
		if routing.Bucket(id) < 50 {
			want = "1"
		}
		r := ts.do(t, "POST", "/v2/models/loan-approval/infer", body(id))
		if r.status != 200 || r.json["model_version"] != want {
			t.Fatalf("%s: %d %s, want version %s", id, r.status, r.raw, want)
		}
	}
	// Without one, both versions answer over many requests.
	seen := map[any]int{}
	for range 60 {
		r := ts.do(t, "POST", "/v2/models/loan-approval/infer", body(""))
		seen[r.json["model_version"]]++
	}
	if seen["1"] == 0 || seen["2"] == 0 {
		t.Fatalf("versions over 60 requests: %v", seen)
	}
	// A version in the path: that version answers, whatever the id says.
	for _, v := range []string{"1", "2"} {
		for i := range 5 {
			b := body("A-" + strconv.Itoa(i))
			if v == "1" { // version 1's graph names its input float_input
				b = bytes.Replace(b, []byte(`"features"`), []byte(`"float_input"`), 1)
			}
			r := ts.do(t, "POST", "/v2/models/loan-approval/versions/"+v+"/infer", b)
			if r.status != 200 || r.json["model_version"] != v {
				t.Fatalf("version %s: %d %s", v, r.status, r.raw)
			}
		}
	}
	// A pinned version takes its own input name (what its metadata says).
	r := ts.do(t, "POST", "/v2/models/loan-approval/versions/1/infer", body(""))
	if r.status != 400 || !strings.Contains(r.json["error"].(string), `"float_input"`) {
		t.Fatalf("version 1 by the champion's input name: %d %s", r.status, r.raw)
	}
	if r := ts.do(t, "POST", "/v2/models/loan-approval/versions/3/infer", body("")); r.status != 404 {
		t.Fatalf("unknown version: %d %s", r.status, r.raw)
	}
	// Retired: the challenger goes away, its version is 404.
	ts.publish(t, 0)
	if r := ts.do(t, "POST", "/v2/models/loan-approval/versions/1/infer", body("")); r.status != 404 {
		t.Fatalf("retired version: %d %s", r.status, r.raw)
	}
	if r := ts.do(t, "POST", "/v2/models/other/infer", body("")); r.status != 404 {
		t.Fatalf("unknown model: %d %s", r.status, r.raw)
	}
}

// binaryBody builds a binary-extension body: the JSON header, then each
// input's bytes in order.
func binaryBody(header string, blobs ...[]byte) ([]byte, string) {
	b := []byte(header)
	for _, blob := range blobs {
		b = append(b, blob...)
	}
	return b, strconv.Itoa(len(header))
}

func fp32(vs ...float32) []byte {
	var b []byte
	for _, v := range vs {
		b = binary.LittleEndian.AppendUint32(b, math.Float32bits(v))
	}
	return b
}

func TestInferBinary(t *testing.T) {
	ts := newTestServer(t)
	ts.publish(t, 0)
	rowsData := fp32(60000, 700, 20000, 5, 30000, 650, 10000, 2)
	header := `{"id":"b1","inputs":[{"name":"features","shape":[2,4],"datatype":"FP32","parameters":{"binary_data_size":32}}],` +
		`"outputs":[{"name":"label","parameters":{"binary_data":true}},{"name":"probability","parameters":{"binary_data":true}}]}`
	body, hlen := binaryBody(header, rowsData)
	r := ts.do(t, "POST", "/v2/models/loan-approval/infer", body, "Inference-Header-Content-Length", hlen, "Content-Type", "application/octet-stream")
	if r.status != 200 || r.json["id"] != "b1" {
		t.Fatalf("%d %q", r.status, r.raw)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/octet-stream" {
		t.Fatalf("Content-Type %q", ct)
	}
	n, _ := strconv.Atoi(r.header.Get("Inference-Header-Content-Length"))
	blob := r.raw[n:]
	outs := outputs(t, r)
	if outs["label"]["parameters"].(map[string]any)["binary_data_size"] != 16.0 ||
		outs["probability"]["parameters"].(map[string]any)["binary_data_size"] != 8.0 {
		t.Fatalf("binary sizes: %s", r.raw[:n])
	}
	if _, has := outs["label"]["data"]; has {
		t.Fatalf("binary output with data: %s", r.raw[:n])
	}
	if len(blob) != 24 {
		t.Fatalf("binary part %d bytes, want 24", len(blob))
	}
	if l0, l1 := binary.LittleEndian.Uint64(blob), binary.LittleEndian.Uint64(blob[8:]); l0 != 1 || l1 != 0 {
		t.Fatalf("labels %d %d", l0, l1)
	}
	p0 := math.Float32frombits(binary.LittleEndian.Uint32(blob[16:]))
	p1 := math.Float32frombits(binary.LittleEndian.Uint32(blob[20:]))
	if math.Abs(float64(p0)-0.6) > 1e-6 || math.Abs(float64(p1)-0.3) > 1e-6 {
		t.Fatalf("probabilities %v %v", p0, p1)
	}

	// binary_data_output with no outputs listed: every output binary.
	header = `{"parameters":{"binary_data_output":true},"inputs":[{"name":"features","shape":[2,4],"datatype":"FP32","parameters":{"binary_data_size":32}}]}`
	body, hlen = binaryBody(header, rowsData)
	r = ts.do(t, "POST", "/v2/models/loan-approval/infer", body, "Inference-Header-Content-Length", hlen)
	if r.status != 200 || len(outputs(t, r)) != 2 {
		t.Fatalf("%d %q", r.status, r.raw)
	}
	// Binary input, JSON output (one output binary, one not).
	header = `{"inputs":[{"name":"features","shape":[2,4],"datatype":"FP32","parameters":{"binary_data_size":32}}],"outputs":[{"name":"probability"},{"name":"label","parameters":{"binary_data":true}}]}`
	body, hlen = binaryBody(header, rowsData)
	r = ts.do(t, "POST", "/v2/models/loan-approval/infer", body, "Inference-Header-Content-Length", hlen)
	n, _ = strconv.Atoi(r.header.Get("Inference-Header-Content-Length"))
	if r.status != 200 || len(r.raw)-n != 16 || outputs(t, r)["probability"]["data"] == nil {
		t.Fatalf("mixed: %d %q", r.status, r.raw)
	}
	// Binary columns of mixed types.
	header = `{"inputs":[{"name":"income","shape":[1],"datatype":"FP64","parameters":{"binary_data_size":8}},` +
		`{"name":"credit_score","shape":[1],"datatype":"INT64","parameters":{"binary_data_size":8}},` +
		`{"name":"loan_amount","shape":[1],"datatype":"FP32","data":[20000]},` +
		`{"name":"years_employed","shape":[1],"datatype":"INT32","parameters":{"binary_data_size":4}}]}`
	body, hlen = binaryBody(header,
		binary.LittleEndian.AppendUint64(nil, math.Float64bits(70000)),
		binary.LittleEndian.AppendUint64(nil, 700),
		binary.LittleEndian.AppendUint32(nil, 3))
	r = ts.do(t, "POST", "/v2/models/loan-approval/infer", body, "Inference-Header-Content-Length", hlen)
	if r.status != 200 {
		t.Fatalf("binary columns: %d %q", r.status, r.raw)
	}
	if p := outputs(t, r)["probability"]["data"].([]any)[0].(float64); math.Abs(p-0.7) > 1e-6 {
		t.Fatalf("binary columns: probability %v", p)
	}
}

func TestInferRefused(t *testing.T) {
	ts := newTestServer(t)
	ts.publish(t, 0)
	good := `{"name":"features","shape":[1,4],"datatype":"FP32","data":` + row1 + `}`
	cases := []struct {
		name, body, headerLen string
		status                int
		message               string
	}{
		{"not JSON", `{"inputs":`, "", 400, "not valid JSON"},
		{"not an object", `[1]`, "", 400, "JSON object"},
		{"not a JSON number", `{"inputs":[{"name":"features","shape":[1,4],"datatype":"FP32","data":[050000,700,20000,5]}]}`, "", 400, "not valid JSON"},
		{"NaN", `{"inputs":[{"name":"features","shape":[1,4],"datatype":"FP32","data":[NaN,700,20000,5]}]}`, "", 400, "not valid JSON"},
		{"deep nesting", strings.Repeat("[", 512<<10), "", 400, "not valid JSON"}, // bounded by the parser's depth, not the validator's
		{"no inputs", `{}`, "", 400, `no "inputs"`},
		{"empty inputs", `{"inputs":[]}`, "", 400, "empty"},
		{"unknown input", `{"inputs":[{"name":"x","shape":[1,4],"datatype":"FP32","data":` + row1 + `}]}`, "", 400, `unknown input "x"`},
		{"wrong datatype", `{"inputs":[{"name":"features","shape":[1,4],"datatype":"BYTES","data":["a","b","c","d"]}]}`, "", 400, "datatype"},
		{"wrong width", `{"inputs":[{"name":"features","shape":[1,3],"datatype":"FP32","data":[1,2,3]}]}`, "", 400, "shape [1, 3]"},
		{"count short", `{"inputs":[{"name":"features","shape":[2,4],"datatype":"FP32","data":` + row1 + `}]}`, "", 400, "4 elements in data, shape [2, 4] needs 8"},
		{"count long", `{"inputs":[{"name":"features","shape":[1,4],"datatype":"FP32","data":[1,2,3,4,5]}]}`, "", 400, "more elements"},
		{"too deep", `{"inputs":[{"name":"features","shape":[1,4],"datatype":"FP32","data":[[[60000],700,20000,5]]}]}`, "", 400, "nested deeper"},
		{"ragged", `{"inputs":[{"name":"features","shape":[2,4],"datatype":"FP32","data":[[60000,700,20000],[5,1,2,3,4]]}]}`, "", 400, "nested data array"},
		{"three dims", `{"inputs":[{"name":"features","shape":[1,1,4],"datatype":"FP32","data":` + row1 + `}]}`, "", 400, "3 dimensions"},
		{"negative dim", `{"inputs":[{"name":"features","shape":[-1,4],"datatype":"FP32","data":` + row1 + `}]}`, "", 400, "whole numbers"},
		{"huge shape", `{"inputs":[{"name":"features","shape":[9223372036854775807,4],"datatype":"FP32","data":` + row1 + `}]}`, "", 400, "over the"},
		{"too many rows", `{"inputs":[{"name":"features","shape":[10001,4],"datatype":"FP32","data":[]}]}`, "", 400, "at most 10000"},
		{"no rows", `{"inputs":[{"name":"features","shape":[0,4],"datatype":"FP32","data":[]}]}`, "", 400, "no rows"},
		{"string element", `{"inputs":[{"name":"features","shape":[1,4],"datatype":"FP32","data":[60000,"700",20000,5]}]}`, "", 400, "not a number"},
		{"income negative", `{"inputs":[{"name":"features","shape":[1,4],"datatype":"FP32","data":[-1,700,20000,5]}]}`, "", 400, "income must be greater than 0"},
		{"credit score high", `{"inputs":[{"name":"features","shape":[1,4],"datatype":"FP32","data":[60000,901,20000,5]}]}`, "", 400, "credit_score must be no greater than 900"},
		{"float32 overflow", `{"inputs":[{"name":"features","shape":[1,4],"datatype":"FP32","data":[1e39,700,20000,5]}]}`, "", 400, "income must be a finite number"},
		{"fractional int", `{"inputs":[{"name":"features","shape":[1,4],"datatype":"INT64","data":[60000.5,700,20000,5]}]}`, "", 400, "whole number"},
		{"missing column", `{"inputs":[{"name":"income","shape":[1],"datatype":"FP32","data":[1]}]}`, "", 400, `missing input "credit_score"`},
		{"column twice", `{"inputs":[{"name":"income","shape":[1],"datatype":"FP32","data":[1]},{"name":"income","shape":[1],"datatype":"FP32","data":[1]}]}`, "", 400, "twice"},
		{"matrix and column", `{"inputs":[` + good + `,{"name":"income","shape":[1],"datatype":"FP32","data":[1]}]}`, "", 400, `unknown input "features"`},
		{"unknown output", `{"inputs":[` + good + `],"outputs":[{"name":"score"}]}`, "", 400, `unknown output "score"`},
		{"bad application id", `{"parameters":{"application_id":""},"inputs":[` + good + `]}`, "", 400, "application_id"},
		{"id not a string", `{"id":42,"inputs":[` + good + `]}`, "", 400, `"id"`},
		{"header length not a number", `{"inputs":[` + good + `]}`, "x", 400, "whole number"},
		{"header length past the body", `{"inputs":[` + good + `]}`, "100000", 400, "only"},
		{"more values than any tensor holds", `{"inputs":[{"name":"features","shape":[1,4],"datatype":"FP32","data":[` + strings.Repeat("1,", 60000) + `1]}]}`, "", 400, "more than 54096 JSON values"},
		{"values in an ignored member count too", `{"x":[` + strings.Repeat("1,", 60000) + `1],"inputs":[` + good + `]}`, "", 400, "JSON values"},
		{"key twice at the top", `{"inputs":[` + good + `],"inputs":[` + good + `]}`, "", 400, `"inputs" twice`},
		{"key twice in an input", `{"inputs":[{"name":"features","shape":[1,4],"datatype":"FP32","data":` + row1 + `,"data":` + row1 + `}]}`, "", 400, `"data" twice`},
		{"parameter twice", `{"parameters":{"application_id":"A","application_id":"B"},"inputs":[` + good + `]}`, "", 400, `"application_id" twice`},
		{"key twice in an output", `{"inputs":[` + good + `],"outputs":[{"name":"label","name":"probability"}]}`, "", 400, `"name" twice`},
		{"binary size without binary", `{"inputs":[{"name":"features","shape":[1,4],"datatype":"FP32","parameters":{"binary_data_size":16}}]}`, "", 400, "binary_data_size is 16"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var headers []string
			if c.headerLen != "" {
				headers = []string{"Inference-Header-Content-Length", c.headerLen}
			}
			r := ts.do(t, "POST", "/v2/models/loan-approval/infer", []byte(c.body), headers...)
			if r.status != c.status || !strings.Contains(r.json["error"].(string), c.message) {
				t.Fatalf("%d %s, want %d with %q", r.status, r.raw, c.status, c.message)
			}
		})
	}
	t.Run("binary size mismatch", func(t *testing.T) {
		body, hlen := binaryBody(`{"inputs":[{"name":"features","shape":[1,4],"datatype":"FP32","parameters":{"binary_data_size":12}}]}`, fp32(1, 2, 3))
		r := ts.do(t, "POST", "/v2/models/loan-approval/infer", body, "Inference-Header-Content-Length", hlen)
		if r.status != 400 || !strings.Contains(r.json["error"].(string), "needs 16") {
			t.Fatalf("%d %s", r.status, r.raw)
		}
	})
	t.Run("binary left over", func(t *testing.T) {
		body, hlen := binaryBody(`{"inputs":[`+good+`]}`, fp32(1))
		r := ts.do(t, "POST", "/v2/models/loan-approval/infer", body, "Inference-Header-Content-Length", hlen)
		if r.status != 400 || !strings.Contains(r.json["error"].(string), "left over") {
			t.Fatalf("%d %s", r.status, r.raw)
		}
	})
	t.Run("body over the limit", func(t *testing.T) {
		big := bytes.Repeat([]byte(" "), 2<<20) // the test server's limit is 1 MiB
		r := ts.do(t, "POST", "/v2/models/loan-approval/infer", big)
		if r.status != 413 {
			t.Fatalf("%d %s", r.status, r.raw)
		}
	})
}

// An empty "outputs" asks for every output, as no "outputs" does: an answer
// with none would decide and record an application its client never sees.
func TestInferEmptyOutputsIsEveryOutput(t *testing.T) {
	ts := newTestServer(t)
	ts.publish(t, 0)
	all := ts.do(t, "POST", "/v2/models/loan-approval/infer", []byte(`{"inputs":[{"name":"features","shape":[1,4],"datatype":"FP32","data":`+row1+`}]}`))
	empty := ts.do(t, "POST", "/v2/models/loan-approval/infer", []byte(`{"outputs":[],"inputs":[{"name":"features","shape":[1,4],"datatype":"FP32","data":`+row1+`}]}`))
	if all.status != 200 || empty.status != 200 || len(empty.json["outputs"].([]any)) == 0 ||
		len(empty.json["outputs"].([]any)) != len(all.json["outputs"].([]any)) {
		t.Fatalf("outputs [] = %d %s\nno outputs = %d %s", empty.status, empty.raw, all.status, all.raw)
	}
}
