package batch_test

import (
	"context"
	"encoding/csv"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"mlservice/internal/servetest"
	"mlservice/legacy/batch"
	"mlservice/legacy/client"
	"mlservice/legacy/internal/legacytest"
)

// TestBatchMatchesOneByOne decides the whole dataset in chunks and checks
// every decision against POST /v1/predict for the same application.
func TestBatchMatchesOneByOne(t *testing.T) {
	svc := servetest.Start(t, servetest.Options{})
	api := &client.Client{BaseURL: svc.URL, HTTP: &http.Client{Timeout: 30 * time.Second}}
	dataset := legacytest.Dataset(t)
	out := filepath.Join(t.TempDir(), "decisions.csv")
	job := &batch.Job{In: dataset, Out: out, ChunkSize: 500, Decider: api}
	sum, err := job.Run(context.Background())
	if err != nil {
		t.Fatalf("%v (%v)", err, sum)
	}

	f, err := os.Open(dataset)
	if err != nil {
		t.Fatal(err)
	}
	rows, err := batch.ReadExport(f)
	f.Close()
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 2000 || sum.Decided != 2000 {
		t.Fatalf("%d rows read, %v", len(rows), sum)
	}
	decided := readCSV(t, out)
	if len(decided) != len(rows) {
		t.Fatalf("%d decisions for %d rows", len(decided), len(rows))
	}
	byID := map[string][]string{}
	for _, d := range decided {
		byID[d[1]] = d
	}
	ctx := context.Background()
	for _, r := range rows {
		d, ok := byID[r.ID]
		if !ok {
			t.Fatalf("line %d (%s): no decision", r.Line, r.ID)
		}
		one, err := api.Decide(ctx, r.Application)
		if err != nil {
			t.Fatalf("line %d: %v", r.Line, err)
		}
		want := []string{strconv.Itoa(r.Line), r.ID, r.Name, strconv.FormatBool(one.Approve),
			strconv.FormatFloat(one.Probability, 'g', -1, 64), one.Model.Name, one.Model.Version, one.Model.Variant}
		for i, w := range want {
			if d[i] != w {
				t.Fatalf("line %d column %d: batch %q, one by one %q\nbatch: %v\none:   %v", r.Line, i, d[i], w, d, want)
			}
		}
	}
}

// readCSV returns a file's rows without its header.
func readCSV(t *testing.T, path string) [][]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	all, err := csv.NewReader(f).ReadAll()
	if err != nil {
		t.Fatal(err)
	}
	return all[1:]
}
