// Package models turns a registry's model version into a live, verified
// Version that can score applications, and owns its lifetime: a Version is
// closed only after the last request using it has finished.
package models

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"mlservice/schemas"
	"mlservice/serve/drift"
	"mlservice/serve/reasons"
)

// Scorer scores rows of float32 features; *inference.Session is the real one.
// Implementations must be safe for concurrent use.
type Scorer interface {
	// Columns is the number of features per row.
	Columns() int
	// Score fills probs and approve for len(probs) rows of x (row-major).
	Score(x []float32, probs []float32, approve []bool) error
	// Close releases the scorer; no Score call is in flight.
	Close() error
}

// ContributionScorer is a Scorer whose model also gives, in the same run, each
// characteristic's log-odds contribution (the contrib_<characteristic>
// outputs of a scorecard-shaped model). *inference.Session implements it.
type ContributionScorer interface {
	Scorer
	// Characteristics names the contributions in the order ScoreContributions
	// writes them; empty for a model without contrib_* outputs.
	Characteristics() []string
	// ScoreContributions is Score that also writes len(Characteristics())
	// contributions per row into contrib (row-major).
	ScoreContributions(x, probs []float32, approve []bool, contrib []float32) error
}

// Version is one loaded model version. Its identity fields never change after
// loading, so a Version can be shared freely; Score is safe for concurrent use.
type Version struct {
	Name     string
	Number   string // the registry's version number, e.g. "3" (a "version" in JSON and metrics)
	SHA256   string // of the ONNX file
	Source   string // where it was loaded from, e.g. "mlflow", "cache", "artifacts"
	LoadedAt time.Time
	// Features are the model's input columns, mapped to application fields.
	Features []schemas.Feature
	// Characteristics name the contributions the model gives with every
	// score (nil for a version without contrib_* outputs).
	Characteristics []string
	// Threshold is the probability at and above which the model approves.
	Threshold float32
	// Reasons is the version's reasons table (reasons.json), checked against
	// Characteristics at load; nil when the version has none.
	Reasons *reasons.Table
	// NoReasons says why the version cannot give reasons for a decline (and
	// so may serve only as shadow); nil when it can.
	NoReasons error
	// Baseline is the training distribution drift is measured against (nil:
	// none shipped with the version).
	Baseline *drift.Baseline

	scorer      Scorer
	contributor ContributionScorer // nil without characteristics
	// onClose runs once, after the scorer is closed, with Close's error
	// (the Loader logs it and keeps model_sessions_open in step).
	onClose func(v *Version, err error)
	// watched: the Loader's drift Watcher tracks this Version (and must be
	// told when it closes).
	watched bool
	// refs counts the owners of the Version: one for each routing table that
	// holds it (well, the one reference the publisher holds) plus one per
	// in-flight request. The scorer is closed when it drops to zero.
	refs atomic.Int64
	// closed is set once the scorer has been closed, for tests and /admin.
	closed atomic.Bool
}

// DefaultThreshold is the approval threshold of a version that names none.
const DefaultThreshold = 0.5

// ErrRetired means the Version was retired before the caller acquired it;
// the caller should read the current routing table again.
var ErrRetired = errors.New("models: version retired")

// NewVersion wraps a scorer; the caller holds the one initial reference.
func NewVersion(name, version, sha, source string, features []schemas.Feature, s Scorer) *Version {
	v := &Version{Name: name, Number: version, SHA256: sha, Source: source,
		LoadedAt: time.Now().UTC(), Features: features, Threshold: DefaultThreshold, scorer: s}
	if cs, ok := s.(ContributionScorer); ok && len(cs.Characteristics()) > 0 {
		v.contributor = cs
		v.Characteristics = cs.Characteristics()
	}
	v.refs.Store(1)
	return v
}

// Acquire takes a reference for one request. It fails once the Version has
// been retired and its last reference released.
func (v *Version) Acquire() bool {
	for {
		n := v.refs.Load()
		if n <= 0 {
			return false
		}
		if v.refs.CompareAndSwap(n, n+1) {
			return true
		}
	}
}

// Release drops a reference; the last one closes the scorer and reports
// Close's error to the loader's hook. Releasing more often than the Version
// was acquired is a bug in the caller and panics, as Caddy's UsagePool does:
// silently going below zero would close a session under a running request.
func (v *Version) Release() {
	switch n := v.refs.Add(-1); {
	case n > 0:
		return
	case n < 0:
		panic(fmt.Sprintf("models: %s released more often than acquired (references %d)", v, n))
	}
	var err error
	if v.scorer != nil {
		err = v.scorer.Close()
	}
	v.closed.Store(true)
	if v.onClose != nil {
		v.onClose(v, err)
	}
}

// Closed reports whether the scorer has been released.
func (v *Version) Closed() bool { return v.closed.Load() }

// String names the version for logs.
func (v *Version) String() string { return fmt.Sprintf("%s/%s", v.Name, v.Number) }

// FillRow writes the model's features of a into row (len(v.Features) wide).
func (v *Version) FillRow(a *schemas.Application, row []float32) {
	for j, f := range v.Features {
		row[j] = float32(a.Value(f))
	}
}

// Score runs the model once over rows of x (FillRow's layout, len(probs)
// rows) and writes each row's probability and decision, and, when the
// version has characteristics, len(v.Characteristics) contributions per row
// into contrib. The caller holds a reference (Acquire). serve/decision is
// the one caller: every decision is scored here.
func (v *Version) Score(x, probs []float32, approve []bool, contrib []float32) error {
	if v.contributor != nil {
		if len(contrib) != len(probs)*len(v.Characteristics) {
			return fmt.Errorf("models: %d contributions for %d rows of %d characteristics", len(contrib), len(probs), len(v.Characteristics))
		}
		return v.contributor.ScoreContributions(x, probs, approve, contrib)
	}
	return v.scorer.Score(x, probs, approve)
}

// TensorInfo describes one input or output of a version's model: name, element
// type as the Open Inference Protocol spells it (FP32, INT64, ...) and shape,
// -1 for a dimension of any size.
type TensorInfo struct {
	Name     string
	DataType string
	Shape    []int64
}

// Describer is a Scorer that can describe its model's tensors
// (*inference.Session through the server's wiring).
type Describer interface {
	Tensors() (inputs, outputs []TensorInfo)
}

// Tensors describes the model's inputs and outputs; ok is false when the
// scorer cannot say.
func (v *Version) Tensors() (inputs, outputs []TensorInfo, ok bool) {
	d, ok := v.scorer.(Describer)
	if !ok {
		return nil, nil, false
	}
	inputs, outputs = d.Tensors()
	return inputs, outputs, true
}
