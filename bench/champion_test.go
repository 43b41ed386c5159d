package bench

import (
	"context"
	"encoding/json"
	"io/fs"
	"strconv"
	"strings"
	"testing"

	"mlservice/artifacts"
	"mlservice/internal/servetest"
	"mlservice/registry"
	"mlservice/registry/local"
	"mlservice/serve/decision"
	"mlservice/serve/inference"
	"mlservice/serve/models"
)

// BenchmarkChampionVsForest runs ONNX Runtime on the registry's champion
// (the scorecard) and on the old random forest (the version whose description
// starts with "random_forest;") in the same run: single-row latency (batch=1,
// ns/op) and batch throughput (rows/s), the rows mapped beforehand; the
// champion's contributions are read in the same run. Issue 14, item 4.
//
//	go test -run '^$' -bench '^BenchmarkChampionVsForest$' -benchtime 2s ./bench
func BenchmarkChampionVsForest(b *testing.B) {
	champion, forest := championAndForest(b)
	for _, m := range []struct{ name, version string }{{"forest", forest}, {"champion", champion}} {
		v := loadVersion(b, m.version)
		for _, rows := range []int{1, 1000} {
			b.Run("model="+m.name+"/batch="+strconv.Itoa(rows), func(b *testing.B) {
				apps := decodedApps(b, rows)
				w := len(v.Features)
				x := make([]float32, rows*w)
				for i, a := range apps {
					v.FillRow(a, x[i*w:(i+1)*w])
				}
				probs, approve := make([]float32, rows), make([]bool, rows)
				contrib := make([]float32, rows*len(v.Characteristics)) // read in the same run
				b.ReportAllocs()
				for b.Loop() {
					if err := v.Score(x, probs, approve, contrib); err != nil {
						b.Fatal(err)
					}
				}
				b.ReportMetric(float64(b.N)*float64(rows)/b.Elapsed().Seconds(), "rows/s")
			})
		}
	}
}

// BenchmarkChampionVsForestHTTP is POST /v1/predict (one application, from
// parallel clients: ns/op is the CPU cost per request on this machine) and
// POST /v1/predict/batch with 1,000 applications (rows/s) through the real
// API in one process, with the forest and then the champion as champion.
// The champion's answers carry reasons (declines), so their cost is included.
//
//	go test -run '^$' -bench '^BenchmarkChampionVsForestHTTP$' -benchtime 2s ./bench
func BenchmarkChampionVsForestHTTP(b *testing.B) {
	champion, forest := championAndForest(b)
	for _, m := range []struct{ name, version string }{{"forest", forest}, {"champion", champion}} {
		c := inProcessVersion(b, loadVersion(b, m.version))
		b.Run("model="+m.name+"/predict", func(b *testing.B) { predictParallel(b, c) })
		b.Run("model="+m.name+"/batch=1000", func(b *testing.B) { predictBatch(b, c, 1000) })
	}
}

// championAndForest reads the embedded registry.json: the champion alias and
// the random-forest version.
func championAndForest(tb testing.TB) (champion, forest string) {
	tb.Helper()
	raw, err := fs.ReadFile(artifacts.FS, "loan-approval/registry.json")
	if err != nil {
		tb.Fatal(err)
	}
	var reg struct {
		Aliases  map[string]string `json:"aliases"`
		Versions []struct {
			Version     string `json:"version"`
			Description string `json:"description"`
		} `json:"versions"`
	}
	if err := json.Unmarshal(raw, &reg); err != nil {
		tb.Fatal(err)
	}
	for _, v := range reg.Versions {
		if strings.HasPrefix(v.Description, "random_forest;") {
			forest = v.Version
		}
	}
	champion = reg.Aliases["champion"]
	if champion == "" || forest == "" {
		tb.Fatalf("registry.json: champion %q, random forest %q", champion, forest)
	}
	return champion, forest
}

// loadVersion loads an embedded version through the real loader (sha256,
// session, signature, serving-check replay).
func loadVersion(tb testing.TB, version string) *models.Version {
	tb.Helper()
	if err := inference.Init(servetest.ORTLibrary(tb)); err != nil {
		tb.Fatal(err)
	}
	l := &models.Loader{
		Cache: &registry.Cache{Dir: tb.TempDir()},
		Open: func(path string) (models.Scorer, error) {
			return inference.Open(path, inference.Options{IntraOpThreads: 1})
		},
		Check: decision.ServingCheck,
	}
	v, err := l.Load(context.Background(), &local.Tree{FS: artifacts.FS, Name: "embedded"}, "loan-approval", version)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { v.Release() })
	return v
}
