package outcomes

import (
	"math"
	"testing"
)

func near(a, b float64) bool { return math.Abs(a-b) < 5e-5 }

// The published examples: Wilson (1927) as tabulated by Newcombe (1998),
// "Two-sided confidence intervals for the single proportion", and Newcombe
// (1998), "Interval estimation for the difference between independent
// proportions", example (a): 56/70 − 48/80, method 10 → 0.0524 to 0.3339.
func TestIntervalsAgainstHandComputedExamples(t *testing.T) {
	// 81/100: p = 0.81, z² = 3.8415; centre = (0.81 + 0.019207)/(1.038415) = 0.798538,
	// half = 1.959964/1.038415 · sqrt(0.001539 + 0.000096) = 0.076321.
	if w := Wilson(81, 100); !near(w.Low, 0.7222) || !near(w.High, 0.8749) {
		t.Errorf("Wilson(81, 100) = %+v, want 0.7222 to 0.8749", w)
	}
	if w := Wilson(56, 70); !near(w.Low, 0.6918) || !near(w.High, 0.8770) {
		t.Errorf("Wilson(56, 70) = %+v, want 0.6918 to 0.8770", w)
	}
	d := Difference(56, 70, 48, 80)
	if !near(d.Low, 0.0524) || !near(d.High, 0.3339) {
		t.Errorf("Difference(56/70, 48/80) = %+v, want 0.0524 to 0.3339 (Newcombe 1998)", d)
	}
	if !d.Significant() {
		t.Error("0.0524 to 0.3339 excludes 0: significant")
	}
	if Difference(50, 100, 48, 100).Significant() {
		t.Error("50% vs 48% on 100 each is not a significant difference")
	}
}

func TestIntervalsAtTheEdges(t *testing.T) {
	for _, c := range []struct{ x, n int }{{0, 10}, {10, 10}, {0, 0}, {1, 1}} {
		w := Wilson(c.x, c.n)
		if w.Low < 0 || w.High > 1 || w.Low > w.High || math.IsNaN(w.Low) || math.IsNaN(w.High) {
			t.Errorf("Wilson(%d, %d) = %+v, want a proper interval inside [0, 1]", c.x, c.n, w)
		}
	}
	if d := Difference(1, 0, 1, 1); d.Significant() {
		t.Errorf("an empty arm cannot be significant: %+v", d)
	}
}

func TestCompareChallengerWithChampion(t *testing.T) {
	arms := []Arm{
		{Model: "m", Version: "3", Variant: "champion", Outcomes: 80, Agreeing: 48},
		{Model: "m", Version: "2", Variant: "champion", Outcomes: 500, Agreeing: 400}, // an earlier champion: not live
		{Model: "m", Version: "4", Variant: "challenger", Outcomes: 70, Agreeing: 56},
	}
	c := Compare(arms, Live{Champion: "3", Challenger: "4", Shadow: "5"})
	if len(c.Versions) != 3 || c.Versions[0].Outcomes != 80 || *c.Versions[0].Agreement != 0.6 {
		t.Fatalf("standings = %+v", c.Versions)
	}
	if c.Versions[2].Agreement != nil || c.Versions[2].Interval != (Interval{0, 1}) {
		t.Errorf("a shadow with no outcomes has no agreement and the whole interval: %+v", c.Versions[2])
	}
	ch := c.Versus[0]
	if ch.Variant != "challenger" || !ch.Significant || !near(ch.Interval.Low, 0.0524) || !near(ch.Interval.High, 0.3339) ||
		ch.Verdict != "agrees with the bank significantly more often than the champion" {
		t.Errorf("challenger vs champion = %+v, want Newcombe's 0.0524 to 0.3339, significant", ch)
	}
	if sh := c.Versus[1]; sh.Significant || sh.Difference != nil || sh.Verdict != "not enough outcomes yet" {
		t.Errorf("shadow vs champion = %+v", sh)
	}
}
