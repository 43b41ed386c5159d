// Package models turns a registry's model version into a live, verified
// Version that can decide applications, and owns its lifetime: a Version is
// closed only after the last request using it has finished.
package models

import (
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"mlservice/schemas"
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

// Version is one loaded model version. Its identity fields never change after
// loading, so a Version can be shared freely; Decide is safe for concurrent use.
type Version struct {
	Name     string
	Version  string
	SHA256   string // of the ONNX file
	Source   string // where it was loaded from, e.g. "mlflow", "cache", "artifacts"
	LoadedAt time.Time
	// Features are the model's input columns, mapped to application fields.
	Features []schemas.Feature

	scorer Scorer
	// refs counts the owners of the Version: one for each routing table that
	// holds it (well, the one reference the publisher holds) plus one per
	// in-flight request. The scorer is closed when it drops to zero.
	refs atomic.Int64
	// closed is set once the scorer has been closed, for tests and /admin.
	closed atomic.Bool
}

// ErrRetired means the Version was retired before the caller acquired it;
// the caller should read the current routing table again.
var ErrRetired = errors.New("models: version retired")

// NewVersion wraps a scorer; the caller holds the one initial reference.
func NewVersion(name, version, sha, source string, features []schemas.Feature, s Scorer) *Version {
	v := &Version{Name: name, Version: version, SHA256: sha, Source: source,
		LoadedAt: time.Now().UTC(), Features: features, scorer: s}
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

// Release drops a reference; the last one closes the scorer.
func (v *Version) Release() {
	if v.refs.Add(-1) == 0 {
		v.scorer.Close()
		v.closed.Store(true)
	}
}

// Closed reports whether the scorer has been released.
func (v *Version) Closed() bool { return v.closed.Load() }

// String names the version for logs.
func (v *Version) String() string { return fmt.Sprintf("%s/%s", v.Name, v.Version) }

// FillRow writes the model's features of a into row (len(v.Features) wide).
func (v *Version) FillRow(a *schemas.Application, row []float32) {
	for j, f := range v.Features {
		row[j] = float32(a.Value(f))
	}
}

// Decide scores applications in one model run. probs and approve receive one
// entry per application; x is scratch space of at least
// len(apps)*len(v.Features) values (nil allocates it). The caller holds a
// reference (Acquire).
func (v *Version) Decide(apps []*schemas.Application, x []float32, probs []float32, approve []bool) error {
	width := len(v.Features)
	if cap(x) < len(apps)*width {
		x = make([]float32, len(apps)*width)
	}
	x = x[:len(apps)*width]
	for i, a := range apps {
		v.FillRow(a, x[i*width:(i+1)*width])
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
