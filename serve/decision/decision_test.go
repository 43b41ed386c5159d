package decision_test

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/prometheus/client_golang/prometheus"

	"mlservice/schemas"
	"mlservice/serve/decision"
	"mlservice/serve/metrics"
	"mlservice/serve/models"
	"mlservice/serve/reasons"
	"mlservice/serve/routing"
)

// scorer approves incomes above 50,000 with probability income/100,000; an
// income of 666 scores NaN. With characteristics it gives "income" =
// income/1e6 and "years" = years_employed/10 (features income, years).
type scorer struct {
	characteristics []string
	runs            atomic.Int64
}

func (s *scorer) Columns() int { return 2 }
func (s *scorer) Score(x, probs []float32, approve []bool) error {
	return s.ScoreContributions(x, probs, approve, nil)
}
func (s *scorer) Characteristics() []string { return s.characteristics }
func (s *scorer) ScoreContributions(x, probs []float32, approve []bool, contrib []float32) error {
	s.runs.Add(1)
	for i := range probs {
		probs[i] = x[2*i] / 100000
		if x[2*i] == 666 {
			probs[i] = float32(math.NaN())
		}
		approve[i] = probs[i] > 0.5
		if len(s.characteristics) > 0 {
			contrib[2*i] = x[2*i] / 1e6
			contrib[2*i+1] = x[2*i+1] / 10
		}
	}
	return nil
}
func (s *scorer) Close() error { return nil }

var features = []schemas.Feature{schemas.Income, schemas.YearsEmployed}

type recorder struct {
	mu  sync.Mutex
	got []decision.Decision
	err error
}

func (r *recorder) Record(_ context.Context, ds []decision.Decision) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return r.err
	}
	r.got = append(r.got, ds...)
	return nil
}

type observer struct{ seen atomic.Int64 }

func (o *observer) Observe(ds []decision.Decision) { o.seen.Add(int64(len(ds))) }

type mirror struct{ offered []decision.Decision }

func (m *mirror) Offer(_ *routing.Table, _ *schemas.Application, d *decision.Decision) {
	m.offered = append(m.offered, *d)
}

type fixture struct {
	router     routing.Router
	reg        *prometheus.Registry
	champion   *scorer
	challenger *scorer
	table      *routing.Table
}

func newFixture(t *testing.T, challengerShare int, shadow bool) *fixture {
	t.Helper()
	f := &fixture{reg: prometheus.NewRegistry(), champion: &scorer{}, challenger: &scorer{characteristics: []string{"income", "years"}}}
	m := metrics.New(f.reg)
	route := func(variant routing.Variant, version string, s *scorer) *routing.Route {
		return &routing.Route{Variant: variant, Version: models.NewVersion("loan-approval", version, "sha-"+version, "artifacts", features, s),
			Metrics: m.ForVersion("loan-approval", version, string(variant))}
	}
	var chall, shad *routing.Route
	if challengerShare > 0 {
		chall = route(routing.Challenger, "2", f.challenger)
	}
	if shadow {
		shad = route(routing.Shadow, "3", &scorer{})
	}
	tab, err := routing.NewTable("loan-approval", route(routing.Champion, "1", f.champion), chall, shad,
		routing.Weights{Champion: 100 - challengerShare, Challenger: challengerShare})
	if err != nil {
		t.Fatal(err)
	}
	f.table = tab
	f.router.Publish(tab)
	return f
}

func input(id string, income float64) decision.Input {
	body := fmt.Sprintf(`{"application_id":%q,"income":%g,"credit_score":700,"loan_amount":1,"years_employed":5,"points":1}`, id, income)
	if id == "" {
		body = fmt.Sprintf(`{"income":%g,"credit_score":700,"loan_amount":1,"years_employed":5,"points":1}`, income)
	}
	return decision.Input{Application: schemas.Application{ApplicationID: id, Income: income, CreditScore: 700, LoanAmount: 1, YearsEmployed: 5, Points: 1},
		JSON: []byte(body)}
}

func TestDecideFillsEveryField(t *testing.T) {
	f := newFixture(t, 0, false)
	rec, obs := &recorder{}, &observer{}
	clock := time.Date(2026, 12, 1, 9, 0, 0, 0, time.FixedZone("CET", 3600))
	p := decision.New(decision.Config{Router: &f.router, Recorder: rec, Observers: []decision.Observer{obs},
		Now: func() time.Time { return clock }})
	in := input("A-1", 60000)
	raw := in.JSON
	d, err := p.DecideOne(context.Background(), "req-1", &in)
	if err != nil {
		t.Fatal(err)
	}
	copy(raw, strings.Repeat("x", len(raw))) // the request buffer is reused
	id, err := uuid.Parse(d.ID)
	if err != nil || id.Version() != 7 {
		t.Fatalf("decision id %q is not a uuid v7: %v", d.ID, err)
	}
	want := decision.Decision{ID: d.ID, RequestID: "req-1", ApplicationID: "A-1", Time: clock.UTC(), Variant: "champion", Served: true,
		Model: "loan-approval", Version: "1", SHA256: "sha-1", Source: "artifacts", Probability: 0.6, Approve: true,
		Threshold: models.DefaultThreshold, Latency: d.Latency,
		Application: schemas.Application{ApplicationID: "A-1", Income: 60000, CreditScore: 700, LoanAmount: 1, YearsEmployed: 5, Points: 1}}
	if d.Inputs == nil || !strings.HasPrefix(string(d.Inputs), `{"application_id":"A-1"`) {
		t.Fatalf("inputs not an owned copy of the application: %q", d.Inputs)
	}
	d.Inputs = nil
	if fmt.Sprint(d) != fmt.Sprint(want) {
		t.Fatalf("got  %+v\nwant %+v", d, want)
	}
	if len(rec.got) != 1 || rec.got[0].ID != d.ID || obs.seen.Load() != 1 {
		t.Fatalf("recorded %d, observed %d", len(rec.got), obs.seen.Load())
	}
	if got := counter(t, f.reg, "model_predictions_total", "approve"); got != 1 {
		t.Fatalf("model_predictions_total{decision=approve} = %v", got)
	}
}

// TestNewIDsAreSortedUniqueVersion7: a call's ids count up from a uuid v7
// of its time, a later call's sort after them, and calls at one time share
// none.
func TestNewIDsAreSortedUniqueVersion7(t *testing.T) {
	seen := map[string]bool{}
	last := ""
	at := time.Now()
	for call := range 50 {
		ids := make([]string, 300)
		decision.NewIDs(ids, at.Add(time.Duration(call)*time.Microsecond))
		for _, id := range ids {
			u, err := uuid.Parse(id)
			if err != nil || u.Version() != 7 || u.Variant() != uuid.RFC4122 || u.String() != id {
				t.Fatalf("%q is not a canonical uuid v7 (%v)", id, err)
			}
			if id <= last || seen[id] {
				t.Fatalf("id %s after %s", id, last)
			}
			seen[id], last = true, id
		}
	}
	for range 50 {
		ids := make([]string, 300)
		decision.NewIDs(ids, at)
		for _, id := range ids {
			if seen[id] {
				t.Fatalf("id %s given twice", id)
			}
			seen[id] = true
		}
	}
}

func TestDecisionIDsAreTimeOrderedAndApplicationIDsGenerated(t *testing.T) {
	f := newFixture(t, 0, false)
	p := decision.New(decision.Config{Router: &f.router})
	ins := []decision.Input{input("", 60000), input("", 40000), input("B", 1)}
	out, errs := make([]decision.Decision, 3), make([]error, 3)
	if err := p.Decide(context.Background(), "r", ins, out, errs); err != nil {
		t.Fatal(err)
	}
	for i, d := range out {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if i > 0 && d.ID <= out[i-1].ID {
			t.Fatalf("decision ids not time-ordered: %s after %s", d.ID, out[i-1].ID)
		}
	}
	for _, d := range out[:2] {
		// A generated application id must be one the contract accepts.
		a := schemas.Application{ApplicationID: d.ApplicationID, Income: 1, CreditScore: 700, LoanAmount: 1}
		// It is the decision's own id: one id per row.
		if d.ApplicationID == "" || a.Validate() != nil || d.ApplicationID != d.ID {
			t.Fatalf("generated application id %q (decision %s): %v", d.ApplicationID, d.ID, a.Validate())
		}
	}
	if out[0].ApplicationID == out[1].ApplicationID || out[2].ApplicationID != "B" {
		t.Fatalf("application ids %q %q %q", out[0].ApplicationID, out[1].ApplicationID, out[2].ApplicationID)
	}
}

func TestBatchRunsOncePerVariantWithContributions(t *testing.T) {
	f := newFixture(t, 50, false)
	p := decision.New(decision.Config{Router: &f.router})
	var ins []decision.Input
	for i := range 100 {
		ins = append(ins, input(fmt.Sprintf("A-%d", i), float64(1000*(i+1))))
	}
	out, errs := make([]decision.Decision, len(ins)), make([]error, len(ins))
	if err := p.Decide(context.Background(), "r", ins, out, errs); err != nil {
		t.Fatal(err)
	}
	if f.champion.runs.Load() != 1 || f.challenger.runs.Load() != 1 {
		t.Fatalf("runs: champion %d, challenger %d", f.champion.runs.Load(), f.challenger.runs.Load())
	}
	for i, d := range out {
		if d.ApplicationID != ins[i].Application.ApplicationID || d.Probability != float32(1000*(i+1))/100000 {
			t.Fatalf("item %d out of order: %+v", i, d)
		}
		switch d.Variant {
		case "champion":
			if d.Contributions != nil {
				t.Fatalf("a version without characteristics has contributions: %v", d.Contributions)
			}
		case "challenger":
			c := d.ContributionsByName()
			if c["income"] != float32(1000*(i+1))/1e6 || c["years"] != 0.5 || len(c) != 2 || len(d.Characteristics) != 2 {
				t.Fatalf("item %d contributions %v", i, d.Contributions)
			}
		}
	}
}

func TestNonFiniteScoreIsAnItemError(t *testing.T) {
	f := newFixture(t, 0, false)
	rec := &recorder{}
	p := decision.New(decision.Config{Router: &f.router, Recorder: rec})
	ins := []decision.Input{input("A", 60000), input("NaN", 666), input("C", 1)}
	out, errs := make([]decision.Decision, 3), make([]error, 3)
	if err := p.Decide(context.Background(), "r", ins, out, errs); err != nil {
		t.Fatal(err)
	}
	if errs[0] != nil || !errors.Is(errs[1], decision.ErrBadScore) || errs[2] != nil {
		t.Fatalf("errs %v", errs)
	}
	if len(rec.got) != 2 || rec.got[0].ApplicationID != "A" || rec.got[1].ApplicationID != "C" {
		t.Fatalf("recorded %+v", rec.got)
	}
	// No NaN reaches a metric.
	mfs, _ := f.reg.Gather()
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			if h := m.GetHistogram(); h != nil && math.IsNaN(h.GetSampleSum()) {
				t.Fatalf("%s has a NaN sum", mf.GetName())
			}
		}
	}
}

func TestRecordFailureFailsTheCall(t *testing.T) {
	f := newFixture(t, 0, true)
	m := &mirror{}
	obs := &observer{}
	p := decision.New(decision.Config{Router: &f.router, Recorder: &recorder{err: errors.New("disk full")}, Mirror: m,
		Observers: []decision.Observer{obs}})
	in := input("A", 60000)
	if _, err := p.DecideOne(context.Background(), "r", &in); !errors.Is(err, decision.ErrUnrecorded) {
		t.Fatalf("want ErrUnrecorded, got %v", err)
	}
	if obs.seen.Load() != 0 || len(m.offered) != 0 {
		t.Fatal("an unrecorded decision was observed or mirrored")
	}
	if f.table.Champion.Version.Closed() {
		t.Fatal("references leaked or over-released")
	}
}

func TestNotReadyAndRetiredVersions(t *testing.T) {
	var r routing.Router
	p := decision.New(decision.Config{Router: &r})
	in := input("A", 1)
	if _, err := p.DecideOne(context.Background(), "r", &in); !errors.Is(err, decision.ErrNotReady) {
		t.Fatalf("want ErrNotReady, got %v", err)
	}
	old := newFixture(t, 0, false).table
	r.Publish(old)
	next := newFixture(t, 0, false).table
	r.Publish(next)
	old.Champion.Version.Release() // retired between the table load and the acquire
	d, err := p.DecideOne(context.Background(), "r", &in)
	if err != nil || d.Version != "1" {
		t.Fatal(d, err)
	}
	next.Champion.Version.Release()
	if !next.Champion.Version.Closed() {
		t.Fatal("the path kept a reference")
	}
}

func TestShadowCountsWhatItCannotDecide(t *testing.T) {
	f := newFixture(t, 0, true)
	m := &mirror{}
	rec := &recorder{}
	p := decision.New(decision.Config{Router: &f.router, Mirror: m, Recorder: rec})
	ins := []decision.Input{input("A", 60000), input("B", 666)}
	out, errs := make([]decision.Decision, 2), make([]error, 2)
	if err := p.Decide(context.Background(), "req-9", ins, out, errs); err != nil {
		t.Fatal(err)
	}
	if len(m.offered) != 1 || m.offered[0].ApplicationID != "A" {
		t.Fatalf("offered %+v", m.offered)
	}
	served := []decision.Decision{out[0], {ApplicationID: "B", RequestID: "req-9"}}
	err := p.Shadow(context.Background(), f.table, []schemas.Application{ins[0].Application, ins[1].Application}, served)
	if !errors.Is(err, decision.ErrBadScore) {
		t.Fatalf("want ErrBadScore, got %v", err)
	}
	if got := counter(t, f.reg, "model_shadow_predictions_total", "error"); got != 1 {
		t.Fatalf("shadow errors %v", got)
	}
	if got := counter(t, f.reg, "model_shadow_predictions_total", "true"); got != 1 {
		t.Fatalf("shadow agreements %v", got)
	}
	last := rec.got[len(rec.got)-1]
	if last.Variant != "shadow" || last.Served || last.RequestID != "req-9" || last.ApplicationID != "A" || last.Version != "3" {
		t.Fatalf("shadow decision %+v", last)
	}
	// A shadow retired before its queued copies are decided: counted too.
	f.table.Shadow.Version.Release()
	if err := p.Shadow(context.Background(), f.table, []schemas.Application{ins[0].Application}, served[:1]); err == nil {
		t.Fatal("a retired shadow decided")
	}
	if got := counter(t, f.reg, "model_shadow_predictions_total", "error"); got != 2 {
		t.Fatalf("shadow errors %v", got)
	}
}

func TestServingCheckComparesContributions(t *testing.T) {
	v := models.NewVersion("m", "1", "", "", features, &scorer{characteristics: []string{"income", "years"}})
	check := models.ServingCheck{Tolerance: 1e-6, Cases: []models.ServingCase{{
		Input:       map[string]float64{"income": 60000, "credit_score": 700, "loan_amount": 1, "years_employed": 5, "points": 1},
		Probability: 0.6, Approve: true, Contributions: map[string]float64{"income": 0.06, "years": 0.5},
	}}}
	if err := decision.ServingCheck(v, check); err != nil {
		t.Fatal(err)
	}
	for name, change := range map[string]func(c *models.ServingCase){
		"contribution off": func(c *models.ServingCase) { c.Contributions = map[string]float64{"income": 0.07, "years": 0.5} },
		"unknown name":     func(c *models.ServingCase) { c.Contributions = map[string]float64{"income": 0.06, "salary": 0.5} },
		"one missing":      func(c *models.ServingCase) { c.Contributions = map[string]float64{"income": 0.06} },
		"probability off":  func(c *models.ServingCase) { c.Probability = 0.61 },
		"decision differs": func(c *models.ServingCase) { c.Approve = false },
	} {
		bad := models.ServingCheck{Tolerance: check.Tolerance, Cases: []models.ServingCase{check.Cases[0]}}
		change(&bad.Cases[0])
		if err := decision.ServingCheck(v, bad); err == nil {
			t.Errorf("%s: serving check passed", name)
		}
	}
	// An older check without contributions claims nothing about them.
	old := models.ServingCheck{Cases: []models.ServingCase{check.Cases[0]}}
	old.Cases[0].Contributions = nil
	if err := decision.ServingCheck(v, old); err != nil {
		t.Fatal(err)
	}
	v.Release()
	if !v.Closed() {
		t.Fatal("the check kept a reference")
	}
}

// counter sums the series of a counter whose decision or agree label is label.
func counter(t *testing.T, reg *prometheus.Registry, name, label string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var total float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if (l.GetName() == "decision" || l.GetName() == "agree") && l.GetValue() == label {
					total += m.GetCounter().GetValue()
				}
			}
		}
	}
	return total
}

// TestBuffersComeBackZeroed: a pooled call's buffers keep nothing of the
// call that used them before, whatever its size.
func TestBuffersComeBackZeroed(t *testing.T) {
	for _, n := range []int{8, 3, 8, 16} {
		b := decision.GetBuffers(n)
		if len(b.Ins) != n || len(b.Out) != n || len(b.Errs) != n {
			t.Fatalf("GetBuffers(%d): %d %d %d", n, len(b.Ins), len(b.Out), len(b.Errs))
		}
		for i := range n {
			if b.Out[i].ID != "" || b.Ins[i].JSON != nil || b.Errs[i] != nil {
				t.Fatalf("GetBuffers(%d): item %d not zero", n, i)
			}
			b.Out[i].ID, b.Ins[i].JSON, b.Errs[i] = "x", []byte("{}"), decision.ErrBadScore
		}
		b.Put()
	}
}

func TestPinnedVersionServesOnlyChampionOrChallenger(t *testing.T) {
	f := newFixture(t, 10, true)
	rec := &recorder{}
	p := decision.New(decision.Config{Router: &f.router, Recorder: rec})
	decide := func(version string) (decision.Decision, error) {
		ins := []decision.Input{input("A", 60000)}
		out, errs := make([]decision.Decision, 1), make([]error, 1)
		err := p.DecideWith(context.Background(), "r", decision.Options{Version: version, Together: true}, ins, out, errs)
		return out[0], err
	}
	for _, v := range []string{"1", "2"} {
		if d, err := decide(v); err != nil || d.Version != v || !d.Served {
			t.Fatalf("pinned %s: %+v, %v", v, d, err)
		}
	}
	if _, err := decide("3"); !errors.Is(err, decision.ErrShadowOnly) {
		t.Fatalf("pinned shadow: want ErrShadowOnly, got %v", err)
	}
	if _, err := decide("9"); !errors.Is(err, decision.ErrUnknownVersion) {
		t.Fatalf("pinned unknown: want ErrUnknownVersion, got %v", err)
	}
	if len(rec.got) != 2 {
		t.Fatalf("recorded %d decisions, want the 2 served", len(rec.got))
	}
}

func TestTogetherFallsBackToTheChampionWhenThePickDoesNotFit(t *testing.T) {
	f := newFixture(t, 100, false) // every routed pick is the challenger
	p := decision.New(decision.Config{Router: &f.router})
	notChallenger := func(v *models.Version) bool { return v.Number != "2" }
	ins := []decision.Input{input("A", 60000), input("B", 1)}
	out, errs := make([]decision.Decision, 2), make([]error, 2)
	opt := decision.Options{Together: true, Fits: notChallenger}
	if err := p.DecideWith(context.Background(), "r", opt, ins, out, errs); err != nil {
		t.Fatal(err)
	}
	if out[0].Version != "1" || out[1].Version != "1" {
		t.Fatalf("decided by %s and %s, want the champion 1", out[0].Version, out[1].Version)
	}
	opt.Fits = func(*models.Version) bool { return false }
	if err := p.DecideWith(context.Background(), "r", opt, ins, out, errs); !errors.Is(err, decision.ErrNoVersionFits) {
		t.Fatalf("want ErrNoVersionFits, got %v", err)
	}
	opt = decision.Options{Version: "2", Fits: notChallenger}
	if err := p.DecideWith(context.Background(), "r", opt, ins, out, errs); !errors.Is(err, decision.ErrNoVersionFits) {
		t.Fatalf("pinned: want ErrNoVersionFits, got %v", err)
	}
}

func TestTogetherDecidesAllOrNone(t *testing.T) {
	f := newFixture(t, 0, true)
	rec, m, obs := &recorder{}, &mirror{}, &observer{}
	p := decision.New(decision.Config{Router: &f.router, Recorder: rec, Mirror: m, Observers: []decision.Observer{obs}})
	ins := []decision.Input{input("A", 60000), input("NaN", 666)}
	out, errs := make([]decision.Decision, 2), make([]error, 2)
	err := p.DecideWith(context.Background(), "r", decision.Options{Together: true}, ins, out, errs)
	if !errors.Is(err, decision.ErrBadScore) || !errors.Is(errs[1], decision.ErrBadScore) || errs[0] != nil {
		t.Fatalf("want ErrBadScore for input 1, got %v (%v)", err, errs)
	}
	if len(rec.got) != 0 || obs.seen.Load() != 0 || len(m.offered) != 0 {
		t.Fatalf("a refused call recorded %d, observed %d, mirrored %d", len(rec.got), obs.seen.Load(), len(m.offered))
	}
}

// A decline must carry its reasons: one whose every characteristic is in
// its best band (the table gives none) is not decided.
func TestDeclineWithNoReasonIsNotDecided(t *testing.T) {
	table, err := reasons.Parse([]byte(`{"format_version":1,"threshold":0.5,"characteristics":[
	 {"name":"income","field":"income","value":{"field":"income"},"value_format":"currency","direction":"increasing","code":"INC",
	  "bands":[{"lower":null,"upper":30000,"contribution":0,"text":"Income below $30,000"},{"lower":30000,"upper":null,"contribution":0.04,"text":null}]},
	 {"name":"years","field":"years_employed","value":{"field":"years_employed"},"value_format":"years","direction":"increasing","code":"EMP",
	  "bands":[{"lower":null,"upper":3,"contribution":0,"text":"Employed under 3 years"},{"lower":3,"upper":null,"contribution":0.5,"text":null}]}]}`))
	if err != nil {
		t.Fatal(err)
	}
	var router routing.Router
	v := models.NewVersion("loan-approval", "1", "sha", "artifacts", features, &scorer{characteristics: []string{"income", "years"}})
	v.Reasons = table
	tab, err := routing.NewTable("loan-approval", &routing.Route{Variant: routing.Champion, Version: v}, nil, nil, routing.Weights{Champion: 100})
	if err != nil {
		t.Fatal(err)
	}
	router.Publish(tab)
	rec := &recorder{}
	p := decision.New(decision.Config{Router: &router, Recorder: rec})
	ins := []decision.Input{input("best", 40000), input("short", 10000)}
	out, errs := make([]decision.Decision, 2), make([]error, 2)
	if err := p.Decide(context.Background(), "r", ins, out, errs); err != nil {
		t.Fatal(err)
	}
	if !errors.Is(errs[0], decision.ErrNoReasons) {
		t.Fatalf("a decline with no reason: %v, %+v", errs[0], out[0].Reasons)
	}
	if errs[1] != nil || out[1].Approve || len(out[1].Reasons) != 1 || out[1].Reasons[0].Code != "INC" {
		t.Fatalf("a decline with a reason: %v, %+v", errs[1], out[1])
	}
	if len(rec.got) != 1 || rec.got[0].ApplicationID != "short" {
		t.Fatalf("recorded %+v", rec.got)
	}
}

// A graph whose label disagrees with its probability against the version's
// threshold (a reasons table that names another threshold than the graph
// was built with) fails the serving check, even when the training run's
// recorded case agrees with the graph.
func TestServingCheckComparesTheLabelWithTheThreshold(t *testing.T) {
	v := models.NewVersion("m", "1", "", "", features, &scorer{}) // approves above 0.5
	defer v.Release()
	check := models.ServingCheck{Cases: []models.ServingCase{{
		Input:       map[string]float64{"income": 60000, "credit_score": 700, "loan_amount": 1, "years_employed": 5, "points": 1},
		Probability: 0.6, Approve: true,
	}}}
	if err := decision.ServingCheck(v, check); err != nil {
		t.Fatal(err)
	}
	v.Threshold = 0.7
	if err := decision.ServingCheck(v, check); err == nil || !strings.Contains(err.Error(), "threshold") {
		t.Fatalf("label 1 at 0.6 with threshold 0.7: %v", err)
	}
}

// A pretty-printed application is recorded compact: the export is one
// decision per line.
func TestPrettyInputsAreRecordedOnOneLine(t *testing.T) {
	f := newFixture(t, 0, false)
	rec := &recorder{}
	p := decision.New(decision.Config{Router: &f.router, Recorder: rec})
	pretty := input("A", 60000)
	pretty.JSON = []byte("{\r\n  \"application_id\": \"A\",\n  \"income\": 60000,\n  \"note\": \"a b\"\n}")
	plain := input("B", 60000)
	ins := []decision.Input{pretty, plain}
	out, errs := make([]decision.Decision, 2), make([]error, 2)
	if err := p.Decide(context.Background(), "r", ins, out, errs); err != nil {
		t.Fatal(err)
	}
	if got := string(rec.got[0].Inputs); got != `{"application_id":"A","income":60000,"note":"a b"}` {
		t.Fatalf("recorded %q", got)
	}
	if got := string(rec.got[1].Inputs); got != string(plain.JSON) {
		t.Fatalf("recorded %q, want %q", got, plain.JSON)
	}
}

// TestIDTimeIsTheDecisionsTime: an id carries the millisecond of its
// decision's recorded time, also when the clock is stepped back between two
// calls (uuid.NewV7's ids would stay ahead of the clock).
func TestIDTimeIsTheDecisionsTime(t *testing.T) {
	f := newFixture(t, 0, false)
	t0 := time.Date(2026, 12, 3, 12, 0, 5, 987654321, time.UTC)
	clock := []time.Time{t0, t0.Add(-5 * time.Second), t0.Add(-5*time.Second + 1500*time.Microsecond)}
	var calls atomic.Int64
	p := decision.New(decision.Config{Router: &f.router, Now: func() time.Time { return clock[calls.Add(1)-1] }})
	for range clock {
		ins := []decision.Input{input("", 60000), input("B", 1)}
		out, errs := make([]decision.Decision, 2), make([]error, 2)
		if err := p.Decide(context.Background(), "r", ins, out, errs); err != nil {
			t.Fatal(err)
		}
		for _, d := range out {
			canonical, at, ok := decision.IDTime(strings.ToUpper(d.ID))
			if !ok || canonical != d.ID || !at.Equal(d.Time.Truncate(time.Millisecond)) {
				t.Fatalf("IDTime(%s) = %q %v %v; the decision's time is %v", d.ID, canonical, at, ok, d.Time)
			}
		}
	}
	ids := make([]string, 1)
	decision.NewIDs(ids, t0)
	for _, id := range []string{"", "x", uuid.NewString(), strings.ReplaceAll(ids[0], "-", ""), "{" + ids[0] + "}"} {
		if _, _, ok := decision.IDTime(id); ok {
			t.Errorf("IDTime(%q) took it", id)
		}
	}
}
