package inference_test

import (
	"bufio"
	"errors"
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
