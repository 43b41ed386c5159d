package api

import (
	"bytes"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"

	"mlservice/serve/decision"
	"mlservice/serve/models/modelstest"
	"mlservice/serve/rollout"
	"mlservice/serve/routing"
)

// BenchmarkPredictBatch1000Champion is POST /v1/predict/batch of 1,000
// applications (the load generator's mix) with the shipped champion: decode,
// ONNX Runtime, reasons, drift, encode; no record, no TCP.
//
//	go test -run '^$' -bench . -benchmem ./serve/api
func BenchmarkPredictBatch1000Champion(b *testing.B) {
	var router routing.Router
	champ := modelstest.Load(b, "3", &router)
	app, _, err := New(Config{Model: "loan-approval"}, Deps{
		Decisions: decision.New(decision.Config{Router: &router,
			Observers: []decision.Observer{decision.DriftObserver{Tracker: champ.Drift}}}),
		Router:   &router,
		Registry: prometheus.NewRegistry(),
		Status:   func() rollout.Status { return rollout.Status{Ready: true, Source: "artifacts"} },
	})
	if err != nil {
		b.Fatal(err)
	}
	var body bytes.Buffer
	body.WriteString(`{"applications":[`)
	for i, in := range modelstest.Applications(1000, true) {
		if i > 0 {
			body.WriteByte(',')
		}
		body.Write(in.JSON)
	}
	body.WriteString("]}")
	h := app.Handler()
	ctx := &fasthttp.RequestCtx{} // reused, as a connection's is
	b.ReportAllocs()
	for b.Loop() {
		ctx.Request.Reset()
		ctx.Response.Reset()
		ctx.Request.Header.SetMethod("POST")
		ctx.Request.SetRequestURI("/v1/predict/batch")
		ctx.Request.Header.SetContentType("application/json")
		ctx.Request.SetBody(body.Bytes())
		h(ctx)
		if ctx.Response.StatusCode() != 200 {
			b.Fatalf("%d %s", ctx.Response.StatusCode(), ctx.Response.Body())
		}
	}
	b.ReportMetric(float64(b.N)*1000/b.Elapsed().Seconds(), "rows/s")
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1000, "ns/row")
}
