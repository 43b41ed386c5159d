package decision_test

import (
	"context"
	"reflect"
	"testing"

	"mlservice/serve/decision"
	"mlservice/serve/models/modelstest"
	"mlservice/serve/routing"
)

// The decision path with the shipped champion (ONNX Runtime, reasons,
// drift observer; no record). Its cost per row:
//
//	go test -run '^$' -bench . -benchmem ./serve/decision

func BenchmarkDecide1000(b *testing.B) {
	for _, tc := range []struct {
		name    string
		withIDs bool
	}{{"with-ids", true}, {"no-ids", false}} {
		b.Run(tc.name, func(b *testing.B) {
			var router routing.Router
			champ := modelstest.Load(b, "3", &router)
			p := decision.New(decision.Config{Router: &router, Observers: []decision.Observer{decision.DriftObserver{Tracker: champ.Drift}}})
			src := modelstest.Applications(1000, tc.withIDs)
			ins := make([]decision.Input, len(src))
			out, errs := make([]decision.Decision, len(src)), make([]error, len(src))
			b.ReportAllocs()
			for b.Loop() {
				copy(ins, src) // Decide fills in missing application ids
				if err := p.Decide(context.Background(), "bench", ins, out, errs); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1000, "ns/row")
		})
	}
}

// TestChampionReasonsAreTheTables: the reasons the path writes for a call's
// declines (one buffer for all) are what the version's table explains for
// each one alone, and every decline of the champion has some.
func TestChampionReasonsAreTheTables(t *testing.T) {
	var router routing.Router
	champ := modelstest.Load(t, "3", &router)
	p := decision.New(decision.Config{Router: &router})
	ins := modelstest.Applications(500, false)
	out, errs := make([]decision.Decision, len(ins)), make([]error, len(ins))
	if err := p.Decide(context.Background(), "r", ins, out, errs); err != nil {
		t.Fatal(err)
	}
	declines := 0
	for i, d := range out {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		var want []decision.Reason
		if !d.Approve {
			declines++
			for _, r := range champ.Version.Reasons.Explain(&ins[i].Application, d.Contributions) {
				want = append(want, decision.Reason(r))
			}
			if len(want) == 0 {
				t.Fatalf("decline %d has no reasons", i)
			}
		}
		if !reflect.DeepEqual(d.Reasons, want) {
			t.Fatalf("decision %d reasons\n got %+v\nwant %+v", i, d.Reasons, want)
		}
	}
	if declines < 50 {
		t.Fatalf("only %d declines of %d", declines, len(out))
	}
}

func TestAppendContributionsJSONSortsByName(t *testing.T) {
	d := decision.Decision{Characteristics: []string{"income", "credit_score", "years_employed", "loan_to_income"},
		Contributions: []float32{-0.9, -1.5, -0.7, -1.2}}
	want := `{"credit_score":-1.5,"income":-0.9,"loan_to_income":-1.2,"years_employed":-0.7}`
	if got := string(d.AppendContributionsJSON(nil)); got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}
