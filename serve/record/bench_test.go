package record

import (
	"context"
	"fmt"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"mlservice/internal/pgtest"
	"mlservice/serve/decision"
)

// BenchmarkRecordBatch is the record's share of a 1,000-row batch: encode
// and commit 1,000 decisions in one group (SQLite, journal synced), the
// same 1,000 application ids every time (as bench/loadgen sends them: the
// worst case for the application-id index, one page per decision), or
// fresh, increasing ids (a nightly batch of new applications).
func BenchmarkRecordBatch(b *testing.B) {
	b.Run("same-ids", func(b *testing.B) { benchmarkRecordBatch(b, openSQLite(b), false) })
	b.Run("fresh-ids", func(b *testing.B) { benchmarkRecordBatch(b, openSQLite(b), true) })
	b.Run("postgres", func(b *testing.B) { benchmarkRecordBatch(b, openPostgres(b), false) })
}

func openSQLite(b *testing.B) Store {
	s, err := OpenSQLite(context.Background(), b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	return s
}

// openPostgres starts a throwaway PostgreSQL (Debian's, as the tests do).
func openPostgres(b *testing.B) Store {
	pg := pgtest.Start(b)
	s, err := OpenPostgres(context.Background(), pg.CreateDatabase(b, "bench"))
	if err != nil {
		b.Fatal(err)
	}
	return s
}

func benchmarkRecordBatch(b *testing.B, store Store, fresh bool) {
	rec := New(store, Config{Writers: 4})
	defer rec.Close()
	ds := make([]decision.Decision, 1000)
	now := time.Now() // one decide call gives its decisions one time
	for i := range ds {
		ds[i] = sample(fmt.Sprintf("B-%d", i), now, true)
	}
	b.ResetTimer()
	for range b.N {
		for i := range ds {
			n := seq.Add(1)
			ds[i].ID = fmt.Sprintf("0190%012d-7000-8000-000000000000", n) // time-ordered, as UUID v7
			if fresh {
				ds[i].ApplicationID = fmt.Sprintf("A-%012d", n)
			}
		}
		if err := rec.Record(context.Background(), ds); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N*len(ds))/b.Elapsed().Seconds(), "rows/s")
	reportCommits(b, rec)
}

// BenchmarkRecordOne is one decision per Record from many goroutines: the
// single-request path with group commit.
func BenchmarkRecordOne(b *testing.B) {
	store, err := OpenSQLite(context.Background(), b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	rec := New(store, Config{})
	defer rec.Close()
	b.SetParallelism(16)
	b.RunParallel(func(pb *testing.PB) {
		d := sample("P", time.Now(), true)
		for pb.Next() {
			d.ID = fmt.Sprintf("0190%012d-7000-8000-000000000000", seq.Add(1))
			if err := rec.Record(context.Background(), []decision.Decision{d}); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "decisions/s")
	reportCommits(b, rec)
}

// reportCommits adds the mean commit time and size to a benchmark's result.
func reportCommits(b *testing.B, rec *Recorder) {
	var d, g dto.Metric
	if rec.m.writeDuration.Write(&d) != nil || rec.m.groupSize.Write(&g) != nil || d.Histogram.GetSampleCount() == 0 {
		return
	}
	n := float64(d.Histogram.GetSampleCount())
	b.ReportMetric(1e6*d.Histogram.GetSampleSum()/n, "µs/commit")
	b.ReportMetric(g.Histogram.GetSampleSum()/n, "decisions/commit")
}

// BenchmarkRecordSerial is one decision at a time, each its own commit: the
// fixed cost of a commit (a quiet server's single requests).
func BenchmarkRecordSerial(b *testing.B) {
	for _, sync := range []string{SyncFull, SyncNormal} {
		b.Run(sync, func(b *testing.B) {
			store, err := OpenSQLiteSync(context.Background(), b.TempDir(), sync)
			if err != nil {
				b.Fatal(err)
			}
			rec := New(store, Config{})
			defer rec.Close()
			d := sample("S", time.Now(), true)
			for range b.N {
				d.ID = fmt.Sprintf("0190%012d-7000-8000-000000000000", seq.Add(1))
				if err := rec.Record(context.Background(), []decision.Decision{d}); err != nil {
					b.Fatal(err)
				}
			}
			reportCommits(b, rec)
		})
	}
}

// BenchmarkRecordIndex is the background indexer's rate: batches of the
// same 1,000 application ids (as bench/loadgen sends them: every entry lands
// beside earlier ones of its id, the index's worst case) queued, then
// indexed in chunks as the indexer takes them.
func BenchmarkRecordIndex(b *testing.B) {
	store := openSQLite(b)
	rec := New(store, Config{IndexEvery: time.Hour})
	defer rec.Close()
	ds := make([]decision.Decision, 1000)
	now := time.Now()
	for i := range ds {
		ds[i] = sample(fmt.Sprintf("B-%d", i), now, true)
	}
	ctx := context.Background()
	for range 20 { // an index of 20,000 entries to start with
		if err := rec.Record(ctx, ds); err != nil {
			b.Fatal(err)
		}
	}
	if _, _, err := store.Index(ctx, 1<<30); err != nil {
		b.Fatal(err)
	}
	indexed := 0
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		for range 16 {
			if err := rec.Record(ctx, ds); err != nil {
				b.Fatal(err)
			}
		}
		if err := store.(*SQLite).settled(ctx); err != nil { // the journal's frames in the database: not the indexer's time
			b.Fatal(err)
		}
		b.StartTimer()
		n, _, err := store.Index(ctx, indexChunk)
		if err != nil {
			b.Fatal(err)
		}
		indexed += n
	}
	b.ReportMetric(float64(indexed)/b.Elapsed().Seconds(), "entries/s")
}
