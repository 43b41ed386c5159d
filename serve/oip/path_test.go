package oip_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/gofiber/fiber/v2"

	"mlservice/schemas"
	"mlservice/serve/decision"
	"mlservice/serve/models"
	"mlservice/serve/oip"
	"mlservice/serve/routing"
)

// columnScorer scores probability = income/100,000 (income is column 0) and
// NaN for an income of 666; with contrib it gives contrib_income =
// income/1e6.
type columnScorer struct {
	fakeScorer
	seen sync.Map // every row it scored, by its first column
}

func (s *columnScorer) Score(x, probs []float32, approve []bool) error {
	return s.ScoreContributions(x, probs, approve, nil)
}

func (s *columnScorer) Characteristics() []string {
	if s.contrib {
		return []string{"income"}
	}
	return nil
}

func (s *columnScorer) ScoreContributions(x, probs []float32, approve []bool, contrib []float32) error {
	for i := range probs {
		if s.contrib {
			contrib[i] = x[i*s.columns] / 1e6
		}
		row := x[i*s.columns : (i+1)*s.columns]
		s.seen.Store(row[0], append([]float32(nil), row...))
		probs[i] = row[0] / 100000
		if row[0] == 666 {
			probs[i] = float32(math.NaN())
		}
		approve[i] = probs[i] > 0.5
	}
	return nil
}

type failingRecorder struct {
	down     atomic.Bool
	mu       sync.Mutex
	recorded []decision.Decision
}

func (r *failingRecorder) Record(_ context.Context, ds []decision.Decision) error {
	if r.down.Load() {
		return errors.New("connection refused")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.recorded = append(r.recorded, ds...)
	return nil
}

// pathServer is /v2 alone over a real decision path and a recorder that can
// be taken down.
type pathServer struct {
	testServer
	rec   *failingRecorder
	ready atomic.Bool
}

func newPathServer(t *testing.T) *pathServer {
	ps := &pathServer{rec: &failingRecorder{}}
	ps.testServer.router = &routing.Router{}
	ps.ready.Store(true)
	ps.testServer.app = fiber.New()
	oip.Mount(ps.testServer.app, oip.Config{Models: []oip.Model{{Name: "loan-approval", Router: ps.testServer.router,
		Ready: func() (bool, string) {
			if !ps.ready.Load() {
				return false, "the decision record is unavailable"
			}
			return true, ""
		},
		Decider: &oip.Path{Decisions: decision.New(decision.Config{Router: ps.testServer.router, Recorder: ps.rec})}}}})
	return ps
}

func route(variant routing.Variant, version string, features []schemas.Feature, s models.Scorer) *routing.Route {
	return &routing.Route{Variant: variant, Version: models.NewVersion("loan-approval", version, "sha"+version, "artifacts", features, s)}
}

func newColumnScorer(columns int, contrib bool) *columnScorer {
	return &columnScorer{fakeScorer: fakeScorer{columns: columns, input: "features", contrib: contrib}}
}

const oneRow = `{"inputs":[{"name":"features","shape":[1,4],"datatype":"FP32","data":[60000,700,20000,5]}]}`

// A routed request is read with the champion's columns: a challenger that
// reads a field the request does not carry, or lacks a requested output,
// must not answer it (it would score zeros, or leave the output out).
func TestRoutedRequestGoesOnlyToAVersionThatReadsIt(t *testing.T) {
	ps := newPathServer(t)
	champion := newColumnScorer(4, true)
	wider := newColumnScorer(5, true) // reads points too
	tab, err := routing.NewTable("loan-approval", route(routing.Champion, "2", signature, champion),
		route(routing.Challenger, "3", append(signature[:4:4], schemas.Points), wider), nil,
		routing.Weights{Champion: 0, Challenger: 100})
	if err != nil {
		t.Fatal(err)
	}
	ps.router.Publish(tab)
	for range 5 {
		r := ps.do(t, "POST", "/v2/models/loan-approval/infer", []byte(oneRow))
		if r.status != 200 || r.json["model_version"] != "2" {
			t.Fatalf("%d %s, want the champion 2 to answer", r.status, r.raw)
		}
	}
	wider.seen.Range(func(k, v any) bool { t.Fatalf("the challenger scored %v", v); return false })

	narrow := newColumnScorer(4, false) // no contrib_income output
	tab, err = routing.NewTable("loan-approval", route(routing.Champion, "2", signature, champion),
		route(routing.Challenger, "4", signature, narrow), nil, routing.Weights{Champion: 0, Challenger: 100})
	if err != nil {
		t.Fatal(err)
	}
	ps.router.Publish(tab)
	if r := ps.do(t, "POST", "/v2/models/loan-approval/infer", []byte(oneRow)); r.json["model_version"] != "4" {
		t.Fatalf("with no outputs asked the challenger answers: %s", r.raw)
	}
	r := ps.do(t, "POST", "/v2/models/loan-approval/infer", []byte(`{"inputs":[{"name":"features","shape":[1,4],"datatype":"FP32","data":[60000,700,20000,5]}],"outputs":[{"name":"contrib_income"},{"name":"label"}]}`))
	if r.status != 200 || r.json["model_version"] != "2" || outputs(t, r)["contrib_income"] == nil {
		t.Fatalf("%d %s, want the champion 2 with contrib_income", r.status, r.raw)
	}
	r = ps.do(t, "POST", "/v2/models/loan-approval/infer", []byte(`{"inputs":[{"name":"features","shape":[1,4],"datatype":"FP32","data":[60000,700,20000,5]}],"outputs":[{"name":"label"},{"name":"label"}]}`))
	if r.status != 400 || !strings.Contains(r.json["error"].(string), "twice") {
		t.Fatalf("an output asked twice: %d %s", r.status, r.raw)
	}
}

func TestShadowVersionIsNeverServed(t *testing.T) {
	ps := newPathServer(t)
	shadow := newColumnScorer(4, false)
	tab, err := routing.NewTable("loan-approval", route(routing.Champion, "2", signature, newColumnScorer(4, true)), nil,
		route(routing.Shadow, "5", signature, shadow), routing.Weights{Champion: 100})
	if err != nil {
		t.Fatal(err)
	}
	ps.router.Publish(tab)
	for _, path := range []string{"/v2/models/loan-approval/versions/5/infer", "/v2/models/loan-approval/versions/5/ready"} {
		method, body := "POST", []byte(oneRow)
		if strings.HasSuffix(path, "ready") {
			method, body = "GET", nil
		}
		r := ps.do(t, method, path, body)
		if r.status != 404 || !strings.Contains(r.json["error"].(string), "only as the shadow") {
			t.Fatalf("%s: %d %s", path, r.status, r.raw)
		}
	}
	if r := ps.do(t, "GET", "/v2/models/loan-approval/versions/5", nil); r.status != 200 {
		t.Fatalf("the shadow's metadata: %d %s", r.status, r.raw)
	}
	shadow.seen.Range(func(k, v any) bool { t.Fatalf("the shadow scored %v for a client", v); return false })
	ps.rec.mu.Lock()
	defer ps.rec.mu.Unlock()
	if len(ps.rec.recorded) != 0 {
		t.Fatalf("recorded %d decisions", len(ps.rec.recorded))
	}
}

func TestUnrecordedOrUndecidableRequestsDecideNothing(t *testing.T) {
	ps := newPathServer(t)
	tab, err := routing.NewTable("loan-approval", route(routing.Champion, "2", signature, newColumnScorer(4, false)), nil, nil,
		routing.Weights{Champion: 100})
	if err != nil {
		t.Fatal(err)
	}
	ps.router.Publish(tab)

	ps.rec.down.Store(true)
	r := ps.do(t, "POST", "/v2/models/loan-approval/infer", []byte(oneRow))
	if r.status != 503 || !strings.Contains(r.json["error"].(string), "could not be recorded") {
		t.Fatalf("record down: %d %s", r.status, r.raw)
	}
	ps.rec.down.Store(false)

	twoRows := `{"inputs":[{"name":"features","shape":[2,4],"datatype":"FP32","data":[60000,700,20000,5,666,700,20000,5]}]}`
	r = ps.do(t, "POST", "/v2/models/loan-approval/infer", []byte(twoRows))
	if r.status != 422 || !strings.Contains(r.json["error"].(string), "row 1") {
		t.Fatalf("a row with no finite score: %d %s", r.status, r.raw)
	}
	ps.rec.mu.Lock()
	n := len(ps.rec.recorded)
	ps.rec.mu.Unlock()
	if n != 0 {
		t.Fatalf("a refused request recorded %d decisions", n)
	}

	ps.ready.Store(false)
	for _, path := range []string{"/v2/models/loan-approval/ready", "/v2/models/loan-approval/versions/2/ready"} {
		if r := ps.do(t, "GET", path, nil); r.status != 503 || !strings.Contains(r.json["error"].(string), "record") {
			t.Fatalf("%s while not ready: %d %s", path, r.status, r.raw)
		}
	}
}

// The server inflates gzip bodies before /v2 reads them; other encodings
// are refused in the protocol's error shape.
func TestCompressedInferBodies(t *testing.T) {
	ts := newTestServer(t)
	ts.publish(t, 0)
	var gz bytes.Buffer
	w := gzip.NewWriter(&gz)
	w.Write([]byte(oneRow))
	w.Close()
	if r := ts.do(t, "POST", "/v2/models/loan-approval/infer", gz.Bytes(), "Content-Encoding", "gzip"); r.status != 200 {
		t.Fatalf("gzip: %d %s", r.status, r.raw)
	}
	if r := ts.do(t, "POST", "/v2/models/loan-approval/infer", []byte(oneRow), "Content-Encoding", "br"); r.status != 415 {
		t.Fatalf("br: %d %s", r.status, r.raw)
	}
}
