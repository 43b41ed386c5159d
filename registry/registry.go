// Package registry is where model versions come from: the MLflow Model Registry
// (subpackage mlflow) or the local registry over the versions shipped in
// artifacts/, and the verified on-disk cache that every version passes through
// before the server opens it.
package registry

import (
	"context"
	"errors"
	"fmt"
)

// Variant is the role a version plays for a registered model: champion
// (answers), challenger (answers for its share of traffic) or shadow (scores
// a copy of the traffic, never answers). Its string form is the registry alias
// that defines it. Aliases are the truth: the server serves what they point
// at, never "the latest version".
type Variant string

// The variants, in the order the server lists them.
const (
	Champion   Variant = "champion"
	Challenger Variant = "challenger"
	Shadow     Variant = "shadow"
)

// Variants returns every variant, champion first.
func Variants() []Variant { return []Variant{Champion, Challenger, Shadow} }

// ParseVariant returns the variant an alias names; ErrUnknownVariant for any
// other string.
func ParseVariant(alias string) (Variant, error) {
	for _, v := range Variants() {
		if alias == string(v) {
			return v, nil
		}
	}
	return "", fmt.Errorf("%w: %q (want champion, challenger or shadow)", ErrUnknownVariant, alias)
}

// String returns the alias.
func (v Variant) String() string { return string(v) }

// Serves reports whether the variant answers requests (champion, challenger);
// a shadow only scores copies.
func (v Variant) Serves() bool { return v == Champion || v == Challenger }

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
	// ErrUnknownVariant means a string names no variant.
	ErrUnknownVariant = errors.New("registry: not a variant")
)

// State is what the registry says about one registered model.
type State struct {
	// Aliases maps an alias to a version ("champion" → "3").
	Aliases map[string]string
	// Tags are the registered model's tags.
	Tags map[string]string
}

// Version returns the version the variant's alias points at ("" for none).
func (s State) Version(v Variant) string { return s.Aliases[string(v)] }

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
