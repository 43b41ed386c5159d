// Package shadow mirrors decided applications to the shadow model version,
// off the request path: the request only offers a copy to a bounded queue
// (when the queue is full the copy is dropped and counted), and a worker
// scores what has queued up in one model run, recording whether the shadow
// agrees with the decision that was served. The response is never touched.
package shadow

import (
	"context"
	"time"

	"mlservice/schemas"
	"mlservice/serve/routing"
)

// DefaultQueue is the queue length: at 20,000 requests/s about 50 ms of
// traffic, ten times the worker's gather pause.
const DefaultQueue = 1024

// maxRun caps how many queued applications one model run scores.
const maxRun = 256

type job struct {
	route  *routing.Route // holds a reference on route.Version until scored
	app    schemas.Application
	served bool
}

// Mirror is the shadow queue and its worker. Offer is safe for concurrent use.
type Mirror struct {
	jobs chan job
}

// New creates a Mirror with a queue of the given length (DefaultQueue if 0).
func New(queue int) *Mirror {
	if queue <= 0 {
		queue = DefaultQueue
	}
	return &Mirror{jobs: make(chan job, queue)}
}

// Offer queues a copy of app for the table's shadow, if it has one. It never
// blocks.
func (m *Mirror) Offer(t *routing.Table, app *schemas.Application, served bool) {
	r := t.Shadow
	if r == nil || !r.Version.Acquire() {
		return
	}
	select {
	case m.jobs <- job{route: r, app: *app, served: served}:
	default:
		r.Version.Release()
		r.Metrics.ObserveShadowDropped()
	}
}

// gather is how long the worker lets the queue fill after its first job.
// Waking once per request would cost the request path more than scoring:
// each wake-up of a parked goroutine is a futex call and a stolen core.
// Pausing lets Offer send into a buffer nobody waits on, and the worker
// wakes at most 1/gather times a second to score a whole batch.
const gather = 5 * time.Millisecond

// Run scores queued applications until ctx ends, then releases what is left.
func (m *Mirror) Run(ctx context.Context) {
	batch := make([]job, 0, maxRun)
	pause := time.NewTimer(gather)
	pause.Stop()
	for {
		select {
		case <-ctx.Done():
			m.drain()
			return
		case j := <-m.jobs:
			batch = append(batch[:0], j)
		}
		pause.Reset(gather)
		select {
		case <-ctx.Done():
			j := batch[0]
			j.route.Version.Release()
			m.drain()
			return
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
		score(batch)
	}
}

func (m *Mirror) drain() {
	for {
		select {
		case j := <-m.jobs:
			j.route.Version.Release()
		default:
			return
		}
	}
}

// score runs each route's share of the batch in one model run.
func score(batch []job) {
	for len(batch) > 0 {
		route := batch[0].route
		var same, rest []job
		for _, j := range batch {
			if j.route == route {
				same = append(same, j)
			} else {
				rest = append(rest, j)
			}
		}
		apps := make([]*schemas.Application, len(same))
		for i := range same {
			apps[i] = &same[i].app
		}
		probs := make([]float32, len(same))
		approve := make([]bool, len(same))
		start := time.Now()
		err := route.Version.Decide(apps, nil, probs, approve)
		if err == nil {
			route.Metrics.ObserveRun(time.Since(start))
			for i, j := range same {
				route.Metrics.ObserveShadow(approve[i] == j.served)
			}
		}
		for range same {
			route.Version.Release()
		}
		batch = rest
	}
}
