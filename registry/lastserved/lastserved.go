// Package lastserved remembers, on disk, what a server last served from a
// registry: only versions that loaded and verified here, each pinned to the
// sha256 of its model file. A server restarted while the registry is down
// serves exactly those, from the verified cache, and nothing else: never a
// version the registry named but that never loaded, and never a different
// model that happens to carry the same version number.
package lastserved

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"mlservice/internal/durable"
	"mlservice/registry"
)

// formatVersion marks files in this format; a file without it (an older
// server's, which remembered aliases whether or not they loaded) is ignored.
const formatVersion = 2

// Dir is the record: one file per registry and model under Path. It is safe
// for concurrent use by one process.
type Dir struct {
	Path string
	// Registry is where the versions came from: its Key names the file, and
	// the verified cache holds the versions under the same key.
	Registry registry.Source
}

type file struct {
	FormatVersion int               `json:"format_version"`
	Aliases       map[string]string `json:"aliases"`
	Tags          map[string]string `json:"tags"`
	SHA256        map[string]string `json:"sha256"`
}

func (d *Dir) file(model string) string {
	return filepath.Join(d.Path, registry.SafeName(d.Registry.Key()), registry.SafeName(model)+".json")
}

// Save records st as what serves model: its aliases, tags and the sha256 of
// every aliased version, which must all be there.
func (d *Dir) Save(model string, st registry.State) error {
	for alias, v := range st.Aliases {
		if st.SHA256[v] == "" {
			return fmt.Errorf("lastserved: %s version %s (%s) has no sha256", model, v, alias)
		}
	}
	raw, err := json.MarshalIndent(file{formatVersion, st.Aliases, st.Tags, st.SHA256}, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(d.file(model)), 0o755); err != nil {
		return fmt.Errorf("lastserved: %w", err)
	}
	if err := durable.WriteFile(d.file(model), raw); err != nil {
		return fmt.Errorf("lastserved: %w", err)
	}
	return nil
}

// Load returns the recorded state; registry.ErrNotFound when there is none.
func (d *Dir) Load(model string) (registry.State, error) {
	raw, err := os.ReadFile(d.file(model))
	if errors.Is(err, fs.ErrNotExist) {
		return registry.State{}, fmt.Errorf("%w: this server has not served %s from %s before", registry.ErrNotFound, model, d.Registry.Describe())
	}
	if err != nil {
		return registry.State{}, fmt.Errorf("lastserved: %w", err)
	}
	var f file
	if err := json.Unmarshal(raw, &f); err != nil {
		return registry.State{}, fmt.Errorf("lastserved: %s: %w", d.file(model), err)
	}
	if f.FormatVersion != formatVersion {
		return registry.State{}, fmt.Errorf("%w: %s predates sha256 pins and is ignored", registry.ErrNotFound, d.file(model))
	}
	return registry.State{Aliases: orEmpty(f.Aliases), Tags: orEmpty(f.Tags), SHA256: orEmpty(f.SHA256)}, nil
}

func orEmpty(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

// Source returns a registry.Source that reports the recorded state, with its
// sha256 pins, and has only the verified cache to load versions from.
func (d *Dir) Source() registry.Source { return offline{d} }

type offline struct{ d *Dir }

var _ registry.Source = offline{}

// Key is the registry's own, so versions are found where it cached them.
func (o offline) Key() string      { return o.d.Registry.Key() }
func (o offline) Kind() string     { return "cache" }
func (o offline) Describe() string { return "last served from " + o.d.Registry.Describe() }

func (o offline) State(_ context.Context, model string) (registry.State, error) {
	return o.d.Load(model)
}

// Download fails: offline, a version is served only if the cache has a
// verified copy (Cache.Get looks there first).
func (o offline) Download(context.Context, string, string, string) error {
	return fmt.Errorf("%w: %s is unreachable and the version is not in the verified cache", registry.ErrUnavailable, o.d.Registry.Describe())
}
