package decision

import "mlservice/serve/drift"

// DriftObserver counts every decision's inputs and score into the drift
// tracker's window of the version that made it.
type DriftObserver struct{ Tracker *drift.Tracker }

// Observe implements Observer.
func (o DriftObserver) Observe(ds []Decision) {
	for i := range ds {
		d := &ds[i]
		o.Tracker.Observe(d.Model, d.Version, &d.Application, d.Probability)
	}
}
