package record

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"mlservice/serve/decision"
)

// TestLoaderMergesSinglePredictions: single predictions, one decide call
// each, some with a shadow beside them and a batch among them, are stored in
// far fewer groups than calls, and still read, index, export and purge as
// the decisions they are, each at its own time.
func TestLoaderMergesSinglePredictions(t *testing.T) {
	dir := t.TempDir()
	store, err := OpenSQLite(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	base := time.Date(2026, 6, 1, 9, 0, 0, 0, time.UTC)
	rec := New(store, Config{Now: func() time.Time { return base.Add(time.Hour) }, IndexEvery: time.Hour})
	defer rec.Close()
	ctx := context.Background()
	const calls = 300
	var all []decision.Decision
	for i := range calls {
		at := base.Add(time.Duration(i) * 700 * time.Microsecond) // 300 calls over 210 ms: more than one merge span
		ds := []decision.Decision{sample(fmt.Sprintf("M-%d", i%10), at, true)}
		ds[0].Approve = i%4 == 0
		if i%3 == 0 { // a shadow decides the same application at the same time
			ds = append(ds, sample(ds[0].ApplicationID, at, false))
		}
		if i == calls/2 { // and a batch (not merged) among them
			for j := range 40 {
				ds = append(ds, sample(fmt.Sprintf("MB-%d", j), at, true))
			}
		}
		if err := rec.Record(ctx, ds); err != nil {
			t.Fatal(err)
		}
		all = append(all, ds...)
	}
	// Reads by application: every decision, every field, newest first.
	for app := range 10 {
		id := fmt.Sprintf("M-%d", app)
		got := docs(t, store, id)
		var want []Document
		for _, d := range all {
			if d.ApplicationID == id {
				want = append(want, wantDocument(d))
			}
		}
		if len(got) != len(want) {
			t.Fatalf("%s: %d decisions, want %d", id, len(got), len(want))
		}
		for i := 1; i < len(got); i++ {
			if got[i].Time.After(got[i-1].Time) {
				t.Fatalf("%s: %s at %s after %s: not newest first", id, got[i].DecisionID, got[i].Time, got[i-1].Time)
			}
		}
		// A served decision and its shadow share a time: compare in one order.
		byTimeThenID := func(a, b Document) int {
			return cmp.Or(a.Time.Compare(b.Time), cmp.Compare(a.DecisionID, b.DecisionID))
		}
		slices.SortFunc(got, byTimeThenID)
		slices.SortFunc(want, byTimeThenID)
		for i := range want {
			got[i].Inputs, want[i].Inputs = nil, nil
			if fmt.Sprint(got[i]) != fmt.Sprint(want[i]) {
				t.Fatalf("%s, decision %d:\n got %+v\nwant %+v", id, i, got[i], want[i])
			}
		}
	}
	db, err := sql.Open("sqlite3", "file:"+filepath.Join(dir, SQLiteFile)+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var groups, merged, indexed int
	if err := db.QueryRow(`SELECT COUNT(*), COUNT(*) FILTER (WHERE encoding = ?) FROM decision_groups`, encodingMerged).Scan(&groups, &merged); err != nil {
		t.Fatal(err)
	}
	if groups > calls/10 || merged == 0 {
		t.Fatalf("%d groups (%d merged) for %d decide calls", groups, merged, calls)
	}
	t.Logf("%d decisions of %d decide calls in %d groups, %d of them merged", len(all), calls, groups, merged)
	// The index holds each decision's own time.
	rows, err := db.Query(`SELECT application_id, decided_at FROM decision_index WHERE application_id LIKE 'M-%' ORDER BY decided_at`)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range all {
		if len(d.ApplicationID) > 2 && d.ApplicationID[:2] == "MB" {
			continue
		}
		var (
			id string
			at int64
		)
		if !rows.Next() || rows.Scan(&id, &at) != nil || at != d.Time.UnixMicro() {
			t.Fatalf("index entry %d: %s at %d, want %s at %d", indexed, id, at, d.ApplicationID, d.Time.UnixMicro())
		}
		indexed++
	}
	rows.Close()
	// Export: exactly [from, to), even where both fall inside merged
	// groups, in time order.
	from, to := all[37].Time, all[250].Time
	var got []Document
	if err := store.Export(ctx, from, to, func(b []byte) error {
		var d Document
		if err := json.Unmarshal(b, &d); err != nil {
			return err
		}
		got = append(got, d)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, d := range all {
		if !d.Time.Before(from) && d.Time.Before(to) {
			want = append(want, d.ID)
		}
	}
	var ids []string
	for i, d := range got {
		if i > 0 && d.Time.Before(got[i-1].Time) {
			t.Fatalf("export: %s at %s after %s", d.DecisionID, d.Time, got[i-1].Time)
		}
		ids = append(ids, d.DecisionID)
	}
	slices.Sort(ids) // decisions of one time come in no set order
	slices.Sort(want)
	if !slices.Equal(ids, want) {
		t.Fatalf("export: %d decisions, want %d", len(ids), len(want))
	}
	// Retention never takes a decision early, and a legal hold keeps a
	// decision of a merged group with its time.
	if err := store.SetHold(ctx, "M-3", "compliance", "case 7", true, base); err != nil {
		t.Fatal(err)
	}
	cutoff := all[200].Time
	if _, err := store.Purge(ctx, cutoff); err != nil {
		t.Fatal(err)
	}
	for app := range 10 {
		id := fmt.Sprintf("M-%d", app)
		left := docs(t, store, id)
		for _, d := range all {
			if d.ApplicationID == id && (!d.Time.Before(cutoff) || id == "M-3") &&
				!slices.ContainsFunc(left, func(g Document) bool { return g.DecisionID == d.ID && g.Time.Equal(d.Time) }) {
				t.Fatalf("%s: decision %s at %s (cutoff %s) is gone", id, d.ID, d.Time, cutoff)
			}
		}
		if total := countBefore(all, id, all[len(all)-1].Time.Add(time.Second)); id != "M-3" && len(left) >= total {
			t.Fatalf("%s: nothing purged (%d of %d left)", id, len(left), total)
		}
	}
	held := 0
	if err := store.Export(ctx, base, cutoff, func(b []byte) error {
		var d Document
		if err := json.Unmarshal(b, &d); err != nil {
			return err
		}
		if d.ApplicationID == "M-3" {
			held++
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if want := countBefore(all, "M-3", cutoff); held != want {
		t.Fatalf("export after the purge: %d held decisions of M-3 before the cutoff, want %d", held, want)
	}
}

func countBefore(ds []decision.Decision, applicationID string, t time.Time) int {
	n := 0
	for _, d := range ds {
		if d.ApplicationID == applicationID && d.Time.Before(t) {
			n++
		}
	}
	return n
}
