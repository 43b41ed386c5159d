// Package shadow mirrors served decisions to the shadow model version, off
// the request path: the request only offers a copy to a bounded queue (when
// the queue is full the copy is dropped and counted), and a worker hands what
// has queued up to the decision path in one call per routing table, which
// scores it in one model run and records whether the shadow agrees with the
// decision that was served. The response is never touched.
package shadow

import (
	"context"
	"time"

	"mlservice/schemas"
	"mlservice/serve/decision"
	"mlservice/serve/routing"
)

// DefaultQueue is the queue length: at 20,000 requests/s about 50 ms of
// traffic, ten times the worker's gather pause.
const DefaultQueue = 1024

// maxRun caps how many queued applications one model run scores.
const maxRun = 256

// Decider decides queued copies with a table's shadow (*decision.Path).
type Decider interface {
	Shadow(ctx context.Context, t *routing.Table, apps []schemas.Application, served []decision.Decision) error
}

type job struct {
	table  *routing.Table // the table the served decision was made with
	app    schemas.Application
	served decision.Decision
}

// Mirror is the shadow queue and its worker. Offer is safe for concurrent use.
type Mirror struct {
	jobs chan job
}

var _ decision.Mirror = (*Mirror)(nil)

// New creates a Mirror with a queue of the given length (DefaultQueue if 0).
func New(queue int) *Mirror {
	if queue <= 0 {
		queue = DefaultQueue
	}
	return &Mirror{jobs: make(chan job, queue)}
}

// Offer queues a copy of a served decision for the table's shadow, if it has
// one. It never blocks. The copy holds no reference on the shadow version: a
// version retired before the worker gets to it is counted as an error.
func (m *Mirror) Offer(t *routing.Table, app *schemas.Application, served *decision.Decision) {
	r := t.Shadow
	if r == nil {
		return
	}
	select {
	case m.jobs <- job{table: t, app: *app, served: *served}:
	default:
		if r.Metrics != nil {
			r.Metrics.ObserveShadowDropped()
		}
	}
}

// gather is how long the worker lets the queue fill after its first job.
// Waking once per request would cost the request path more than scoring:
// each wake-up of a parked goroutine is a futex call and a stolen core.
// Pausing lets Offer send into a buffer nobody waits on, and the worker
// wakes at most 1/gather times a second to score a whole batch.
const gather = 5 * time.Millisecond

// Run hands queued copies to d until ctx ends, then drops what is left. It
// returns nil: a copy the shadow cannot decide is counted, never fatal.
func (m *Mirror) Run(ctx context.Context, d Decider) error {
	batch := make([]job, 0, maxRun)
	pause := time.NewTimer(gather)
	pause.Stop()
	for {
		select {
		case <-ctx.Done():
			m.drain()
			return nil
		case j := <-m.jobs:
			batch = append(batch[:0], j)
		}
		pause.Reset(gather)
		select {
		case <-ctx.Done():
			m.drain()
			return nil
		case <-pause.C:
		}
	collect:
		for len(batch) < maxRun {
			select {
			case j := <-m.jobs:
				batch = append(batch, j)
			default:
				break collect
			}
		}
		decide(ctx, d, batch)
	}
}

func (m *Mirror) drain() {
	for {
		select {
		case <-m.jobs:
		default:
			return
		}
	}
}

// decide hands each table's share of the batch to d in one call (the path
// counts what fails on the shadow's metrics).
func decide(ctx context.Context, d Decider, batch []job) {
	for len(batch) > 0 {
		t := batch[0].table
		var rest []job
		var apps []schemas.Application
		var served []decision.Decision
		for _, j := range batch {
			if j.table == t {
				apps = append(apps, j.app)
				served = append(served, j.served)
			} else {
				rest = append(rest, j)
			}
		}
		_ = d.Shadow(ctx, t, apps, served) // counted by the path
		batch = rest
	}
}
