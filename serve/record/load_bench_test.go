package record

import (
	"context"
	"fmt"
	"testing"
	"time"

	"mlservice/serve/decision"
)

// BenchmarkLoadSingles is the SQLite loader's share of single predictions:
// one load of 1,250 decide calls of one decision each (250 ms at 5,000
// req/s), as journal frames of about one call each, into a database that
// already holds the loads before it: with the bench's 1,000 application ids
// again and again (each load changes about 1,000 index pages), or with
// fresh, increasing ids (new applications: the index grows at its end).
func BenchmarkLoadSingles(b *testing.B) {
	b.Run("same-ids", func(b *testing.B) { benchmarkLoadSingles(b, false) })
	b.Run("fresh-ids", func(b *testing.B) { benchmarkLoadSingles(b, true) })
}

func benchmarkLoadSingles(b *testing.B, fresh bool) {
	s, err := OpenSQLite(context.Background(), b.TempDir())
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	const perLoad = 1250
	at := time.Now()
	frames := make([]journaled, perLoad)
	next := func() {
		for i := range frames {
			at = at.Add(200 * time.Microsecond)
			d := sample(fmt.Sprintf("B-%06d", i%1000), at, true)
			if fresh {
				d.ApplicationID = fmt.Sprintf("A-%012d", seq.Load())
			}
			gs, _ := encodeGroups([]decision.Decision{d}, nil)
			frames[i] = journaled{payload: journalFrame(nil, gs)[frameHeader:]}
		}
	}
	for range 40 { // 50,000 decisions already there
		next()
		if err := s.load(context.Background(), frames); err != nil {
			b.Fatal(err)
		}
	}
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		next()
		b.StartTimer()
		if err := s.load(context.Background(), frames); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*perLoad), "µs/decision")
}
