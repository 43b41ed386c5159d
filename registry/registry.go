// Package registry is where model versions come from. The root holds what
// every backend shares: the Source and Writer interfaces, the State a
// registry reports, the sentinel errors and the verified on-disk Cache that
// every version passes through before the server opens it. Each backend is a
// subpackage that asserts the interfaces it implements:
//
//   - mlflow: the MLflow Model Registry over its REST API;
//   - local: the versions shipped in artifacts/, writable through a state file;
//   - lastserved: what this server last served, on disk, for a start while
//     the registry is down.
package registry

import (
	"context"
	"errors"
	"fmt"
	"strings"
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
	// ErrCorrupt means a file does not match its recorded sha256, or a
	// version is not what its listing says.
	ErrCorrupt = errors.New("registry: corrupt artifact")
	// ErrDenied means the registry refused the credentials for the call
	// (a read-only account asked to write, say).
	ErrDenied = errors.New("registry: permission denied")
	// ErrTooLarge means a file or a version is over its size cap.
	ErrTooLarge = errors.New("registry: artifact too large")
	// ErrUnknownVariant means a string names no variant.
	ErrUnknownVariant = errors.New("registry: not a variant")
)

// State is what the registry says about one registered model.
type State struct {
	// Aliases maps an alias to a version ("champion" → "3").
	Aliases map[string]string
	// Tags are the registered model's tags.
	Tags map[string]string
	// SHA256 pins versions to the sha256 of their model file (version →
	// sum); a version whose file differs must not serve. Only lastserved
	// sets it.
	SHA256 map[string]string
	// Generation tells one registered model from another of the same name
	// (MLflow: when it was created; "" where a source cannot tell): a model
	// deleted and created again numbers its versions from 1 again, and its
	// "version 1" is not the version 1 loaded before.
	Generation string
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

// Identifier is a Source that can say what a version number stands for
// now (MLflow: where the version's files are stored). The cache compares it
// with its copy's: a registered model deleted and created again numbers its
// versions from 1 again, and the copy of the old "version 1" must not serve
// for the new one.
type Identifier interface {
	Identity(ctx context.Context, model, version string) (string, error)
}

// Writer is a registry the admin API can change: MLflow in MLflow mode, the
// local state file otherwise.
type Writer interface {
	// HasVersion returns an error wrapping ErrNotFound for a version the
	// registry does not have.
	HasVersion(ctx context.Context, model, version string) error
	SetAlias(ctx context.Context, model, alias, version string) error
	DeleteAlias(ctx context.Context, model, alias string) error
	SetModelTag(ctx context.Context, model, key, value string) error
	DeleteModelTag(ctx context.Context, model, key string) error
}

// SafeName keeps a registry-supplied name (a model, a version, a source key)
// to one path element, so it can never escape the directory it names a file
// or directory in.
func SafeName(s string) string {
	r := strings.NewReplacer("/", "_", "\\", "_", "..", "__", "\x00", "_")
	s = r.Replace(s)
	if s == "" || s == "." {
		return "_"
	}
	return s
}
