// Package routing decides which live model version answers a request. The
// routing Table is an immutable value; the Router publishes a new one with a
// single atomic store, and a request loads the table once and uses that
// snapshot to the end, so a swap never mixes two states in one request.
package routing

import (
	"errors"
	"fmt"
	"hash/fnv"
	"math/rand/v2"
	"sync/atomic"

	"mlservice/registry"
	"mlservice/serve/metrics"
	"mlservice/serve/models"
)

// Variant is registry.Variant: its string form is the alias.
type Variant = registry.Variant

// The variants (registry.Champion, ...).
const (
	Champion   = registry.Champion
	Challenger = registry.Challenger
	Shadow     = registry.Shadow
)

// Route is one variant's live version with its metrics bound once.
type Route struct {
	Variant Variant
	Version *models.Version
	Metrics *metrics.Version
}

// Weights is the traffic split in percent: Champion + Challenger = 100.
type Weights struct {
	Champion   int `json:"champion"`
	Challenger int `json:"challenger"`
}

// ChampionOnly is the split that sends everything to the champion, the
// default. (A function, not a variable: no package state anyone can change.)
func ChampionOnly() Weights { return Weights{Champion: 100} }

// ErrBadWeights means weights are out of range or do not add up to 100.
var ErrBadWeights = errors.New("routing: weights must be 0-100 and sum to 100")

// Validate checks the split.
func (w Weights) Validate() error {
	if w.Champion < 0 || w.Champion > 100 || w.Challenger < 0 || w.Challenger > 100 || w.Champion+w.Challenger != 100 {
		return fmt.Errorf("%w (got champion %d, challenger %d)", ErrBadWeights, w.Champion, w.Challenger)
	}
	return nil
}

// Table is one immutable routing state. Build it with NewTable.
type Table struct {
	Model      string
	Champion   *Route
	Challenger *Route // nil: no challenger
	Shadow     *Route // nil: no shadow
	// Weights is the configured split. With no challenger the champion takes
	// every request whatever the weights say.
	Weights Weights
}

// NewTable checks and assembles a table.
func NewTable(model string, champion, challenger, shadow *Route, w Weights) (*Table, error) {
	if champion == nil {
		return nil, errors.New("routing: a table needs a champion")
	}
	if err := w.Validate(); err != nil {
		return nil, err
	}
	return &Table{Model: model, Champion: champion, Challenger: challenger, Shadow: shadow, Weights: w}, nil
}

// ChallengerShare is the effective share of traffic the challenger gets.
func (t *Table) ChallengerShare() int {
	if t.Challenger == nil {
		return 0
	}
	return t.Weights.Challenger
}

// Pick returns the route for a request. With an application id the choice is
// a pure function of the id, so the same applicant gets the same variant on
// every replica and after restarts; raising the challenger's share only moves
// applicants from champion to challenger, never back. Without an id the choice
// is weighted random.
func (t *Table) Pick(applicationID string) *Route {
	share := t.ChallengerShare()
	if share == 0 {
		return t.Champion
	}
	if Bucket(applicationID) < share {
		return t.Challenger
	}
	return t.Champion
}

// Bucket maps an application id to 0-99; an empty id to a random bucket.
func Bucket(applicationID string) int {
	if applicationID == "" {
		return rand.IntN(100)
	}
	h := fnv.New64a()
	h.Write([]byte(applicationID))
	return int(h.Sum64() % 100)
}

// Route returns the variant's route, or nil when the variant is not live.
func (t *Table) Route(v Variant) *Route {
	switch v {
	case Champion:
		return t.Champion
	case Challenger:
		return t.Challenger
	case Shadow:
		return t.Shadow
	}
	return nil
}

// Routes lists the live routes: champion, then challenger and shadow if set.
func (t *Table) Routes() []*Route {
	routes := []*Route{t.Champion}
	if t.Challenger != nil {
		routes = append(routes, t.Challenger)
	}
	if t.Shadow != nil {
		routes = append(routes, t.Shadow)
	}
	return routes
}

// Live describes the table for the model_info and model_traffic_weight metrics.
func (t *Table) Live() []metrics.Live {
	var live []metrics.Live
	for _, r := range t.Routes() {
		w := 0.0
		switch r.Variant {
		case Champion:
			w = float64(100-t.ChallengerShare()) / 100
		case Challenger:
			w = float64(t.ChallengerShare()) / 100
		}
		live = append(live, metrics.Live{Variant: string(r.Variant), Version: r.Version.Number, SHA256: r.Version.SHA256, Weight: w})
	}
	return live
}

// Router holds the current table. Reading it is one atomic load; it is safe
// for concurrent use.
type Router struct {
	current atomic.Pointer[Table]
}

// Current returns the live table, or nil before the first publish.
func (r *Router) Current() *Table { return r.current.Load() }

// Publish makes t the live table and returns the one it replaced.
func (r *Router) Publish(t *Table) *Table { return r.current.Swap(t) }

// Acquire picks a route for a request and takes a reference on its version,
// so the version stays open until Release even if a swap retires it. It
// returns nil when no table is live.
func (r *Router) Acquire(applicationID string) (*Table, *Route) {
	for {
		t := r.current.Load()
		if t == nil {
			return nil, nil
		}
		route := t.Pick(applicationID)
		if route.Version.Acquire() {
			return t, route
		}
		// The version was retired between the load and the acquire: a newer
		// table is already published, so read it again.
	}
}

// AcquireAll takes a reference on every route of the live table, for work
// that may use several variants of one snapshot (a batch, a shadow run).
// release gives them back. It returns a nil table when none is live.
func (r *Router) AcquireAll() (t *Table, release func()) {
	for {
		t = r.current.Load()
		if t == nil {
			return nil, func() {}
		}
		routes := t.Routes()
		held := routes[:0:0]
		for _, route := range routes {
			if !route.Version.Acquire() {
				break
			}
			held = append(held, route)
		}
		if len(held) == len(routes) {
			return t, func() {
				for _, route := range held {
					route.Version.Release()
				}
			}
		}
		for _, route := range held {
			route.Version.Release()
		}
	}
}
