package record

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/klauspost/compress/s2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"mlservice/internal/pgtest"
	"mlservice/serve/decision"
	"mlservice/serve/outcomes"
)

// backend is one store to run a test against.
type backend struct {
	name string
	open func(t *testing.T) Store
	// raw runs SQL on the store's database outside the store.
	raw func(t *testing.T, q string) error
	// truth is the dialect's true.
	truth string
}

func backends(t *testing.T) []backend {
	var (
		pgOnce sync.Once
		pg     *pgtest.Server
		dbs    atomic.Int64
	)
	sqlite := backend{name: "sqlite", truth: "1"}
	var sqliteDir string
	sqlite.open = func(t *testing.T) Store {
		sqliteDir = t.TempDir()
		s, err := OpenSQLite(context.Background(), sqliteDir)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	sqlite.raw = func(t *testing.T, q string) error {
		db, err := sql.Open("sqlite3", "file:"+filepath.Join(sqliteDir, SQLiteFile))
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		_, err = db.Exec(q)
		return err
	}
	postgres := backend{name: "postgres", truth: "true"}
	var pgURL string
	postgres.open = func(t *testing.T) Store {
		pgOnce.Do(func() { pg = pgtest.Start(t) })
		pgURL = pg.CreateDatabase(t, fmt.Sprintf("record_%d", dbs.Add(1)))
		s, err := OpenPostgres(context.Background(), pgURL)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	postgres.raw = func(t *testing.T, q string) error {
		ctx := context.Background()
		conn, err := pgx.Connect(ctx, pgURL)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close(ctx)
		_, err = conn.Exec(ctx, q)
		return err
	}
	return []backend{sqlite, postgres}
}

var seq atomic.Int64

// sample returns a decision as the decision path would make it.
func sample(appID string, at time.Time, served bool) decision.Decision {
	n := seq.Add(1)
	d := decision.Decision{
		ID:            fmt.Sprintf("0190%012d-7000-8000-000000000000", n),
		RequestID:     fmt.Sprintf("req-%d", n),
		ApplicationID: appID,
		Time:          at,
		Variant:       "champion",
		Served:        served,
		Model:         "loan-approval", Version: "3", SHA256: strings.Repeat("ab", 32), Source: "artifacts",
		Inputs:          []byte(`{"application_id":"` + appID + `", "income":18000,"credit_score":560,"loan_amount":12000,"years_employed":1,"points":20}`),
		Probability:     0.12345678,
		Approve:         false,
		Threshold:       0.5,
		Characteristics: []string{"income", "credit_score", "years_employed", "loan_to_income"},
		Contributions:   []float32{-0.9, -1.5, -0.7, -1.2},
		Reasons: []decision.Reason{
			{Code: "CRS", Feature: "credit_score", Text: "Credit score is below 580 (yours 560)"},
			{Code: "LTI", Feature: "loan_amount", Text: "Loan is 50% of income or more (yours 66.7%) <&> \"quoted\" ünïcode"},
		},
		Latency: 1234 * time.Microsecond,
	}
	if !served {
		d.Variant = "shadow"
	}
	return d
}

func docs(t *testing.T, s Store, appID string) []Document {
	t.Helper()
	var out []Document
	err := s.ByApplication(context.Background(), appID, func(b []byte) error {
		var d Document
		if err := json.Unmarshal(b, &d); err != nil {
			return fmt.Errorf("%v: %s", err, b)
		}
		out = append(out, d)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// wantDocument is what the record must say about d.
func wantDocument(d decision.Decision) Document {
	doc := Document{DecisionID: d.ID, RequestID: d.RequestID, ApplicationID: d.ApplicationID,
		Time: d.Time.UTC().Truncate(time.Microsecond), Variant: d.Variant, Served: d.Served,
		Model:  DocumentModel{Name: d.Model, Version: d.Version, SHA256: d.SHA256, Source: d.Source},
		Inputs: json.RawMessage(d.Inputs), Probability: d.Probability, Approve: d.Approve, Threshold: d.Threshold,
		Contributions: d.ContributionsByName(), LatencyMS: float64(d.Latency.Microseconds()) / 1000, Reasons: []DocumentReason{}}
	for _, r := range d.Reasons {
		doc.Reasons = append(doc.Reasons, DocumentReason(r))
	}
	return doc
}

func TestRecordEveryField(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			store := b.open(t)
			reg := prometheus.NewRegistry()
			rec := New(store, Config{Registerer: reg})
			defer rec.Close()
			t0 := time.Date(2026, 11, 30, 9, 0, 0, 123456789, time.UTC)
			older := sample("A-1", t0, true)
			newer := sample("A-1", t0.Add(time.Minute), true)
			shadow := sample("A-1", t0.Add(time.Minute), false)
			other := sample("B-2", t0.Add(2*time.Minute), true)
			other.Reasons, other.Approve, other.Contributions, other.Inputs = nil, true, nil, nil
			if err := rec.Record(context.Background(), []decision.Decision{older}); err != nil {
				t.Fatal(err)
			}
			if err := rec.Record(context.Background(), []decision.Decision{newer, shadow, other}); err != nil {
				t.Fatal(err)
			}
			got := docs(t, store, "A-1")
			if len(got) != 3 {
				t.Fatalf("%d decisions for A-1, want 3", len(got))
			}
			if got[2].DecisionID != older.ID {
				t.Fatalf("oldest last: got %s, want %s", got[2].DecisionID, older.ID)
			}
			for _, d := range []decision.Decision{older, newer, shadow} {
				var found *Document
				for i := range got {
					if got[i].DecisionID == d.ID {
						found = &got[i]
					}
				}
				if found == nil {
					t.Fatalf("decision %s not read back", d.ID)
				}
				want := wantDocument(d)
				if string(found.Inputs) != string(d.Inputs) {
					t.Fatalf("inputs not as received:\n got %s\nwant %s", found.Inputs, d.Inputs)
				}
				found.Inputs, want.Inputs = nil, nil
				if !reflect.DeepEqual(*found, want) {
					t.Fatalf("record differs:\n got %+v\nwant %+v", *found, want)
				}
			}
			o := docs(t, store, "B-2")
			if len(o) != 1 || len(o[0].Reasons) != 0 || string(o[0].Inputs) != "null" || !o[0].Approve {
				t.Fatalf("approval record %+v", o)
			}
			if n := len(docs(t, store, "nobody")); n != 0 {
				t.Fatalf("%d decisions for an unknown id", n)
			}
			// Export: [from, to), oldest first.
			var ids []string
			err := store.Export(context.Background(), t0.Add(time.Second), t0.Add(2*time.Minute+time.Microsecond), func(b []byte) error {
				var d Document
				if err := json.Unmarshal(b, &d); err != nil {
					return err
				}
				ids = append(ids, d.DecisionID)
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if len(ids) != 3 || ids[2] != other.ID {
				t.Fatalf("export %v, want newer, shadow, other", ids)
			}
			if v := testutil.ToFloat64(rec.m.written); v != 4 {
				t.Fatalf("decision_records_written_total = %v, want 4", v)
			}
			// Append-only: the database itself refuses an UPDATE.
			for _, q := range []string{`UPDATE decision_groups SET decisions = 0`, `UPDATE decision_index SET approve = ` + b.truth} {
				err = b.raw(t, q)
				if err == nil || !strings.Contains(err.Error(), "append-only") {
					t.Fatalf("%s: %v, want the append-only trigger's refusal", q, err)
				}
			}
		})
	}
}

func TestGroupCommit(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			store := &countingStore{Store: b.open(t)}
			rec := New(store, Config{})
			defer rec.Close()
			const n = 400
			var wg sync.WaitGroup
			errs := make(chan error, n)
			for i := range n {
				wg.Add(1)
				go func() {
					defer wg.Done()
					errs <- rec.Record(context.Background(), []decision.Decision{sample(fmt.Sprintf("G-%d", i), time.Now(), true)})
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
			commits := store.appends.Load()
			if commits >= n {
				t.Fatalf("%d commits for %d concurrent decisions: no group commit", commits, n)
			}
			t.Logf("%d concurrent decisions in %d commits", n, commits)
		})
	}
}

type countingStore struct {
	Store
	appends atomic.Int64
}

func (c *countingStore) Append(ctx context.Context, groups []Group) error {
	c.appends.Add(1)
	return c.Store.Append(ctx, groups)
}

func TestRetentionAndLegalHold(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			store := b.open(t)
			now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
			rec := New(store, Config{Now: func() time.Time { return now }, PurgeEvery: time.Hour})
			defer rec.Close()
			// The purge runs by itself at start: let that first run pass
			// before there is anything to purge, so the count below is ours.
			for deadline := time.Now().Add(5 * time.Second); testutil.ToFloat64(rec.m.purgeRuns.WithLabelValues("success")) < 1; {
				if time.Now().After(deadline) {
					t.Fatal("the purge did not run by itself at start")
				}
				time.Sleep(5 * time.Millisecond)
			}
			old := now.AddDate(0, -26, 0)
			ds := []decision.Decision{
				sample("OLD-1", old, true), sample("OLD-1", old.Add(time.Hour), true),
				sample("HELD", old, true), sample("KEEP", now.AddDate(0, -24, 0), true),
			}
			if err := rec.Record(context.Background(), ds); err != nil {
				t.Fatal(err)
			}
			ctx := context.Background()
			if err := store.SetHold(ctx, "HELD", "alice", "case 2026-17", true, now); err != nil {
				t.Fatal(err)
			}
			holds, err := store.Holds(ctx)
			if err != nil || len(holds) != 1 || holds[0].SetBy != "alice" || holds[0].Reason != "case 2026-17" {
				t.Fatalf("holds %+v, %v", holds, err)
			}
			n, err := rec.Purge(ctx)
			if err != nil || n != 2 {
				t.Fatalf("purge deleted %d (%v), want the 2 decisions of OLD-1", n, err)
			}
			if got := len(docs(t, store, "OLD-1")); got != 0 {
				t.Fatalf("%d decisions of OLD-1 past retention survived", got)
			}
			if got := len(docs(t, store, "HELD")); got != 1 {
				t.Fatal("a decision under legal hold was purged")
			}
			if got := len(docs(t, store, "KEEP")); got != 1 {
				t.Fatal("a decision within retention was purged")
			}
			if v := testutil.ToFloat64(rec.m.purged); v != 2 {
				t.Fatalf("decision_records_purged_total = %v", v)
			}
			// Lifting the hold lets the next purge take it.
			if err := store.SetHold(ctx, "HELD", "alice", "", false, now); err != nil {
				t.Fatal(err)
			}
			if n, err := rec.Purge(ctx); err != nil || n != 1 {
				t.Fatalf("purge after the hold was lifted: %d, %v", n, err)
			}
		})
	}
}

// A month's cutoff is the same day N months back in UTC, or that month's last
// day when it has no such day: 25 months before 31 March 2028 is 28 February
// 2026, where AddDate gives 3 March and purges decisions younger than 25
// months.
func TestRetentionCutoffIsWholeCalendarMonths(t *testing.T) {
	at := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, c := range []struct {
		months    int
		now, want string
	}{
		{25, "2028-03-31T12:00:00Z", "2026-02-28T12:00:00Z"},
		{25, "2028-03-15T12:00:00Z", "2026-02-15T12:00:00Z"},
		{6, "2026-08-31T00:00:00Z", "2026-02-28T00:00:00Z"},
		{24, "2028-02-29T08:00:00Z", "2026-02-28T08:00:00Z"},
		{1, "2028-03-31T23:30:00Z", "2028-02-29T23:30:00Z"},
		{12, "2027-01-31T00:00:00Z", "2026-01-31T00:00:00Z"},
		{6, "2026-03-31T01:00:00+02:00", "2025-09-30T23:00:00Z"}, // 30 March 23:00 UTC
	} {
		got := Retention{Months: c.months}.Cutoff(at(c.now))
		if !got.Equal(at(c.want)) {
			t.Errorf("%d months before %s: %s, want %s", c.months, c.now, got, c.want)
		}
	}
}

func TestParseRetention(t *testing.T) {
	for in, want := range map[string]Retention{
		"25mo": {Months: 25}, "25 months": {Months: 25}, "2y": {Months: 24}, "800d": {Dur: 800 * 24 * time.Hour},
		"6mo": {Months: 6}, "5000h": {Dur: 5000 * time.Hour}, "61320h": {Dur: 61320 * time.Hour},
	} {
		got, err := ParseRetention(in)
		if err != nil || got != want {
			t.Errorf("ParseRetention(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, in := range []string{"", "soon", "5mo", "30d", "-3mo", "1h", "213704d", "1201mo", "101y", "99999999999999999999d"} {
		if _, err := ParseRetention(in); err == nil {
			t.Errorf("ParseRetention(%q) accepted", in)
		}
	}
}

func TestMigrationsOnce(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			s := b.open(t)
			s.Close()
			if err := b.raw(t, `INSERT INTO schema_migrations (version, name, applied_at) VALUES (99, 'from the future', 'x')`); err != nil {
				t.Fatal(err)
			}
			var err error
			switch st := s.(type) {
			case *SQLite:
				_, err = OpenSQLite(context.Background(), filepath.Dir(st.Path()))
			case *Postgres:
				_, err = OpenPostgres(context.Background(), st.pool.Config().ConnString())
			}
			if err == nil || !strings.Contains(err.Error(), "newer than this server") {
				t.Fatalf("opening a newer schema: %v", err)
			}
		})
	}
}

// TestUnavailableSQLite makes the database unwritable the way a full disk
// does: the process's file-size limit drops to one byte, so every write to
// the database or its WAL fails (EFBIG; Go ignores SIGXFSZ). Record fails
// with ErrUnavailable, nothing is half-written, Health says why, and all of
// it comes back once the limit is lifted. (A limit works as root, without
// capabilities and in containers, where chattr +i does not.)
func TestUnavailableSQLite(t *testing.T) {
	dir := t.TempDir()
	store, err := OpenSQLite(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	rec := New(store, Config{ProbeEvery: 100 * time.Millisecond, Registerer: prometheus.NewRegistry()})
	defer rec.Close()
	ctx := context.Background()
	if err := rec.Record(ctx, []decision.Decision{sample("U-1", time.Now(), true)}); err != nil {
		t.Fatal(err)
	}
	restore := FileSizeLimit(t, 0, 1)
	defer restore()

	err = rec.Record(ctx, []decision.Decision{sample("U-2", time.Now(), true), sample("U-3", time.Now(), true)})
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Record with an unwritable file: %v, want ErrUnavailable", err)
	}
	if rec.Health() == nil {
		t.Fatal("Health is nil while the record cannot be written")
	}
	t.Logf("health: %v", rec.Health())
	if v := testutil.ToFloat64(rec.m.failures); v < 1 {
		t.Fatal("no write failure counted")
	}
	if v := testutil.ToFloat64(rec.m.up); v != 0 {
		t.Fatal("decision_record_up is not 0")
	}
	time.Sleep(300 * time.Millisecond) // probes keep failing
	if rec.Health() == nil {
		t.Fatal("a probe claimed the unwritable record was back")
	}

	restore()
	waitHealthy(t, rec)
	if err := rec.Record(ctx, []decision.Decision{sample("U-4", time.Now(), true)}); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]int{"U-1": 1, "U-2": 0, "U-3": 0, "U-4": 1} {
		if got := len(docs(t, store, id)); got != want {
			t.Errorf("%s: %d records, want %d", id, got, want)
		}
	}
}

func waitHealthy(t *testing.T, rec *Recorder) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for rec.Health() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("the record did not come back: %v", rec.Health())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestUnavailablePostgres(t *testing.T) {
	pg := pgtest.Start(t)
	store, err := OpenPostgres(context.Background(), pg.CreateDatabase(t, "outage"))
	if err != nil {
		t.Fatal(err)
	}
	rec := New(store, Config{ProbeEvery: 100 * time.Millisecond, WriteTimeout: 2 * time.Second})
	defer rec.Close()
	ctx := context.Background()
	if err := rec.Record(ctx, []decision.Decision{sample("P-1", time.Now(), true)}); err != nil {
		t.Fatal(err)
	}
	pg.Stop()
	err = rec.Record(ctx, []decision.Decision{sample("P-2", time.Now(), true)})
	if !errors.Is(err, ErrUnavailable) {
		t.Fatalf("Record with PostgreSQL stopped: %v", err)
	}
	if rec.Health() == nil {
		t.Fatal("Health is nil with PostgreSQL stopped")
	}
	t.Logf("health: %v", rec.Health())
	pg.Start()
	waitHealthy(t, rec)
	if err := rec.Record(ctx, []decision.Decision{sample("P-3", time.Now(), true)}); err != nil {
		t.Fatal(err)
	}
	for id, want := range map[string]int{"P-1": 1, "P-2": 0, "P-3": 1} {
		if got := len(docs(t, store, id)); got != want {
			t.Errorf("%s: %d records, want %d", id, got, want)
		}
	}
}

// TestPostgresExportsLeaveCommitsTheirConnections: exports to clients that
// read slowly hold their connections for as long as they stream; however
// many there are, decisions are still recorded.
func TestPostgresExportsLeaveCommitsTheirConnections(t *testing.T) {
	pg := pgtest.Start(t)
	store, err := OpenPostgres(context.Background(), pg.CreateDatabase(t, "slow_exports"))
	if err != nil {
		t.Fatal(err)
	}
	rec := New(store, Config{WriteTimeout: time.Second})
	defer rec.Close()
	ctx := context.Background()
	// Two decisions far enough apart that the first is sent while the
	// export still reads: it holds its connection while the client is slow.
	now := time.Now()
	for i, at := range []time.Time{now, now.Add(time.Second)} {
		if err := rec.Record(ctx, []decision.Decision{sample(fmt.Sprintf("X-%d", i), at, true)}); err != nil {
			t.Fatal(err)
		}
	}
	const exports = 8 // as many as the pool had connections
	var (
		streaming sync.WaitGroup
		entered   atomic.Int64
	)
	slowClient := make(chan struct{})
	defer streaming.Wait()
	defer close(slowClient)
	for range exports {
		streaming.Add(1)
		go func() {
			defer streaming.Done()
			_ = store.Export(ctx, now.Add(-time.Second), now.Add(2*time.Second), func([]byte) error {
				entered.Add(1)
				<-slowClient
				return nil
			})
		}()
	}
	for deadline := time.Now().Add(5 * time.Second); entered.Load() < readers; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d exports streaming, want at least %d", entered.Load(), readers)
		}
	}
	time.Sleep(200 * time.Millisecond) // the rest take what they can
	if err := rec.Record(ctx, []decision.Decision{sample("X-3", time.Now(), true)}); err != nil {
		t.Fatalf("Record with %d exports streaming (%d of them holding a connection): %v", exports, entered.Load(), err)
	}
	if err := store.Probe(ctx); err != nil {
		t.Fatalf("Probe with %d exports streaming: %v", exports, err)
	}
}

func TestOutcomesJoinTheRecord(t *testing.T) {
	onEachBackend(t, func(t *testing.T, store Store, rec *Recorder) {
		os, ok := store.(outcomes.Store)
		if !ok {
			t.Fatal("the store does not implement outcomes.Store")
		}
		ctx := context.Background()
		t0 := time.Now().UTC()
		first := sample("O-1", t0, true) // champion v3 declined, then retried:
		retry := sample("O-1", t0.Add(time.Second), true)
		retry.Approve = true // the latest decision is an approval
		shadow := sample("O-1", t0.Add(time.Second), false)
		other := sample("O-2", t0, true)
		other.Variant, other.Version = "challenger", "4"
		if err := rec.Record(ctx, []decision.Decision{first, retry, shadow, other}); err != nil {
			t.Fatal(err)
		}
		joined, isFirst, err := os.PutOutcome(ctx, outcomes.Outcome{ApplicationID: "O-1", Approved: true, ReceivedAt: t0, By: "bank"})
		if err != nil || !isFirst || len(joined) != 2 {
			t.Fatalf("PutOutcome = %+v, %v, %v; want the champion's latest and the shadow's, first", joined, isFirst, err)
		}
		if _, again, err := os.PutOutcome(ctx, outcomes.Outcome{ApplicationID: "O-1", Approved: true, ReceivedAt: t0, By: "bank"}); err != nil || again {
			t.Fatalf("second outcome: first=%v, %v", again, err)
		}
		if _, _, err := os.PutOutcome(ctx, outcomes.Outcome{ApplicationID: "nobody", Approved: true, ReceivedAt: t0}); !errors.Is(err, outcomes.ErrUnknownApplication) {
			t.Fatalf("outcome of an unknown application: %v", err)
		}
		if _, _, err := os.PutOutcome(ctx, outcomes.Outcome{ApplicationID: "O-2", Approved: true, ReceivedAt: t0}); err != nil {
			t.Fatal(err)
		}
		arms, err := os.Arms(ctx, "loan-approval")
		if err != nil {
			t.Fatal(err)
		}
		want := []outcomes.Arm{
			{Model: "loan-approval", Version: "3", Variant: "champion", Outcomes: 1, Agreeing: 1},
			{Model: "loan-approval", Version: "3", Variant: "shadow", Outcomes: 1, Agreeing: 0},
			{Model: "loan-approval", Version: "4", Variant: "challenger", Outcomes: 1, Agreeing: 0},
		}
		if !reflect.DeepEqual(arms, want) {
			t.Fatalf("arms\n got %+v\nwant %+v", arms, want)
		}
	})
}

// TestPurgeRunsByItself: with no call to Purge, decisions past retention
// disappear and are counted; a held one stays.
func TestPurgeRunsByItself(t *testing.T) {
	store, err := OpenSQLite(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	rec := New(store, Config{PurgeEvery: 20 * time.Millisecond, Now: func() time.Time { return now }})
	defer rec.Close()
	old := now.AddDate(-3, 0, 0)
	if err := store.SetHold(context.Background(), "AUTO-HELD", "alice", "case 9", true, now); err != nil {
		t.Fatal(err)
	}
	if err := rec.Record(context.Background(), []decision.Decision{sample("AUTO-1", old, true), sample("AUTO-2", old, false), sample("AUTO-HELD", old, true)}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	// The count is added when the whole purge run is done, after its last
	// transaction.
	for len(docs(t, store, "AUTO-1"))+len(docs(t, store, "AUTO-2")) > 0 || testutil.ToFloat64(rec.m.purged) < 2 {
		if time.Now().After(deadline) {
			t.Fatal("the purge did not remove decisions past retention by itself")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if v := testutil.ToFloat64(rec.m.purged); v != 2 {
		t.Fatalf("decision_records_purged_total = %v, want 2", v)
	}
	if len(docs(t, store, "AUTO-HELD")) != 1 {
		t.Fatal("the purge took a decision under legal hold")
	}
}

// TestBatchIndexedLater: a batch's decisions are queued for the application
// index, found by a lookup at once (the queue is scanned) and exactly once
// after the indexer has taken them; outcomes then join them.
func TestBatchIndexedLater(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			store := b.open(t)
			rec := New(store, Config{IndexEvery: time.Hour}) // the test runs the indexer
			defer rec.Close()
			ctx := context.Background()
			now := time.Now().UTC()
			ds := make([]decision.Decision, 2500) // three groups: 1,024 + 1,024 + 452
			for i := range ds {
				ds[i] = sample(fmt.Sprintf("N-%d", i%1200), now, true)
				ds[i].Approve = i%3 == 0
			}
			if err := rec.Record(ctx, ds); err != nil {
				t.Fatal(err)
			}
			check := func(when string) {
				t.Helper()
				for _, app := range []string{"N-0", "N-1199", "N-1000"} {
					got := docs(t, store, app)
					want := 0
					for _, d := range ds {
						if d.ApplicationID == app {
							want++
						}
					}
					if len(got) != want {
						t.Fatalf("%s: %d decisions of %s, want %d", when, len(got), app, want)
					}
					for i := 1; i < len(got); i++ { // newest first: the later item of the batch first
						if got[i-1].DecisionID < got[i].DecisionID {
							t.Fatalf("%s: %s before %s", when, got[i-1].DecisionID, got[i].DecisionID)
						}
					}
				}
			}
			check("queued")
			total := 0
			for {
				n, backlog, err := store.Index(ctx, 1000)
				if err != nil {
					t.Fatal(err)
				}
				total += n
				if backlog == 0 {
					break
				}
				check(fmt.Sprintf("%d of %d indexed", total, len(ds))) // a group indexed in part
				if n == 0 {
					t.Fatalf("no progress with %d queued", backlog)
				}
			}
			if total != len(ds) {
				t.Fatalf("indexed %d, want %d", total, len(ds))
			}
			check("indexed")
			os := store.(outcomes.Store)
			if _, _, err := os.PutOutcome(ctx, outcomes.Outcome{ApplicationID: "N-3", Approved: true, ReceivedAt: now, By: "bank"}); err != nil {
				t.Fatal(err)
			}
			arms, err := os.Arms(ctx, "loan-approval")
			if err != nil || len(arms) != 1 || arms[0].Outcomes != 1 || arms[0].Agreeing != 1 {
				t.Fatalf("arms %+v, %v", arms, err) // N-3's latest decision (item 1203) approves
			}
			// Export streams every decision once.
			n := 0
			if err := store.Export(ctx, now.Add(-time.Second), now.Add(time.Second), func([]byte) error { n++; return nil }); err != nil || n != len(ds) {
				t.Fatalf("export %d decisions (%v), want %d", n, err, len(ds))
			}
		})
	}
}

// TestMigrationFromOneDocumentARow: a record written by a server of schema
// version 2 (one JSON document a row) reads, exports, joins and purges the
// same after the move to groups.
func TestMigrationFromOneDocumentARow(t *testing.T) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			// A store of schema version 2: PostgreSQL's opens as it was;
			// SQLite's (whose writer prepares version 3's statements) is
			// made by hand.
			var (
				s   Store
				raw = b.raw
			)
			if b.name == "sqlite" {
				dir := t.TempDir()
				db, err := sql.Open("sqlite3", "file:"+filepath.Join(dir, SQLiteFile))
				if err != nil {
					t.Fatal(err)
				}
				defer db.Close()
				stmts := append([]string{`CREATE TABLE schema_migrations (version INTEGER NOT NULL PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)`,
					`INSERT INTO schema_migrations VALUES (1, 'one', 'x'), (2, 'two', 'x')`}, migrations[0].sqlite...)
				for _, q := range append(stmts, migrations[1].sqlite...) {
					if _, err := db.Exec(q); err != nil {
						t.Fatal(err)
					}
				}
				raw = func(_ *testing.T, q string) error { _, err := db.Exec(q); return err }
				s = &SQLite{path: filepath.Join(dir, SQLiteFile)}
			} else {
				all := migrations
				migrations = migrations[:2]
				s = b.open(t)
				migrations = all
				s.Close()
			}
			old := time.Now().UTC().AddDate(-3, 0, 0)
			legacy := []decision.Decision{sample("L-1", old, true), sample("L-1", time.Now(), false), sample("L-2", time.Now(), true)}
			legacy[2].Approve = true
			for _, d := range legacy {
				served := "false"
				if d.Served {
					served = "true"
				}
				if b.name == "sqlite" {
					served = map[bool]string{true: "1", false: "0"}[d.Served]
				}
				doc := strings.ReplaceAll(string(AppendDocument(nil, &d)), "'", "''")
				q := fmt.Sprintf(`INSERT INTO decisions (decision_id, application_id, decided_at, served, record) VALUES ('%s', '%s', %d, %s, '%s')`,
					d.ID, d.ApplicationID, d.Time.UnixMicro(), served, doc)
				if err := raw(t, q); err != nil {
					t.Fatal(err)
				}
			}
			var err error
			switch st := s.(type) {
			case *SQLite:
				s, err = OpenSQLite(context.Background(), filepath.Dir(st.Path()))
			case *Postgres:
				s, err = OpenPostgres(context.Background(), st.pool.Config().ConnString())
			}
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			got := docs(t, s, "L-1")
			if len(got) != 2 || got[0].DecisionID != legacy[1].ID || got[1].DecisionID != legacy[0].ID {
				t.Fatalf("L-1 after the move: %+v", got)
			}
			for i, d := range []decision.Decision{legacy[1], legacy[0]} {
				want := wantDocument(d)
				got[i].Inputs, want.Inputs = nil, nil
				if !reflect.DeepEqual(got[i], want) {
					t.Fatalf("moved record differs:\n got %+v\nwant %+v", got[i], want)
				}
			}
			ctx := context.Background()
			os := s.(outcomes.Store)
			if _, _, err := os.PutOutcome(ctx, outcomes.Outcome{ApplicationID: "L-2", Approved: true, ReceivedAt: time.Now(), By: "bank"}); err != nil {
				t.Fatal(err)
			}
			if arms, err := os.Arms(ctx, "loan-approval"); err != nil || len(arms) != 1 || arms[0].Agreeing != 1 {
				t.Fatalf("arms %+v, %v", arms, err)
			}
			if n, err := s.Purge(ctx, time.Now().AddDate(-2, 0, 0)); err != nil || n != 1 {
				t.Fatalf("purge of the moved record: %d, %v; want 1", n, err)
			}
			if got := docs(t, s, "L-1"); len(got) != 1 {
				t.Fatalf("%d decisions of L-1 after the purge, want 1", len(got))
			}
			// A new decision lands beside the moved ones.
			rec := New(s, Config{})
			if err := rec.Record(ctx, []decision.Decision{sample("L-2", time.Now(), true)}); err != nil {
				t.Fatal(err)
			}
			if got := docs(t, s, "L-2"); len(got) != 2 {
				t.Fatalf("%d decisions of L-2, want 2", len(got))
			}
		})
	}
}

// TestBinaryPayloadIsTheDocuments: a binary group reads back as the very
// bytes AppendDocument writes for each decision, whatever it holds.
func TestBinaryPayloadIsTheDocuments(t *testing.T) {
	now := time.Now()
	ds := []decision.Decision{sample("A-1", now, true), sample("A-2", now, true), sample("A-3", now, true)}
	ds[1].Reasons, ds[1].Approve, ds[1].Inputs = nil, true, nil
	ds[2].Contributions, ds[2].Characteristics, ds[2].RequestID = nil, nil, "req-\"quoted\"\n"
	for i := range ds[:2] {
		ds[i].Characteristics = ds[0].Characteristics
	}
	for _, c := range []struct {
		ds       []decision.Decision
		encoding int
	}{
		{ds[:2], encodingBinary},
		{ds, encodingS2Frames}, // ds[2] has other characteristics than the group's first
	} {
		groups, _ := encodeGroups(c.ds, nil)
		if len(groups) != 1 || groups[0].Encoding != c.encoding {
			t.Fatalf("%d groups, encoding %d; want one, %d", len(groups), groups[0].Encoding, c.encoding)
		}
		var got []string
		if err := payloadDocs(groups[0].Encoding, groups[0].Payload, func(_ int, _ time.Time, doc []byte) error {
			got = append(got, string(doc))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		for i := range c.ds {
			if want := string(AppendDocument(nil, &c.ds[i])); got[i] != want {
				t.Fatalf("decision %d:\n got %s\nwant %s", i, got[i], want)
			}
		}
	}
}

// FuzzBinaryPayload: a corrupt binary or merged payload is an error, never a
// panic or a huge allocation, to read or to take apart (merge, legal hold).
func FuzzBinaryPayload(f *testing.F) {
	ds := []decision.Decision{sample("F-1", time.Now(), true), sample("F-2", time.Now(), true)}
	ds[1].Time, ds[1].Characteristics = ds[0].Time, ds[0].Characteristics
	g, _ := encodeGroups(ds, nil)
	raw, _ := s2.Decode(nil, g[0].Payload)
	f.Add(raw)
	f.Add(raw[:len(raw)/2])
	f.Fuzz(func(t *testing.T, raw []byte) {
		for _, timed := range []bool{false, true} {
			_ = binaryDocs(raw, timed, func(int, time.Time, []byte) error { return nil })
			_, _, _, _ = splitBinary(raw, timed, nil)
		}
	})
}

// TestByDecisionIDOnEachBackend: every decision is found by its id on
// either store, and an id never given is not.
func TestByDecisionIDOnEachBackend(t *testing.T) {
	onEachBackend(t, func(t *testing.T, store Store, rec *Recorder) {
		for _, d := range recordWithIDs(t, rec) {
			_, doc, err := ByDecisionID(context.Background(), store, d.ID)
			if want := AppendDocument(nil, &d); err != nil || !bytes.Equal(doc, want) {
				t.Fatalf("ByDecisionID(%s) = %s, %v; want %s", d.ID, doc, err, want)
			}
		}
		unseen := make([]string, 1)
		decision.NewIDs(unseen, time.Now())
		if _, doc, err := ByDecisionID(context.Background(), store, unseen[0]); doc != nil || err != nil {
			t.Fatalf("an id never given: %s, %v", doc, err)
		}
		if _, _, err := ByDecisionID(context.Background(), store, "A-1"); !errors.Is(err, ErrNotDecisionID) {
			t.Fatalf("not a decision id: %v", err)
		}
	})
}

// TestByDecisionIDAheadOfItsTime: a server before NewIDs took ids from
// uuid.NewV7, whose ids run ahead of the clock after it steps back; such a
// decision is still found by its id.
func TestByDecisionIDAheadOfItsTime(t *testing.T) {
	onEachBackend(t, func(t *testing.T, store Store, rec *Recorder) {
		at := time.Now().UTC()
		ids := make([]string, 1)
		decision.NewIDs(ids, at.Add(300*time.Millisecond)) // the clock stepped back 300 ms
		d := sample("V-1", at, true)
		d.ID = ids[0]
		if err := rec.Record(context.Background(), []decision.Decision{d}); err != nil {
			t.Fatal(err)
		}
		_, doc, err := ByDecisionID(context.Background(), store, d.ID)
		if want := AppendDocument(nil, &d); err != nil || !bytes.Equal(doc, want) {
			t.Fatalf("ByDecisionID(%s) of a decision recorded 300 ms before its id's time = %s, %v; want %s", d.ID, doc, err, want)
		}
	})
}

// onEachBackend runs fn as a subtest on a fresh store of each backend, with
// a Recorder on it.
func onEachBackend(t *testing.T, fn func(t *testing.T, store Store, rec *Recorder)) {
	for _, b := range backends(t) {
		t.Run(b.name, func(t *testing.T) {
			store := b.open(t)
			rec := New(store, Config{})
			defer rec.Close()
			fn(t, store, rec)
		})
	}
}

// TestHoldIsOneMatters: setting a hold again for its own reason (a retry)
// changes nothing, and a hold for another reason is refused with the first
// one named, on both backends: replaced, the first matter's lift would
// have freed the second's records for the purge.
func TestHoldIsOneMatters(t *testing.T) {
	onEachBackend(t, func(t *testing.T, store Store, _ *Recorder) {
		ctx := context.Background()
		first := time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)
		if err := store.SetHold(ctx, "H-1", "alice", "matter 2026-17", true, first); err != nil {
			t.Fatal(err)
		}
		if err := store.SetHold(ctx, "H-1", "alice", "matter 2026-17", true, first.Add(time.Hour)); err != nil {
			t.Fatalf("the same hold again: %v", err)
		}
		err := store.SetHold(ctx, "H-1", "bob", "CFPB exam", true, first.Add(2*time.Hour))
		var held *HeldError
		if !errors.As(err, &held) || held.Hold.SetBy != "alice" || held.Hold.Reason != "matter 2026-17" {
			t.Fatalf("a hold for another reason: %v, want a HeldError naming alice's", err)
		}
		hs, err := store.Holds(ctx)
		if err != nil || len(hs) != 1 || hs[0].SetBy != "alice" || hs[0].Reason != "matter 2026-17" || !hs[0].SetAt.Equal(first) {
			t.Fatalf("holds: %+v, %v; want alice's, as first set", hs, err)
		}
		if err := store.SetHold(ctx, "H-1", "alice", "", false, first); err != nil {
			t.Fatal(err)
		}
		if err := store.SetHold(ctx, "H-1", "bob", "CFPB exam", true, first); err != nil {
			t.Fatalf("a hold for another reason once the first is lifted: %v", err)
		}
	})
}
