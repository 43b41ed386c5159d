package local

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"sync"

	"mlservice/internal/durable"
	"mlservice/registry"
)

// Registry is the local registry made writable: the versions come from a
// read-only Tree (the embedded artifacts), and the aliases and tags that
// ops change through /admin live in a state file under SERVE_CACHE_DIR, so
// they survive restarts. Until the first change the tree's registry.json
// decides; after it, the state file does (delete it to go back). Registry
// is safe for concurrent use.
type Registry struct {
	*Tree
	// Dir holds one <model>.json per model.
	Dir string

	mu sync.Mutex
}

var (
	_ registry.Source = (*Registry)(nil)
	_ registry.Writer = (*Registry)(nil)
)

type stateFile struct {
	Aliases map[string]string `json:"aliases"`
	Tags    map[string]string `json:"tags"`
}

func (s *Registry) file(model string) string {
	return filepath.Join(s.Dir, registry.SafeName(model)+".json")
}

// State implements registry.Source: the state file if there is one, else registry.json.
func (s *Registry) State(ctx context.Context, model string) (registry.State, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state(ctx, model)
}

func (s *Registry) state(ctx context.Context, model string) (registry.State, error) {
	raw, err := os.ReadFile(s.file(model))
	if errors.Is(err, fs.ErrNotExist) {
		return s.Tree.State(ctx, model)
	}
	if err != nil {
		return registry.State{}, fmt.Errorf("registry: local state: %w", err)
	}
	var f stateFile
	if err := json.Unmarshal(raw, &f); err != nil {
		return registry.State{}, fmt.Errorf("registry: local state %s: %w", s.file(model), err)
	}
	return registry.State{Aliases: orEmpty(f.Aliases), Tags: orEmpty(f.Tags)}, nil
}

func orEmpty(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

// update applies change to the current state and writes it atomically.
func (s *Registry) update(ctx context.Context, model string, change func(*registry.State)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.state(ctx, model)
	if err != nil {
		return err
	}
	st = registry.State{Aliases: copyMap(st.Aliases), Tags: copyMap(st.Tags)}
	change(&st)
	raw, err := json.MarshalIndent(stateFile{Aliases: st.Aliases, Tags: st.Tags}, "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(s.Dir, 0o755); err != nil {
		return fmt.Errorf("registry: local state: %w", err)
	}
	if err := durable.WriteFile(s.file(model), raw); err != nil {
		return fmt.Errorf("registry: local state: %w", err)
	}
	return nil
}

func copyMap(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// HasVersion reports registry.ErrNotFound unless the tree ships the version.
func (s *Registry) HasVersion(_ context.Context, model, version string) error {
	root := path.Join(model, "versions", version)
	if !validVersion(version) || !fs.ValidPath(root) {
		return fmt.Errorf("%w: version %q", registry.ErrNotFound, version)
	}
	if _, err := fs.Stat(s.FS, path.Join(root, "MLmodel")); err != nil {
		return fmt.Errorf("%w: %s has no version %s", registry.ErrNotFound, model, version)
	}
	return nil
}

// SetAlias points alias at version.
func (s *Registry) SetAlias(ctx context.Context, model, alias, version string) error {
	return s.update(ctx, model, func(st *registry.State) { st.Aliases[alias] = version })
}

// DeleteAlias removes alias.
func (s *Registry) DeleteAlias(ctx context.Context, model, alias string) error {
	return s.update(ctx, model, func(st *registry.State) { delete(st.Aliases, alias) })
}

// SetModelTag sets a registered-model tag.
func (s *Registry) SetModelTag(ctx context.Context, model, key, value string) error {
	return s.update(ctx, model, func(st *registry.State) { st.Tags[key] = value })
}

// DeleteModelTag removes a registered-model tag.
func (s *Registry) DeleteModelTag(ctx context.Context, model, key string) error {
	return s.update(ctx, model, func(st *registry.State) { delete(st.Tags, key) })
}
