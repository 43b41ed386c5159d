// Package outcomes joins the bank's final verdict on an application (an
// underwriter's decision, or the policy's) to the decisions the record holds for
// it, so each model version's agreement with the bank can be counted, compared
// between champion and challenger, and watched.
package outcomes

import "math"

// z95 is the standard normal quantile for a two-sided 95% interval.
const z95 = 1.959963984540054

// Interval is a 95% confidence interval.
type Interval struct {
	Low  float64 `json:"low"`
	High float64 `json:"high"`
}

// Wilson is the Wilson score interval for agreeing successes out of n: unlike
// the textbook p ± z·se it stays inside [0, 1] and keeps its coverage for the
// small counts and high agreement rates an A/B arm sees early on.
func Wilson(agreeing, n int) Interval {
	if n <= 0 {
		return Interval{0, 1}
	}
	p := float64(agreeing) / float64(n)
	z2 := z95 * z95
	nf := float64(n)
	centre := (p + z2/(2*nf)) / (1 + z2/nf)
	half := z95 / (1 + z2/nf) * math.Sqrt(p*(1-p)/nf+z2/(4*nf*nf))
	return Interval{Low: math.Max(0, centre-half), High: math.Min(1, centre+half)}
}

// Difference is the 95% interval of p1 − p2 for two independent arms by
// Newcombe's hybrid score method (his method 10), built from the two Wilson
// intervals. The difference is significant when the interval excludes 0.
func Difference(agree1, n1, agree2, n2 int) Interval {
	if n1 <= 0 || n2 <= 0 {
		return Interval{-1, 1}
	}
	p1, p2 := float64(agree1)/float64(n1), float64(agree2)/float64(n2)
	w1, w2 := Wilson(agree1, n1), Wilson(agree2, n2)
	d := p1 - p2
	return Interval{
		Low:  d - math.Sqrt(sq(p1-w1.Low)+sq(w2.High-p2)),
		High: d + math.Sqrt(sq(w1.High-p1)+sq(p2-w2.Low)),
	}
}

func sq(x float64) float64 { return x * x }

// Significant reports whether the interval excludes zero.
func (i Interval) Significant() bool { return i.Low > 0 || i.High < 0 }
