// Package registry is where model versions come from: the MLflow Model Registry
// (subpackage mlflow) or the local registry over the versions shipped in
// artifacts/, and the verified on-disk cache that every version passes through
// before the server opens it.
package registry

import (
	"context"
	"errors"
)

// The aliases the server acts on. Aliases are the truth: the server serves what
// they point at, never "the latest version".
const (
	AliasChampion   = "champion"
	AliasChallenger = "challenger"
	AliasShadow     = "shadow"
)

// TrafficTag is the registered-model tag that holds the champion/challenger
// split, so that every replica reads the same weights.
const TrafficTag = "serve.traffic"

var (
	// ErrNotFound means the model, version or alias does not exist.
	ErrNotFound = errors.New("registry: not found")
	// ErrUnavailable means the registry could not be reached or failed.
	ErrUnavailable = errors.New("registry: unavailable")
	// ErrCorrupt means a file does not match its recorded sha256.
	ErrCorrupt = errors.New("registry: corrupt artifact")
)

// State is what the registry says about one registered model.
type State struct {
	// Aliases maps an alias to a version ("champion" → "3").
	Aliases map[string]string
	// Tags are the registered model's tags.
	Tags map[string]string
}

// Source is a model registry the server reads versions from.
type Source interface {
	// Key names the source in cache paths: versions with the same number from
	// two sources are different models.
	Key() string
	// Kind is the kind of source for /ready and metrics: "mlflow" or "artifacts".
	Kind() string
	// Describe says where the source is, for /ready and logs.
	Describe() string
	// State returns the model's aliases and tags.
	State(ctx context.Context, model string) (State, error)
	// Download writes every file of the version into dir, which exists and is
	// empty. It must not leave partial files behind on success.
	Download(ctx context.Context, model, version, dir string) error
}
