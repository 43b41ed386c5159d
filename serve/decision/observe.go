package decision

import (
	"slices"

	"mlservice/schemas"
	"mlservice/serve/drift"
)

// DriftObserver counts every decision's inputs and score into the drift
// tracker's window of the version that made it.
type DriftObserver struct{ Tracker *drift.Tracker }

// Observe implements Observer: each version's decisions (a call has at
// most three versions) are counted at once.
func (o DriftObserver) Observe(ds []Decision) {
	type version struct{ model, version string }
	var buf [3]version
	counted := buf[:0]
	for i := range ds {
		v := version{ds[i].Model, ds[i].Version}
		if slices.Contains(counted, v) {
			continue
		}
		counted = append(counted, v)
		rest := ds[i:]
		o.Tracker.ObserveAll(v.model, v.version, len(rest), func(k int) (*schemas.Application, float32, bool) {
			d := &rest[k]
			return &d.Application, d.Probability, d.Version == v.version && d.Model == v.model
		})
	}
}
