package bench

import (
	"bytes"
	"fmt"
	"io"
	"log/slog"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/valyala/fasthttp"
	"github.com/valyala/fasthttp/fasthttputil"

	"mlservice/schemas"
	"mlservice/serve/api"
	"mlservice/serve/decision"
	"mlservice/serve/metrics"
	"mlservice/serve/models"
	"mlservice/serve/rollout"
	"mlservice/serve/routing"
)

// The benchmarks below are the hot path's parts, each on its own, and the
// whole /v1/predict handler in-process (no TCP, no load generator) for the
// CPU profile. `make bench` runs them; `go test` runs none of them.
//
//	go test -run '^$' -bench . -benchmem ./bench

// application returns a valid single-application body, the i-th of a seeded set.
func application(i int) []byte {
	return fmt.Appendf(nil, `{"application_id":"B-%06d","income":%d,"credit_score":%d,"loan_amount":%d,"years_employed":%d,"points":%d}`,
		i, 30000+(i*7919)%120000, 300+(i*31)%551, 1000+(i*4271)%49000, i%41, 10+5*(i%19))
}

func batchBody(n int) []byte {
	var b bytes.Buffer
	b.WriteString(`{"applications":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		b.Write(application(i))
	}
	b.WriteString("]}")
	return b.Bytes()
}

func BenchmarkDecodeValidate(b *testing.B) {
	var d schemas.Decoder
	body := application(7)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := d.Application(body); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeValidateBatch1000(b *testing.B) {
	var d schemas.Decoder
	body := batchBody(1000)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := d.Batch(body); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)*1000/b.Elapsed().Seconds(), "rows/s")
}

// champion loads the shipped champion (version 2) through the real loader:
// sha256 check, ONNX Runtime session, signature check, serving-check replay.
func champion(tb testing.TB) *models.Version { return loadVersion(tb, "2") }

func decodedApps(tb testing.TB, n int) []*schemas.Application {
	var d schemas.Decoder
	items, err := d.Batch(batchBody(n))
	if err != nil {
		tb.Fatal(err)
	}
	apps := make([]*schemas.Application, n)
	for i := range items {
		if items[i].Err != nil {
			tb.Fatal(items[i].Err)
		}
		apps[i] = &items[i].Application
	}
	return apps
}

func BenchmarkFeatureMapping(b *testing.B) {
	v := champion(b)
	apps := decodedApps(b, 1024)
	x := make([]float32, len(apps)*len(v.Features))
	w := len(v.Features)
	b.ReportAllocs()
	for b.Loop() {
		for i, a := range apps {
			v.FillRow(a, x[i*w:(i+1)*w])
		}
	}
	b.ReportMetric(float64(b.N)*1024/b.Elapsed().Seconds(), "rows/s")
}

// BenchmarkONNXRun is one ONNX Runtime run of the random-forest champion
// (the mapped rows are ready; no decoding).
func BenchmarkONNXRun(b *testing.B) {
	v := champion(b)
	for _, rows := range []int{1, 64, 1024} {
		b.Run("batch="+strconv.Itoa(rows), func(b *testing.B) {
			apps := decodedApps(b, rows)
			x := make([]float32, rows*len(v.Features))
			probs, approve := make([]float32, rows), make([]bool, rows)
			contrib := make([]float32, rows*len(v.Characteristics))
			w := len(v.Features)
			b.ReportAllocs()
			for b.Loop() {
				for i, a := range apps {
					v.FillRow(a, x[i*w:(i+1)*w])
				}
				if err := v.Score(x, probs, approve, contrib); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.N)*float64(rows)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}

// inProcess serves the real API (real decoder, router, ONNX Runtime session,
// metrics, encoder) on an in-memory listener and returns a client for it.
func inProcess(tb testing.TB) *fasthttp.Client {
	tb.Helper()
	return inProcessVersion(tb, champion(tb))
}

// inProcessVersion is inProcess serving v as the champion.
func inProcessVersion(tb testing.TB, v *models.Version) *fasthttp.Client {
	tb.Helper()
	if !v.Acquire() { // the router's reference; Cleanup releases the loader's
		tb.Fatal("version closed")
	}
	reg := prometheus.NewRegistry()
	m := metrics.New(reg)
	router := &routing.Router{}
	t, err := routing.NewTable("loan-approval",
		&routing.Route{Variant: routing.Champion, Version: v, Metrics: m.ForVersion("loan-approval", v.Number, "champion")},
		nil, nil, routing.ChampionOnly())
	if err != nil {
		tb.Fatal(err)
	}
	router.Publish(t)
	app, _, err := api.New(api.Config{Model: "loan-approval"}, api.Deps{
		Decisions: decision.New(decision.Config{Router: router}),
		Router:    router,
		Status:    func() rollout.Status { return rollout.Status{Ready: true, Source: "artifacts"} },
		Registry:  reg,
		Log:       slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		tb.Fatal(err)
	}
	ln := fasthttputil.NewInmemoryListener()
	go func() { _ = app.Listener(ln) }()
	tb.Cleanup(func() {
		_ = app.ShutdownWithTimeout(5 * time.Second)
		router.Publish(nil)
		v.Release()
	})
	return &fasthttp.Client{
		Dial:            func(string) (net.Conn, error) { return ln.Dial() },
		MaxConnsPerHost: 1024,
	}
}

func post(c *fasthttp.Client, path string, body []byte, req *fasthttp.Request, resp *fasthttp.Response) error {
	req.SetRequestURI("http://bench" + path)
	req.Header.SetMethod(fiber.MethodPost)
	req.Header.SetContentType(fiber.MIMEApplicationJSON)
	req.SetBodyRaw(body)
	if err := c.Do(req, resp); err != nil {
		return err
	}
	if resp.StatusCode() != 200 {
		return fmt.Errorf("status %d: %s", resp.StatusCode(), resp.Body())
	}
	return nil
}

// BenchmarkPredictHTTP is POST /v1/predict end to end in one process, from
// parallel clients: the harness `make bench` profiles.
func BenchmarkPredictHTTP(b *testing.B) { predictParallel(b, inProcess(b)) }

// BenchmarkPredictBatchHTTP is POST /v1/predict/batch with 1,000 applications.
func BenchmarkPredictBatchHTTP(b *testing.B) { predictBatch(b, inProcess(b), 1000) }

// predictParallel times POST /v1/predict on c from parallel clients, over a
// seeded set of 1,000 applications.
func predictParallel(b *testing.B, c *fasthttp.Client) {
	bodies := make([][]byte, 1000)
	for i := range bodies {
		bodies[i] = application(i)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
		defer fasthttp.ReleaseRequest(req)
		defer fasthttp.ReleaseResponse(resp)
		i := 0
		for pb.Next() {
			if err := post(c, "/v1/predict", bodies[i%len(bodies)], req, resp); err != nil {
				b.Error(err)
				return
			}
			i++
		}
	})
}

// predictBatch times POST /v1/predict/batch on c with rows applications a
// request, and reports rows/s.
func predictBatch(b *testing.B, c *fasthttp.Client, rows int) {
	body := batchBody(rows)
	req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
	b.ReportAllocs()
	for b.Loop() {
		if err := post(c, "/v1/predict/batch", body, req, resp); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)*float64(rows)/b.Elapsed().Seconds(), "rows/s")
}
