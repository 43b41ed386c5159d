package registry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// Memory remembers the last state a registry reported, on disk, so that a
// server restarted while the registry is down can serve what it served before
// (see Offline). It wraps the registry and is used in its place; it is safe
// for concurrent use.
type Memory struct {
	Source
	// Dir holds one remembered state per registry and model.
	Dir string
}

func (m *Memory) file(model string) string {
	return filepath.Join(m.Dir, safeName(m.Source.Key()), safeName(model)+".json")
}

// State implements Source: the registry's answer, remembered on success.
func (m *Memory) State(ctx context.Context, model string) (State, error) {
	st, err := m.Source.State(ctx, model)
	if err != nil {
		return st, err
	}
	raw, _ := json.Marshal(stateFile(st))
	if err := os.MkdirAll(filepath.Dir(m.file(model)), 0o755); err == nil {
		_ = writeFileAtomic(m.file(model), raw) // best effort: serving goes on without it
	}
	return st, nil
}

// Offline returns a Source that reports the remembered state and has only the
// verified cache to load versions from.
func (m *Memory) Offline() Source { return &offline{m} }

type offline struct{ m *Memory }

// Key is the registry's own, so versions are found where it cached them.
func (o *offline) Key() string      { return o.m.Source.Key() }
func (o *offline) Kind() string     { return "cache" }
func (o *offline) Describe() string { return "last known state of " + o.m.Source.Describe() }

func (o *offline) State(_ context.Context, model string) (State, error) {
	raw, err := os.ReadFile(o.m.file(model))
	if errors.Is(err, fs.ErrNotExist) {
		return State{}, fmt.Errorf("%w: no remembered state of %s", ErrNotFound, model)
	}
	if err != nil {
		return State{}, err
	}
	var f stateFile
	if err := json.Unmarshal(raw, &f); err != nil {
		return State{}, fmt.Errorf("registry: remembered state of %s: %w", model, err)
	}
	return State{Aliases: orEmpty(f.Aliases), Tags: orEmpty(f.Tags)}, nil
}

// Download fails: offline, a version is served only if the cache has a
// verified copy (Cache.Get looks there first).
func (o *offline) Download(context.Context, string, string, string) error {
	return fmt.Errorf("%w: %s is unreachable and the version is not in the verified cache", ErrUnavailable, o.m.Source.Describe())
}
