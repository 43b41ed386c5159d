package models

import (
	"context"
	"errors"
	"fmt"
	"math"
	"path/filepath"
	"strings"

	"mlservice/registry"
	"mlservice/schemas"
)

// MaxServingCheckDelta is the largest difference allowed between a probability
// the server computes and the one the training run recorded.
const MaxServingCheckDelta = 1e-5

// The reasons a load fails, as counted in model_load_failures_total{reason}.
const (
	ReasonDownload     = "download"
	ReasonVerify       = "verify"
	ReasonModelDir     = "model_dir"
	ReasonSession      = "session"
	ReasonSignature    = "signature"
	ReasonServingCheck = "serving_check"
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

// Loader runs the load pipeline: download → verify sha256 → open a session →
// check the signature against the API's fields → replay serving_check.json.
// Only a Version that passed every step is returned; on failure nothing is
// left open. Loader is safe for concurrent use.
type Loader struct {
	Cache *registry.Cache
	Open  OpenFunc
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

func (l *Loader) open(model, version, source string, entry registry.Entry) (*Version, error) {
	fail := func(reason string, err error) error { return &LoadError{model, version, reason, err} }
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
		scorer.Close()
		return nil, fail(ReasonSignature, fmt.Errorf("the signature names %d inputs, the ONNX graph takes %d columns", len(features), scorer.Columns()))
	}
	rel := "model.onnx"
	if r, ok := relPath(entry.Dir, dir.ModelFile); ok {
		rel = r
	}
	v := NewVersion(model, version, entry.Files[rel], source, features, scorer)
	if err := ReplayServingCheck(v, dir.Check); err != nil {
		v.Release()
		return nil, fail(ReasonServingCheck, err)
	}
	return v, nil
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

// ReplayServingCheck scores the check's cases through the same path requests
// take and compares with what the training run recorded.
func ReplayServingCheck(v *Version, check ServingCheck) error {
	tol := MaxServingCheckDelta
	if check.Tolerance > 0 && check.Tolerance < tol {
		tol = check.Tolerance
	}
	apps := make([]*schemas.Application, len(check.Cases))
	for i, c := range check.Cases {
		a := &schemas.Application{}
		for _, f := range schemas.Features {
			val, ok := c.Input[f.String()]
			if !ok {
				return fmt.Errorf("case %d has no %s", i, f)
			}
			a.Set(f, val)
		}
		apps[i] = a
	}
	probs := make([]float32, len(apps))
	approve := make([]bool, len(apps))
	if err := v.Decide(apps, nil, probs, approve); err != nil {
		return err
	}
	for i, c := range check.Cases {
		d := math.Abs(float64(probs[i]) - c.Probability)
		if math.IsNaN(d) || d > tol {
			return fmt.Errorf("case %d: probability %.8f, training run recorded %.8f (|Δp| %.2g > %.0e)", i, probs[i], c.Probability, d, tol)
		}
		if approve[i] != c.Approve {
			return fmt.Errorf("case %d: decision %v, training run recorded %v", i, approve[i], c.Approve)
		}
	}
	return nil
}

// relPath is filepath.Rel for a file known to be inside dir.
func relPath(dir, file string) (string, bool) {
	rel, err := filepath.Rel(dir, file)
	if err != nil || strings.HasPrefix(rel, "..") {
		return "", false
	}
	return filepath.ToSlash(rel), true
}
