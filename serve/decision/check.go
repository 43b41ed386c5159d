package decision

import (
	"context"
	"fmt"
	"math"
	"slices"
	"sort"
	"time"

	"mlservice/schemas"
	"mlservice/serve/models"
	"mlservice/serve/routing"
)

// MaxServingCheckDelta is the largest difference allowed between a probability
// the server computes and the one the training run recorded.
const MaxServingCheckDelta = 1e-5

// ServingCheck replays a version's serving_check.json through the decision
// path — the same acquire, score and checks as a request, with nothing
// recorded or observed — and compares with what the training run recorded:
// probabilities within min(tolerance, MaxServingCheckDelta), the same
// decisions, labels that agree with the version's threshold, and each
// characteristic's contribution within the file's tolerance. It is the
// models.CheckFunc of the server's Loader.
func ServingCheck(v *models.Version, check models.ServingCheck) error {
	tol := MaxServingCheckDelta
	if check.Tolerance > 0 && check.Tolerance < tol {
		tol = check.Tolerance
	}
	contribTol := MaxServingCheckDelta
	if check.Tolerance > 0 {
		contribTol = check.Tolerance
	}
	ins := make([]Input, len(check.Cases))
	for i, c := range check.Cases {
		a := &ins[i].Application
		for _, f := range schemas.Features {
			val, ok := c.Input[f.String()]
			if !ok {
				return fmt.Errorf("case %d has no %s", i, f)
			}
			a.Set(f, val)
		}
	}
	table := &routing.Table{Model: v.Name, Weights: routing.Weights{Champion: 100},
		Champion: &routing.Route{Variant: routing.Champion, Version: v}}
	p := New(Config{NewIDs: func(ids []string, _ time.Time) {
		for i := range ids {
			ids[i] = "serving-check"
		}
	}})
	out, errs := make([]Decision, len(ins)), make([]error, len(ins))
	now := p.assignIDs(ins, out)
	err := p.decide(context.Background(), table, call{requestID: "serving-check", now: now, ins: ins, out: out, errs: errs,
		pick: func(t *routing.Table, _ *schemas.Application) *routing.Route { return t.Champion }})
	if err != nil {
		return err
	}
	for i, c := range check.Cases {
		if errs[i] != nil {
			return fmt.Errorf("case %d: %w", i, errs[i])
		}
		d := out[i]
		if diff := math.Abs(float64(d.Probability) - c.Probability); diff > tol {
			return fmt.Errorf("case %d: probability %.8f, training run recorded %.8f (|Δp| %.2g > %.0e)", i, d.Probability, c.Probability, diff, tol)
		}
		if d.Approve != c.Approve {
			return fmt.Errorf("case %d: decision %v, training run recorded %v", i, d.Approve, c.Approve)
		}
		// The label is the graph's own output: it must be its probability
		// against the threshold the reasons table (and the record) names.
		if d.Approve != (d.Probability >= v.Threshold) {
			return fmt.Errorf("case %d: the graph's label %v disagrees with its probability %.8f against the threshold %v", i, d.Approve, d.Probability, v.Threshold)
		}
		if err := sameContributions(d.ContributionsByName(), c.Contributions, contribTol); err != nil {
			return fmt.Errorf("case %d: %w", i, err)
		}
		if err := sameReasons(v, d, c); err != nil {
			return fmt.Errorf("case %d: %w", i, err)
		}
	}
	return nil
}

// sameContributions compares the model's contributions with a case's. A case
// without contributions (an older serving check) claims nothing; one with
// contributions must name exactly the model's characteristics.
func sameContributions(got map[string]float32, want map[string]float64, tol float64) error {
	if len(want) == 0 {
		return nil
	}
	if len(got) != len(want) {
		return fmt.Errorf("the model gives contributions for %v, the training run recorded %v", keys(got), keys(want))
	}
	for _, name := range keys(want) {
		g, ok := got[name]
		if !ok {
			return fmt.Errorf("the model gives no contribution for %q", name)
		}
		if diff := math.Abs(float64(g) - want[name]); diff > tol {
			return fmt.Errorf("contribution of %s %.8f, training run recorded %.8f (|Δ| %.2g > %.0e)", name, g, want[name], diff, tol)
		}
	}
	return nil
}

func keys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// sameReasons compares the reason codes of a declined case with those the
// training run recorded, in rank order. A case that lists reasons needs a
// version with a reasons table; a version with a table must give exactly the
// recorded codes for every declined case that lists contributions (the
// serving check's current format).
func sameReasons(v *models.Version, d Decision, c models.ServingCase) error {
	if v.Reasons == nil {
		if len(c.Reasons) > 0 {
			return fmt.Errorf("the training run recorded reasons %v, but the version has no reasons table", c.Reasons)
		}
		return nil
	}
	if d.Approve || (len(c.Contributions) == 0 && len(c.Reasons) == 0) {
		return nil
	}
	got := make([]string, len(d.Reasons))
	for i, r := range d.Reasons {
		got[i] = r.Code
	}
	if !slices.Equal(got, c.Reasons) {
		return fmt.Errorf("reasons %v, training run recorded %v", got, c.Reasons)
	}
	return nil
}
