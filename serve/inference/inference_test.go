package inference_test

import (
	"bufio"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"

	"mlservice/internal/servetest"
	"mlservice/serve/inference"
)

func open(t testing.TB, version string) *inference.Session {
	t.Helper()
	if err := inference.Init(servetest.ORTLibrary(t)); err != nil {
		t.Fatal(err)
	}
	s, err := inference.Open(filepath.Join(servetest.ModuleRoot(), "artifacts", "loan-approval", "versions", version, "model.onnx"), inference.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func randomRows(r *rand.Rand, rows, columns int) []float32 {
	x := make([]float32, rows*columns)
	for i := range x {
		x[i] = float32(r.IntN(150000))
	}
	return x
}

func TestOneRowAndBatchAgree(t *testing.T) {
	for _, version := range []string{"1", "2"} {
		s := open(t, version)
		r := rand.New(rand.NewPCG(1, 2))
		const rows = 300
		x := randomRows(r, rows, s.Columns())
		batchP, batchA := make([]float32, rows), make([]bool, rows)
		if err := s.Score(x, batchP, batchA); err != nil {
			t.Fatal(err)
		}
		for i := range rows {
			p, a := make([]float32, 1), make([]bool, 1)
			if err := s.Score(x[i*s.Columns():(i+1)*s.Columns()], p, a); err != nil {
				t.Fatal(err)
			}
			if p[0] != batchP[i] || a[0] != batchA[i] {
				t.Fatalf("version %s row %d: one-row (%v,%v) != batch (%v,%v)", version, i, p[0], a[0], batchP[i], batchA[i])
			}
			if p[0] < 0 || p[0] > 1 {
				t.Fatalf("probability %v out of [0,1]", p[0])
			}
		}
	}
}

func TestConcurrentScoringIsSafe(t *testing.T) {
	s := open(t, "2")
	r := rand.New(rand.NewPCG(3, 4))
	const rows = 64
	x := randomRows(r, rows, s.Columns())
	want := make([]float32, rows)
	if err := s.Score(x, want, make([]bool, rows)); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p, a := make([]float32, 1), make([]bool, 1)
			for i := range 400 {
				row := (g*400 + i) % rows
				if err := s.Score(x[row*s.Columns():(row+1)*s.Columns()], p, a); err != nil {
					errs <- err
					return
				}
				if p[0] != want[row] {
					errs <- errors.New("row " + strconv.Itoa(row) + " scored differently under concurrency")
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func TestRejectsWrongShapes(t *testing.T) {
	s := open(t, "1")
	if err := s.Score(make([]float32, s.Columns()+1), make([]float32, 1), make([]bool, 1)); err == nil {
		t.Fatal("a row of the wrong width was scored")
	}
	if err := s.Score(nil, nil, nil); err == nil {
		t.Fatal("zero rows were scored")
	}
	bad := filepath.Join(t.TempDir(), "model.onnx")
	if err := os.WriteFile(bad, []byte("not onnx"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := inference.Open(bad, inference.Options{}); !errors.Is(err, inference.ErrUnsupportedModel) {
		t.Fatalf("want ErrUnsupportedModel, got %v", err)
	}
}

// TestNativeMemoryStaysBounded scores 100,000 requests (one-row runs, as
// /v1/predict does, plus batches) and checks the resident set stops growing
// after warm-up: every native value is released and nothing is allocated
// again per request.
func TestNativeMemoryStaysBounded(t *testing.T) {
	if testing.Short() {
		t.Skip("100,000 model runs")
	}
	s := open(t, "2")
	r := rand.New(rand.NewPCG(5, 6))
	x := randomRows(r, 1024, s.Columns())
	p, a := make([]float32, 1024), make([]bool, 1024)
	run := func(n int) {
		for i := range n {
			row := i % 1024
			if err := s.Score(x[row*s.Columns():(row+1)*s.Columns()], p[:1], a[:1]); err != nil {
				t.Fatal(err)
			}
			if i%1000 == 0 {
				if err := s.Score(x, p, a); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
	run(10000) // warm-up: arenas and runner pool reach their size
	runtime.GC()
	before := rssKB(t)
	run(50000)
	runtime.GC()
	mid := rssKB(t)
	run(50000)
	runtime.GC()
	after := rssKB(t)
	t.Logf("RSS half-way %d KiB", mid)
	t.Logf("RSS after warm-up %d KiB, after 100,000 requests %d KiB", before, after)
	// A leak of one native value per request would add tens of MiB, growing
	// as fast in the second half as in the first.
	if after-before > 16*1024 || after-mid > 8*1024 {
		t.Fatalf("RSS grew by %d KiB over 100,000 requests (%d KiB in the second half)", after-before, after-mid)
	}
}

func rssKB(t *testing.T) int {
	t.Helper()
	f, err := os.Open("/proc/self/status")
	if err != nil {
		t.Skip("no /proc on this system")
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			n, _ := strconv.Atoi(strings.Fields(rest)[0])
			return n
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// openScorecard opens testdata/scorecard (make_scorecard.py): a model with
// contrib_* outputs, loan_to_income computed inside the graph.
func openScorecard(t testing.TB) *inference.Session {
	t.Helper()
	if err := inference.Init(servetest.ORTLibrary(t)); err != nil {
		t.Fatal(err)
	}
	s, err := inference.Open(filepath.Join("testdata", "scorecard", "model.onnx"), inference.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestContributionsComeFromTheSameRun(t *testing.T) {
	s := openScorecard(t)
	want := []string{"income", "credit_score", "years_employed", "loan_to_income"}
	if got := s.Characteristics(); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("characteristics %v, want %v", got, want)
	}
	if got := open(t, "2").Characteristics(); got != nil {
		t.Fatalf("a model without contrib_* outputs has characteristics %v", got)
	}
	r := rand.New(rand.NewPCG(7, 8))
	const rows = 200
	k := len(want)
	x := make([]float32, rows*4)
	for i := range rows {
		x[4*i], x[4*i+1], x[4*i+2], x[4*i+3] = float32(30000+r.IntN(120000)), float32(300+r.IntN(550)), float32(1000+r.IntN(49000)), float32(r.IntN(40))
	}
	bp, ba, bc := make([]float32, rows), make([]bool, rows), make([]float32, rows*k)
	if err := s.ScoreContributions(x, bp, ba, bc); err != nil {
		t.Fatal(err)
	}
	for i := range rows {
		p, a, c := make([]float32, 1), make([]bool, 1), make([]float32, k)
		if err := s.ScoreContributions(x[4*i:4*i+4], p, a, c); err != nil {
			t.Fatal(err)
		}
		if p[0] != bp[i] || a[0] != ba[i] || fmt.Sprint(c) != fmt.Sprint(bc[i*k:(i+1)*k]) {
			t.Fatalf("row %d: one-row (%v %v %v) != batch (%v %v %v)", i, p[0], a[0], c, bp[i], ba[i], bc[i*k:(i+1)*k])
		}
		// probability = sigmoid(intercept + Σ contributions), per the contract.
		logit := -0.5
		for _, v := range c {
			logit += float64(v)
		}
		if d := math.Abs(1/(1+math.Exp(-logit)) - float64(p[0])); d > 1e-6 {
			t.Fatalf("row %d: probability %v is not sigmoid of the contributions (Δ %g)", i, p[0], d)
		}
		// loan_to_income is computed in the graph from loan_amount / income.
		if lti := -4 * float64(x[4*i+2]) / float64(x[4*i]); math.Abs(lti-float64(c[3])) > 1e-5 {
			t.Fatalf("row %d: contrib_loan_to_income %v, want %v", i, c[3], lti)
		}
	}
	if err := s.ScoreContributions(x[:4], bp[:1], ba[:1], bc[:1]); err == nil {
		t.Fatal("too few contribution slots accepted")
	}
}

// TestOneRowContributionsAddNoAllocations: the one-row fast path reads the
// contributions from pre-created tensors, so asking for them allocates
// nothing more than a plain score.
func TestOneRowContributionsAddNoAllocations(t *testing.T) {
	s := openScorecard(t)
	x := []float32{60000, 700, 20000, 5}
	p, a, c := make([]float32, 1), make([]bool, 1), make([]float32, 4)
	plain := testing.AllocsPerRun(200, func() { _ = s.Score(x, p, a) })
	with := testing.AllocsPerRun(200, func() { _ = s.ScoreContributions(x, p, a, c) })
	t.Logf("allocations per one-row run: %v plain, %v with contributions", plain, with)
	if with > plain {
		t.Fatalf("contributions cost %v allocations per one-row run, a plain score %v", with, plain)
	}
}
