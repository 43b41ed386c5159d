// Package drift watches whether the applicants a model version decides still
// look like the ones it was trained on. Each version ships its training
// distribution (training_distribution.json: bin edges and shares per input
// field, and of the approval probability); the server counts the decisions of
// each live version into the same bins over a sliding window and reports the
// population stability index (PSI) of each field against that baseline.
package drift

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
)

// BaselineFile is the name of the training distribution in a model directory.
const BaselineFile = "training_distribution.json"

// Distribution is a histogram: Edges are the interior cut points, so there are
// len(Edges)+1 bins, (-inf, e1), [e1, e2), …, [ek-1, +inf); Shares sum to 1.
type Distribution struct {
	Edges  []float64 `json:"edges"`
	Shares []float64 `json:"shares"`
}

// Bin returns the index of the bin v falls into.
func (d *Distribution) Bin(v float64) int {
	// The first edge greater than v: bins are closed on the left. (A binary
	// search by hand: sort.Search's closure was most of the cost of
	// counting a decision.)
	lo, hi := 0, len(d.Edges)
	for lo < hi {
		m := int(uint(lo+hi) >> 1)
		if d.Edges[m] > v {
			hi = m
		} else {
			lo = m + 1
		}
	}
	return lo
}

func (d *Distribution) validate() error {
	if len(d.Shares) != len(d.Edges)+1 {
		return fmt.Errorf("%d edges need %d shares, got %d", len(d.Edges), len(d.Edges)+1, len(d.Shares))
	}
	if len(d.Shares) < 2 {
		return errors.New("a distribution needs at least two bins")
	}
	for i, e := range d.Edges {
		if math.IsNaN(e) || math.IsInf(e, 0) {
			return fmt.Errorf("edge %d is not a finite number", i)
		}
		if i > 0 && e <= d.Edges[i-1] {
			return fmt.Errorf("edges must increase (edge %d is %g after %g)", i, e, d.Edges[i-1])
		}
	}
	sum := 0.0
	for i, s := range d.Shares {
		if math.IsNaN(s) || s < 0 || s > 1 {
			return fmt.Errorf("share %d is %g, not in [0, 1]", i, s)
		}
		sum += s
	}
	if math.Abs(sum-1) > 1e-6 {
		return fmt.Errorf("shares sum to %g, not 1", sum)
	}
	return nil
}

// Baseline is a model version's training distribution.
type Baseline struct {
	FormatVersion int                     `json:"format_version"`
	Features      map[string]Distribution `json:"features"`
	Score         Distribution            `json:"score"`
}

// ParseBaseline reads and checks a training_distribution.json.
func ParseBaseline(data []byte) (*Baseline, error) {
	var b Baseline
	if err := json.Unmarshal(data, &b); err != nil {
		return nil, fmt.Errorf("drift: %s: %w", BaselineFile, err)
	}
	if b.FormatVersion != 1 {
		return nil, fmt.Errorf("drift: %s: format_version %d, want 1", BaselineFile, b.FormatVersion)
	}
	if len(b.Features) == 0 {
		return nil, fmt.Errorf("drift: %s: no features", BaselineFile)
	}
	for name, d := range b.Features {
		if err := d.validate(); err != nil {
			return nil, fmt.Errorf("drift: %s: feature %q: %w", BaselineFile, name, err)
		}
	}
	if err := b.Score.validate(); err != nil {
		return nil, fmt.Errorf("drift: %s: score: %w", BaselineFile, err)
	}
	return &b, nil
}

// minShare stands in for an empty bin, on either side, so that PSI stays
// finite: a bin no training applicant fell into would otherwise make any live
// applicant there an infinite shift.
const minShare = 1e-4

// PSI is the population stability index of counts against the expected
// shares: Σ (a − e) · ln(a / e) over the bins, with a and e the actual and
// expected shares. Below 0.1 is usually read as no shift, above 0.25 as a
// significant one. It is 0 for no counts.
func PSI(counts []uint64, expected []float64) float64 {
	var n uint64
	for _, c := range counts {
		n += c
	}
	if n == 0 {
		return 0
	}
	psi := 0.0
	for i, c := range counts {
		a := math.Max(float64(c)/float64(n), minShare)
		e := math.Max(expected[i], minShare)
		psi += (a - e) * math.Log(a/e)
	}
	return psi
}
