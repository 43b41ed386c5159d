package batch_test

import (
	"context"
	"errors"
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
	decided := legacytest.Rows(t, out)
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
		// The model's sha256 and a decline's reasons (columns 10 on) match too;
		// the request and decision ids (8, 9) are the call's own.
		want = append(want, "", "", one.Model.SHA256)
		for k := range 4 {
			if k < len(one.Reasons) {
				want = append(want, one.Reasons[k].Code, one.Reasons[k].Text)
			} else {
				want = append(want, "", "")
			}
		}
		if !one.Approve && len(one.Reasons) == 0 {
			t.Fatalf("line %d: a decline without reasons from version %s", r.Line, one.Model.Version)
		}
		for i, w := range want {
			if i == 8 || i == 9 {
				continue
			}
			if d[i] != w {
				t.Fatalf("line %d column %d: batch %q, one by one %q\nbatch: %v\none:   %v", r.Line, i, d[i], w, d, want)
			}
		}
	}
}

// TestBatchAgainstTheServerWithAnOverflowingRow: against the real server, a
// row whose figures overflow the model's float32 input is that row's
// reject alone; the rest of its chunk is decided, each decision with the
// service's decision id.
func TestBatchAgainstTheServerWithAnOverflowingRow(t *testing.T) {
	svc := servetest.Start(t, servetest.Options{})
	api := &client.Client{BaseURL: svc.URL, HTTP: &http.Client{Timeout: 30 * time.Second}}
	dir := t.TempDir()
	in := filepath.Join(dir, "in.csv")
	os.WriteFile(in, []byte("application_id,income,credit_score,loan_amount,years_employed,points\n"+
		"G-1,50000,700,20000,5,60\nX-1,1e39,700,1e39,5,60\nG-2,30000,400,90000,1,10\nG-3,80000,800,10000,12,80\n"), 0o644)
	out := filepath.Join(dir, "decisions.csv")
	sum, err := (&batch.Job{In: in, Out: out, ChunkSize: 500, Decider: api}).Run(context.Background())
	if !errors.Is(err, batch.ErrRowsRejected) || errors.Is(err, batch.ErrRowsUndecided) || sum.Decided != 3 || sum.Rejected != 1 {
		t.Fatalf("%v (%v)", err, sum)
	}
	decided := legacytest.Rows(t, out)
	for _, d := range decided {
		if d[1] == "X-1" {
			t.Fatalf("the overflowing row was decided: %q", d)
		}
		if d[9] == "" {
			t.Errorf("%s has no decision_id: %q", d[1], d)
		}
	}
	rejects := legacytest.Rows(t, filepath.Join(dir, "decisions.rejects.csv"))
	if len(rejects) != 1 || rejects[0][1] != "X-1" || rejects[0][4] != "no" {
		t.Fatalf("rejects %q", rejects)
	}
	t.Logf("the service on the overflowing row: %s", rejects[0][3])
}
