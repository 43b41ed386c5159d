package oip_test

import (
	"context"
	"testing"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fasthttp"

	"mlservice/serve/decision"
	"mlservice/serve/models/modelstest"
	"mlservice/serve/oip"
	"mlservice/serve/routing"
)

// The protocol layer's own cost (the fake scorer costs next to nothing):
// go test -run '^$' -bench . -benchmem ./serve/oip

func BenchmarkInferJSONOneRow(b *testing.B) {
	ts := newTestServer(b)
	ts.publish(b, 0)
	body := []byte(`{"parameters":{"application_id":"B-1"},"inputs":[{"name":"features","shape":[1,4],"datatype":"FP32","data":[60000,700,20000,5]}]}`)
	h := ts.app.Handler()
	b.ReportAllocs()
	for b.Loop() {
		ctx := fastCtx("/v2/models/loan-approval/infer", body, nil)
		h(ctx)
		if ctx.Response.StatusCode() != 200 {
			b.Fatalf("%d %s", ctx.Response.StatusCode(), ctx.Response.Body())
		}
	}
}

func BenchmarkInferBinary1000Rows(b *testing.B) {
	ts := newTestServer(b)
	ts.publish(b, 0)
	benchBinary1000(b, ts.app.Handler(), nil)
}

// BenchmarkInferBinary1000RowsChampion is the whole /v2 binary path with the
// shipped champion: ONNX Runtime, reasons, drift (no record), on the load
// generator's mix of applications.
func BenchmarkInferBinary1000RowsChampion(b *testing.B) {
	var router routing.Router
	champ := modelstest.Load(b, "3", &router)
	app := fiber.New()
	oip.Mount(app, oip.Config{Models: []oip.Model{{Name: "loan-approval", Router: &router,
		Ready: func() (bool, string) { return true, "" },
		Decider: &oip.Path{Decisions: decision.New(decision.Config{Router: &router,
			Observers: []decision.Observer{decision.DriftObserver{Tracker: champ.Drift}}})}}}})
	var rows []float32
	for _, in := range modelstest.Applications(1000, false) {
		a := &in.Application
		rows = append(rows, float32(a.Income), float32(a.CreditScore), float32(a.LoanAmount), float32(a.YearsEmployed))
	}
	benchBinary1000(b, app.Handler(), rows)
}

func fastCtx(path string, body []byte, headers []string) *fasthttp.RequestCtx {
	ctx := &fasthttp.RequestCtx{}
	ctx.Request.Header.SetMethod("POST")
	ctx.Request.SetRequestURI(path)
	ctx.Request.SetBody(body)
	for i := 0; i+1 < len(headers); i += 2 {
		ctx.Request.Header.Set(headers[i], headers[i+1])
	}
	return ctx
}

// stubDecider answers every row at once: what is left is the protocol layer.
type stubDecider struct{}

func (stubDecider) Decide(_ context.Context, req *oip.Request) (*oip.Result, error) {
	n := len(req.Applications)
	res := &oip.Result{Model: "loan-approval", Version: "2", Variant: "champion", Probability: make([]float32, n), Approve: make([]bool, n)}
	for i := range res.Probability {
		res.Probability[i] = 0.5
	}
	return res, nil
}

// BenchmarkProtocolOnlyBinary1000Rows is the /v2 layer alone (parse the
// binary body, map rows to applications, validate, write the binary answer)
// with a decider that costs nothing.
func BenchmarkProtocolOnlyBinary1000Rows(b *testing.B) {
	ts := newTestServer(b)
	ts.publish(b, 0)
	app := fiber.New()
	oip.Mount(app, oip.Config{Models: []oip.Model{{Name: "loan-approval", Router: ts.router,
		Ready: func() (bool, string) { return true, "" }, Decider: stubDecider{}}}})
	benchBinary1000(b, app.Handler(), nil)
}

// benchBinary1000 sends one binary-extension request of 1,000 rows (vals,
// or ones of its own when nil) per iteration to h and reports rows/s.
func benchBinary1000(b *testing.B, h fasthttp.RequestHandler, vals []float32) {
	for i := len(vals) / 4; i < 1000; i++ {
		vals = append(vals, float32(30000+i*50), 700, 20000, 5)
	}
	header := `{"parameters":{"binary_data_output":true},"inputs":[{"name":"features","shape":[1000,4],"datatype":"FP32","parameters":{"binary_data_size":16000}}]}`
	body, hlen := binaryBody(header, fp32(vals...))
	ctx := fastCtx("/v2/models/loan-approval/infer", body, []string{"Inference-Header-Content-Length", hlen})
	b.ReportAllocs()
	for b.Loop() {
		ctx.Response.Reset() // the request is read only: reused, as a connection's is
		h(ctx)
		if ctx.Response.StatusCode() != 200 {
			b.Fatalf("%d %s", ctx.Response.StatusCode(), ctx.Response.Body())
		}
	}
	b.ReportMetric(float64(b.N)*1000/b.Elapsed().Seconds(), "rows/s")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1000, "ns/row")
}
