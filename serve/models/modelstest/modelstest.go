// Package modelstest loads a shipped model version through the real load
// pipeline (ONNX Runtime, serving check, drift baseline), for the tests and
// benchmarks of the packages that decide with it.
package modelstest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"mlservice/artifacts"
	"mlservice/internal/servetest"
	"mlservice/registry"
	"mlservice/registry/local"
	"mlservice/schemas"
	"mlservice/serve/decision"
	"mlservice/serve/drift"
	"mlservice/serve/inference"
	"mlservice/serve/metrics"
	"mlservice/serve/models"
	"mlservice/serve/routing"
)

// Champion is a live routing table whose champion is the embedded version
// (the loan model), watched by a drift tracker as the server's is. The
// version is released when the test ends.
type Champion struct {
	Table   *routing.Table
	Version *models.Version
	Drift   *drift.Tracker
}

// Load loads the embedded loan-approval version and publishes it alone, as
// champion, on router.
func Load(tb testing.TB, version string, router *routing.Router) *Champion {
	tb.Helper()
	if err := inference.Init(servetest.ORTLibrary(tb)); err != nil {
		tb.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	tracker := drift.NewTracker(reg, 0, nil)
	l := &models.Loader{
		Cache: &registry.Cache{Dir: tb.TempDir()},
		Open: func(path string) (models.Scorer, error) {
			return inference.Open(path, inference.Options{IntraOpThreads: 1})
		},
		Check: decision.ServingCheck,
		Drift: tracker,
	}
	v, err := l.Load(context.Background(), &local.Tree{FS: artifacts.FS, Name: "embedded"}, "loan-approval", version)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(v.Release)
	m := metrics.New(reg).ForVersion(v.Name, v.Number, string(routing.Champion))
	t, err := routing.NewTable(v.Name, &routing.Route{Variant: routing.Champion, Version: v, Metrics: m}, nil, nil, routing.ChampionOnly())
	if err != nil {
		tb.Fatal(err)
	}
	router.Publish(t)
	return &Champion{Table: t, Version: v, Drift: tracker}
}

// Applications returns n applications drawn as bench/bodies draws the load
// generator's (seed 1), so a benchmark sees its mix of approvals and
// declines, each with its JSON object; ids are left out when withIDs is false
// (an Open Inference Protocol row has none).
func Applications(n int, withIDs bool) []decision.Input {
	r := rand.New(rand.NewPCG(1, 0x6c6f616e))
	ins := make([]decision.Input, n)
	for i := range ins {
		a := schemas.Application{
			Income:        float64(30000 + r.IntN(120000)),
			CreditScore:   float64(300 + r.IntN(551)),
			LoanAmount:    float64(1000 + r.IntN(49000)),
			YearsEmployed: float64(r.IntN(41)),
			Points:        float64(10 + 5*r.IntN(19)),
		}
		b := []byte("{")
		if withIDs {
			a.ApplicationID = fmt.Sprintf("B-%06d", i+1)
			b = fmt.Appendf(b, `"application_id":%q,`, a.ApplicationID)
		}
		b = fmt.Appendf(b, `"income":%.0f,"credit_score":%.0f,"loan_amount":%.0f,"years_employed":%.0f,"points":%.0f}`,
			a.Income, a.CreditScore, a.LoanAmount, a.YearsEmployed, a.Points)
		ins[i] = decision.Input{Application: a, JSON: b}
	}
	return ins
}
