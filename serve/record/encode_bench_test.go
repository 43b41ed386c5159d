package record

import (
	"fmt"
	"testing"
	"time"

	"mlservice/serve/decision"
)

// BenchmarkEncodeBatch is the request's share of recording a 1,000-row
// batch: its decisions encoded into one group (no commit).
func BenchmarkEncodeBatch(b *testing.B) {
	ds := make([]decision.Decision, 1000)
	ids := make([]string, len(ds))
	now := time.Now()
	decision.NewIDs(ids, now)
	for i := range ds {
		ds[i] = sample(fmt.Sprintf("B-%d", i), now, true)
		ds[i].ID = ids[i]
		// Rows differ, as a batch's do, so s2 has something to do.
		ds[i].Inputs = fmt.Appendf(nil, `{"application_id":"B-%d","income":%d,"credit_score":%d,"loan_amount":%d,"years_employed":%d}`,
			i, 20000+i*37, 500+i%350, 5000+i*11, i%40)
		ds[i].Probability = float32(i%997) / 997
		ds[i].Contributions = []float32{-float32(i%13) / 7, float32(i%17) / 9, -float32(i%5) / 3, float32(i%11) / 5}
	}
	var buf []byte
	b.ReportAllocs()
	for b.Loop() {
		_, buf = encodeGroups(ds, buf)
	}
	b.ReportMetric(float64(b.N*len(ds))/b.Elapsed().Seconds(), "rows/s")
}
