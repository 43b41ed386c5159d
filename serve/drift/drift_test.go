package drift

import (
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"mlservice/schemas"
)

func TestPSIHandComputed(t *testing.T) {
	// Expected 50/50, actual 80/20:
	// (0.8-0.5)·ln(0.8/0.5) + (0.2-0.5)·ln(0.2/0.5) = 0.3·0.470004 + 0.3·0.916291 = 0.415888
	got := PSI([]uint64{80, 20}, []float64{0.5, 0.5})
	if math.Abs(got-0.4158883) > 1e-6 {
		t.Fatalf("PSI = %.7f, want 0.4158883", got)
	}
	if got := PSI([]uint64{50, 50}, []float64{0.5, 0.5}); got != 0 {
		t.Fatalf("PSI of the baseline itself = %g, want 0", got)
	}
	if got := PSI([]uint64{0, 0}, []float64{0.5, 0.5}); got != 0 {
		t.Fatalf("PSI of no decisions = %g, want 0", got)
	}
	// An empty training bin must not make PSI infinite.
	if got := PSI([]uint64{0, 100}, []float64{1, 0}); math.IsInf(got, 0) || math.IsNaN(got) || got < 5 {
		t.Fatalf("PSI with an empty baseline bin = %g, want a large finite number", got)
	}
}

func TestBin(t *testing.T) {
	d := Distribution{Edges: []float64{10, 20}, Shares: []float64{.3, .3, .4}}
	for v, want := range map[float64]int{-1: 0, 9.99: 0, 10: 1, 19.99: 1, 20: 2, 1e9: 2} {
		if got := d.Bin(v); got != want {
			t.Errorf("Bin(%g) = %d, want %d (bins are closed on the left)", v, got, want)
		}
	}
	// Any number of edges, any value (NaN goes to the last bin): the first
	// edge greater than the value.
	rng := rand.New(rand.NewPCG(3, 4))
	for n := range 12 {
		d := Distribution{Edges: make([]float64, n)}
		for i := range d.Edges {
			d.Edges[i] = float64(i * 10)
		}
		for _, v := range []float64{-5, 0, 5, 10, 95, 110, 1e9, math.NaN(), rng.Float64() * 120} {
			want := slices.IndexFunc(d.Edges, func(e float64) bool { return e > v })
			if want < 0 {
				want = n
			}
			if got := d.Bin(v); got != want {
				t.Errorf("%d edges: Bin(%g) = %d, want %d", n, v, got, want)
			}
		}
	}
}

func TestParseBaselineRejects(t *testing.T) {
	good := `{"format_version":1,"features":{"income":{"edges":[1,2],"shares":[0.2,0.3,0.5]}},"score":{"edges":[0.5],"shares":[0.5,0.5]}}`
	if _, err := ParseBaseline([]byte(good)); err != nil {
		t.Fatalf("good baseline: %v", err)
	}
	for name, tc := range map[string]struct{ body, want string }{
		"not json":       {`{`, "unexpected end"},
		"format":         {strings.Replace(good, `"format_version":1`, `"format_version":2`, 1), "format_version 2"},
		"share count":    {strings.Replace(good, `[0.2,0.3,0.5]`, `[0.5,0.5]`, 1), "2 edges need 3 shares"},
		"edges decrease": {strings.Replace(good, `[1,2]`, `[2,1]`, 1), "edges must increase"},
		"sum":            {strings.Replace(good, `[0.2,0.3,0.5]`, `[0.2,0.3,0.6]`, 1), "sum to"},
		"negative":       {strings.Replace(good, `[0.2,0.3,0.5]`, `[-0.2,0.7,0.5]`, 1), "not in [0, 1]"},
		"no features":    {`{"format_version":1,"features":{},"score":{"edges":[0.5],"shares":[0.5,0.5]}}`, "no features"},
		"no score":       {`{"format_version":1,"features":{"income":{"edges":[1],"shares":[0.5,0.5]}}}`, "score"},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := ParseBaseline([]byte(tc.body))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
}

// applicant draws an application from the ranges of the bank's data.
func applicant(r *rand.Rand, incomeShift float64) schemas.Application {
	return schemas.Application{
		Income:        30000 + r.Float64()*120000 + incomeShift,
		CreditScore:   float64(300 + r.IntN(551)),
		LoanAmount:    1000 + r.Float64()*49000,
		YearsEmployed: float64(r.IntN(41)),
	}
}

// baselineOf builds deciles from a sample, as the training notebook does.
func baselineOf(t *testing.T, r *rand.Rand) *Baseline {
	t.Helper()
	const n = 20000
	cols := map[schemas.Feature][]float64{}
	score := make([]float64, n)
	for i := 0; i < n; i++ {
		a := applicant(r, 0)
		for _, f := range []schemas.Feature{schemas.Income, schemas.CreditScore, schemas.LoanAmount, schemas.YearsEmployed} {
			cols[f] = append(cols[f], a.Value(f))
		}
		score[i] = r.Float64()
	}
	b := &Baseline{FormatVersion: 1, Features: map[string]Distribution{}}
	for f, vs := range cols {
		b.Features[f.String()] = deciles(vs)
	}
	b.Score = deciles(score)
	return b
}

func deciles(vs []float64) Distribution {
	s := append([]float64(nil), vs...)
	slices.Sort(s)
	var d Distribution
	for q := 1; q < 10; q++ {
		e := s[q*len(s)/10]
		if len(d.Edges) == 0 || e > d.Edges[len(d.Edges)-1] {
			d.Edges = append(d.Edges, e)
		}
	}
	counts := make([]uint64, len(d.Edges)+1)
	for _, v := range vs {
		counts[d.Bin(v)]++
	}
	for _, c := range counts {
		d.Shares = append(d.Shares, float64(c)/float64(len(vs)))
	}
	return d
}

// TestIncomeShiftRaisesOnlyIncomePSI is the drift drill of issue 16: decisions
// with a shifted income distribution raise income's PSI above 0.25 while the
// other fields stay below 0.1, and the PSI falls back once the traffic
// returns to normal and the shifted decisions leave the window.
func TestIncomeShiftRaisesOnlyIncomePSI(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	base := baselineOf(t, r)
	now := time.Date(2026, 12, 1, 9, 0, 0, 0, time.UTC)
	reg := prometheus.NewRegistry()
	tr := NewTracker(reg, time.Hour, func() time.Time { return now })
	tr.Track("loan-approval", "3", base)

	for i := 0; i < 5000; i++ {
		a := applicant(r, 40000) // the bank's applicants earn 40k more
		tr.Observe("loan-approval", "3", &a, float32(r.Float64()))
	}
	psi := scrape(t, reg)
	if psi["income"] <= 0.25 {
		t.Errorf("income PSI after the shift = %.3f, want > 0.25", psi["income"])
	}
	for _, f := range []string{"credit_score", "loan_amount", "years_employed", "score"} {
		if psi[f] >= 0.1 {
			t.Errorf("%s PSI = %.3f, want < 0.1 (only income moved)", f, psi[f])
		}
	}
	if got := single(t, reg, "model_drift_window_decisions"); got != 5000 {
		t.Errorf("window decisions = %g, want 5000", got)
	}

	// An hour and a bit later the shifted decisions have left the window.
	now = now.Add(time.Hour + 10*time.Minute)
	for i := 0; i < 5000; i++ {
		a := applicant(r, 0)
		tr.Observe("loan-approval", "3", &a, float32(r.Float64()))
	}
	psi = scrape(t, reg)
	for f, v := range psi {
		if v >= 0.1 {
			t.Errorf("%s PSI after traffic returned = %.3f, want < 0.1", f, v)
		}
	}

	tr.Forget("loan-approval", "3")
	if n := count(t, reg, "model_feature_psi"); n != 0 {
		t.Errorf("a forgotten version still exports %d PSI series", n)
	}
}

func TestUntrackedVersionAndEmptyWindowExportNoPSI(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	reg := prometheus.NewRegistry()
	tr := NewTracker(reg, time.Minute, nil)
	a := applicant(r, 0)
	tr.Observe("loan-approval", "1", &a, 0.5) // not tracked: ignored
	tr.Track("loan-approval", "3", baselineOf(t, r))
	if n := count(t, reg, "model_feature_psi"); n != 0 {
		t.Fatalf("no decisions yet, but %d PSI series", n)
	}
	if n := count(t, reg, "model_drift_window_decisions"); n != 1 {
		t.Fatalf("window decision series = %d, want 1", n)
	}
}

func scrape(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			v := m.GetGauge().GetValue()
			if math.IsNaN(v) || math.IsInf(v, 0) {
				t.Fatalf("%s is %g", mf.GetName(), v)
			}
			switch mf.GetName() {
			case "model_feature_psi":
				for _, l := range m.GetLabel() {
					if l.GetName() == "feature" {
						out[l.GetValue()] = v
					}
				}
			case "model_score_psi":
				out["score"] = v
			}
		}
	}
	return out
}

// count is the number of series of a metric family.
func count(t *testing.T, reg *prometheus.Registry, name string) int {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return len(mf.GetMetric())
		}
	}
	return 0
}

// single is the value of a metric family that has exactly one series.
func single(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no single %s series", name)
	return 0
}

func TestTrackIsCountedPerOpenCopy(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	reg := prometheus.NewRegistry()
	tr := NewTracker(reg, time.Hour, nil)
	b := baselineOf(t, r)
	tr.Track("m", "3", b) // v3 live
	tr.Track("m", "3", b) // promoted back to v3 while the old copy still drains
	a := applicant(r, 0)
	tr.Observe("m", "3", &a, 0.5)
	tr.Forget("m", "3") // the old copy closes
	if got := single(t, reg, "model_drift_window_decisions"); got != 1 {
		t.Fatalf("after the old copy closed: %g decisions in the window, want the monitor kept with 1", got)
	}
	tr.Forget("m", "3")
	tr.Forget("m", "3") // one too many: ignored
	if n := count(t, reg, "model_drift_window_decisions"); n != 0 {
		t.Fatalf("after the last copy closed: %d series, want 0", n)
	}
}
