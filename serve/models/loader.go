package models

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"

	"mlservice/registry"
	"mlservice/schemas"
	"mlservice/serve/drift"
	"mlservice/serve/reasons"
)

// The reasons a load fails, as counted in model_load_failures_total{reason}.
const (
	ReasonDownload     = "download"
	ReasonVerify       = "verify"
	ReasonModelDir     = "model_dir"
	ReasonSession      = "session"
	ReasonSignature    = "signature"
	ReasonServingCheck = "serving_check"
	ReasonReasons      = "reasons"
)

// LoadError says which step of the load pipeline failed and why.
type LoadError struct {
	Model, Version string
	Reason         string
	Err            error
}

func (e *LoadError) Error() string {
	return fmt.Sprintf("loading %s version %s: %s: %v", e.Model, e.Version, e.Reason, e.Err)
}

func (e *LoadError) Unwrap() error { return e.Err }

// OpenFunc opens a scorer for an ONNX file (inference.Open in production).
type OpenFunc func(path string) (Scorer, error)

// CheckFunc replays a version's serving check before it may serve
// (decision.ServingCheck: the check goes through the decision path itself).
type CheckFunc func(v *Version, check ServingCheck) error

// Sessions is told when a scorer opens and when it closes, for
// model_sessions_open (*metrics.Models implements it).
type Sessions interface {
	SessionOpened()
	SessionClosed()
}

// Loader runs the load pipeline: download → verify sha256 → open a session →
// check the signature against the API's fields → replay serving_check.json.
// Only a Version that passed every step is returned; on failure nothing is
// left open. Loader is safe for concurrent use.
type Loader struct {
	Cache *registry.Cache
	Open  OpenFunc
	// Check replays the serving check; required (a Loader without one
	// refuses every version rather than serve one unverified).
	Check CheckFunc
	// Sessions, when set, counts open sessions.
	Sessions Sessions
	// Log receives errors closing a retired version's session (default slog.Default()).
	Log *slog.Logger
	// Drift, when set, watches every version that passed its checks until
	// its session closes (*drift.Tracker).
	Drift Watcher
}

// Watcher follows the versions that are open, each with its training
// distribution; *drift.Tracker is the real one.
type Watcher interface {
	Track(model, version string, b *drift.Baseline)
	Forget(model, version string)
}

// Load fetches (or finds in the cache) and verifies one version of model.
func (l *Loader) Load(ctx context.Context, src registry.Source, model, version string) (*Version, error) {
	entry, err := l.Cache.Get(ctx, src, model, version)
	if err != nil {
		reason := ReasonDownload
		if errors.Is(err, registry.ErrCorrupt) {
			reason = ReasonVerify
		}
		return nil, &LoadError{model, version, reason, err}
	}
	return l.open(model, version, src.Kind(), entry)
}

// LoadCached loads a version only from the verified cache, for starting while
// the registry is down.
func (l *Loader) LoadCached(src registry.Source, model, version string) (*Version, error) {
	entry, err := l.Cache.Lookup(src, model, version)
	if err != nil {
		return nil, &LoadError{model, version, ReasonVerify, err}
	}
	return l.open(model, version, "cache", entry)
}

var errNoCheck = errors.New("models: the Loader has no serving check (Loader.Check)")

func (l *Loader) open(model, version, source string, entry registry.Entry) (*Version, error) {
	fail := func(reason string, err error) error { return &LoadError{model, version, reason, err} }
	if l.Check == nil {
		return nil, fail(ReasonServingCheck, errNoCheck)
	}
	dir, err := ReadModelDir(entry.Dir)
	if err != nil {
		return nil, fail(ReasonModelDir, err)
	}
	features, err := signatureFeatures(dir.Inputs)
	if err != nil {
		return nil, fail(ReasonSignature, err)
	}
	scorer, err := l.Open(dir.ModelFile)
	if err != nil {
		return nil, fail(ReasonSession, err)
	}
	if scorer.Columns() != len(features) {
		err := fmt.Errorf("the signature names %d inputs, the ONNX graph takes %d columns", len(features), scorer.Columns())
		return nil, fail(ReasonSignature, errors.Join(err, scorer.Close()))
	}
	if l.Sessions != nil {
		l.Sessions.SessionOpened()
	}
	rel := "model.onnx"
	if r, ok := relPath(entry.Dir, dir.ModelFile); ok {
		rel = r
	}
	v := NewVersion(model, version, entry.Files[rel], source, features, scorer)
	v.onClose = l.closed
	// The reasons table (serve/reasons): one that does not cover the graph's
	// contrib_* outputs fails the load; none at all lets the version load as
	// one that may serve only as shadow.
	if v.Reasons, err = reasons.Load(filepath.Dir(dir.ModelFile), v.Characteristics); err != nil {
		v.Release()
		return nil, fail(ReasonReasons, err)
	}
	v.NoReasons = reasons.CanDecide(v.Reasons, v.Characteristics)
	if v.Reasons != nil {
		v.Threshold = float32(v.Reasons.Threshold)
	}
	v.Baseline = dir.Baseline
	if err := l.Check(v, dir.Check); err != nil {
		v.Release()
		return nil, fail(ReasonServingCheck, err)
	}
	if l.Drift != nil && v.Baseline != nil {
		l.Drift.Track(v.Name, v.Number, v.Baseline)
		v.watched = true
	}
	return v, nil
}

// closed is every loaded Version's close hook.
func (l *Loader) closed(v *Version, err error) {
	if v.watched {
		l.Drift.Forget(v.Name, v.Number)
	}
	if l.Sessions != nil {
		l.Sessions.SessionClosed()
	}
	if err != nil {
		log := l.Log
		if log == nil {
			log = slog.Default()
		}
		log.Error("closing a retired model version failed", "model", v.Name, "version", v.Number, "error", err)
	}
}

// signatureFeatures maps the signature's input names to application fields.
func signatureFeatures(inputs []string) ([]schemas.Feature, error) {
	features := make([]schemas.Feature, len(inputs))
	seen := map[schemas.Feature]bool{}
	for i, name := range inputs {
		f, ok := schemas.FeatureByName(name)
		if !ok {
			return nil, fmt.Errorf("signature input %q is not a field of the API", name)
		}
		if seen[f] {
			return nil, fmt.Errorf("signature input %q appears twice", name)
		}
		seen[f] = true
		features[i] = f
	}
	return features, nil
}

// relPath is filepath.Rel for a file known to be inside dir.
func relPath(dir, file string) (string, bool) {
	rel, err := filepath.Rel(dir, file)
	if err != nil || strings.HasPrefix(rel, "..") {
		return "", false
	}
	return filepath.ToSlash(rel), true
}
