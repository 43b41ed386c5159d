package reasons_test

// The reasons are true of the real model: for every shipped version with a
// reasons table, the ONNX graph (through ONNX Runtime, as the server runs it)
// is scored on declined applicants across the contract's input space, and
// improving the field each reason names, alone, to its best band never
// lowers the probability, and that reason goes away.

import (
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mlservice/internal/servetest"
	"mlservice/schemas"
	"mlservice/serve/decision"
	"mlservice/serve/inference"
	"mlservice/serve/models"
	"mlservice/serve/reasons"
)

// artifactsDir is the shipped artifacts (ARTIFACTS_DIR overrides, to check
// versions not yet in the repository).
func artifactsDir() string {
	if d := os.Getenv("REASONS_ARTIFACTS_DIR"); d != "" {
		return d
	}
	return filepath.Join(servetest.ModuleRoot(), "artifacts")
}

func TestReasonsAreTrueOfTheShippedModels(t *testing.T) {
	dirs, _ := filepath.Glob(filepath.Join(artifactsDir(), "*", "versions", "*", reasons.FileName))
	if len(dirs) == 0 {
		t.Fatal("no shipped version has a reasons table (artifacts/*/versions/*/reasons.json): the champion must give reasons")
	}
	if err := inference.Init(servetest.ORTLibrary(t)); err != nil {
		t.Fatal(err)
	}
	for _, tablePath := range dirs {
		dir := filepath.Dir(tablePath)
		t.Run(filepath.Base(filepath.Dir(filepath.Dir(dir)))+"/"+filepath.Base(dir), func(t *testing.T) {
			md, err := models.ReadModelDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			s, err := inference.Open(md.ModelFile, inference.Options{IntraOpThreads: 1})
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			chars := s.Characteristics()
			table, err := reasons.Load(dir, chars)
			if err != nil {
				t.Fatal(err)
			}
			if err := reasons.CanDecide(table, chars); err != nil {
				t.Fatal(err)
			}
			features := make([]schemas.Feature, len(md.Inputs))
			for i, name := range md.Inputs {
				f, ok := schemas.FeatureByName(name)
				if !ok {
					t.Fatalf("input %q", name)
				}
				features[i] = f
			}
			score := func(a *schemas.Application) (float32, []float32) {
				x := make([]float32, len(features))
				for i, f := range features {
					x[i] = float32(a.Value(f))
				}
				p, ok, c := []float32{0}, []bool{false}, make([]float32, len(chars))
				if err := s.ScoreContributions(x, p, ok, c); err != nil {
					t.Fatal(err)
				}
				return p[0], c
			}
			rng := rand.New(rand.NewPCG(7, 15))
			declines, checked := 0, 0
			for range 4000 {
				a := schemas.Application{
					Income:        8000 + rng.Float64()*200000,
					CreditScore:   300 + rng.Float64()*600,
					LoanAmount:    500 + rng.Float64()*120000,
					YearsEmployed: float64(rng.IntN(35)),
				}
				p, contrib := score(&a)
				if p >= float32(table.Threshold) {
					continue
				}
				declines++
				rs := table.Explain(&a, contrib)
				if len(rs) == 0 || len(rs) > reasons.MaxReasons {
					t.Fatalf("a decline (p %v) with %d reasons: %+v", p, len(rs), a)
				}
				for _, r := range rs {
					var ch *reasons.Characteristic
					for i := range table.Characteristics {
						if table.Characteristics[i].Code == r.Code {
							ch = &table.Characteristics[i]
						}
					}
					better, ok := ch.Improve(&a)
					if !ok {
						t.Fatalf("%s: %s alone cannot reach the best band", r.Code, r.Feature)
					}
					p2, c2 := score(&better)
					if p2 < p {
						t.Fatalf("%s: improving %s alone to its best band lowered p from %v to %v\n%+v\n%+v", r.Code, r.Feature, p, p2, a, better)
					}
					for _, r2 := range table.Explain(&better, c2) {
						if r2.Code == r.Code {
							t.Fatalf("%s: still a reason after moving %s to its best band (%+v)", r.Code, r.Feature, better)
						}
					}
					checked++
				}
			}
			if declines < 200 || checked < 200 {
				t.Fatalf("only %d declines and %d reasons checked", declines, checked)
			}
			t.Logf("%d declines, %d reasons checked against the model", declines, checked)
		})
	}
}

// TestServingCheckVerifiesReasonCodes: a shipped version's serving check
// passes with the reason codes the training run recorded, and fails when a
// declined case's codes differ (wrong order, one missing).
func TestServingCheckVerifiesReasonCodes(t *testing.T) {
	dirs, _ := filepath.Glob(filepath.Join(artifactsDir(), "*", "versions", "*", reasons.FileName))
	if len(dirs) == 0 {
		t.Fatal("no shipped version has a reasons table (artifacts/*/versions/*/reasons.json): the champion must give reasons")
	}
	if err := inference.Init(servetest.ORTLibrary(t)); err != nil {
		t.Fatal(err)
	}
	for _, tablePath := range dirs {
		dir := filepath.Dir(tablePath)
		t.Run(filepath.Base(dir), func(t *testing.T) {
			md, err := models.ReadModelDir(dir)
			if err != nil {
				t.Fatal(err)
			}
			s, err := inference.Open(md.ModelFile, inference.Options{IntraOpThreads: 1})
			if err != nil {
				t.Fatal(err)
			}
			features := make([]schemas.Feature, len(md.Inputs))
			for i, name := range md.Inputs {
				features[i], _ = schemas.FeatureByName(name)
			}
			v := models.NewVersion("loan-approval", filepath.Base(dir), "", "test", features, s)
			defer v.Release()
			if v.Reasons, err = reasons.Load(dir, v.Characteristics); err != nil {
				t.Fatal(err)
			}
			if err := decision.ServingCheck(v, md.Check); err != nil {
				t.Fatalf("the shipped serving check fails: %v", err)
			}
			declined := -1
			for i, c := range md.Check.Cases {
				if !c.Approve && len(c.Reasons) > 1 {
					declined = i
					break
				}
			}
			if declined < 0 {
				t.Fatal("the serving check has no declined case with two or more reasons")
			}
			for name, mutate := range map[string]func([]string) []string{
				"swapped": func(r []string) []string { return append([]string{r[1], r[0]}, r[2:]...) },
				"missing": func(r []string) []string { return r[1:] },
			} {
				check := md.Check
				check.Cases = append([]models.ServingCase(nil), md.Check.Cases...)
				check.Cases[declined].Reasons = mutate(append([]string(nil), md.Check.Cases[declined].Reasons...))
				err := decision.ServingCheck(v, check)
				if err == nil || !strings.Contains(err.Error(), "reasons") {
					t.Errorf("%s reason codes: serving check says %v", name, err)
				}
			}
		})
	}
}
