package registry

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
)

// LocalState is the local registry made writable: the versions come from a
// read-only Local tree (the embedded artifacts), and the aliases and tags that
// ops change through /admin live in a state file under SERVE_CACHE_DIR, so
// they survive restarts. Until the first change the tree's registry.json
// decides; after it, the state file does (delete it to go back). LocalState
// is safe for concurrent use.
type LocalState struct {
	*Local
	// Dir holds one <model>.json per model.
	Dir string

	mu sync.Mutex
}

var _ Source = (*LocalState)(nil)

type stateFile struct {
	Aliases map[string]string `json:"aliases"`
	Tags    map[string]string `json:"tags"`
}

func (s *LocalState) file(model string) string {
	return filepath.Join(s.Dir, safeName(model)+".json")
}

// State implements Source: the state file if there is one, else registry.json.
func (s *LocalState) State(ctx context.Context, model string) (State, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.state(ctx, model)
}

func (s *LocalState) state(ctx context.Context, model string) (State, error) {
	raw, err := os.ReadFile(s.file(model))
	if errors.Is(err, fs.ErrNotExist) {
		return s.Local.State(ctx, model)
	}
	if err != nil {
		return State{}, fmt.Errorf("registry: local state: %w", err)
	}
	var f stateFile
	if err := json.Unmarshal(raw, &f); err != nil {
		return State{}, fmt.Errorf("registry: local state %s: %w", s.file(model), err)
	}
	return State{Aliases: orEmpty(f.Aliases), Tags: orEmpty(f.Tags)}, nil
}

func orEmpty(m map[string]string) map[string]string {
	if m == nil {
		return map[string]string{}
	}
	return m
}

// update applies change to the current state and writes it atomically.
func (s *LocalState) update(ctx context.Context, model string, change func(*State)) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	st, err := s.state(ctx, model)
	if err != nil {
		return err
	}
	st = State{Aliases: copyMap(st.Aliases), Tags: copyMap(st.Tags)}
	change(&st)
	raw, err := json.MarshalIndent(stateFile(st), "", "  ")
	if err != nil {
		return err
	}
	if err := os.MkdirAll(s.Dir, 0o755); err != nil {
		return fmt.Errorf("registry: local state: %w", err)
	}
	return writeFileAtomic(s.file(model), raw)
}

func copyMap(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// HasVersion reports ErrNotFound unless the tree ships the version.
func (s *LocalState) HasVersion(_ context.Context, model, version string) error {
	root := path.Join(model, "versions", version)
	if !validVersion(version) || !fs.ValidPath(root) {
		return fmt.Errorf("%w: version %q", ErrNotFound, version)
	}
	if _, err := fs.Stat(s.FS, path.Join(root, "MLmodel")); err != nil {
		return fmt.Errorf("%w: %s has no version %s", ErrNotFound, model, version)
	}
	return nil
}

// SetAlias points alias at version.
func (s *LocalState) SetAlias(ctx context.Context, model, alias, version string) error {
	return s.update(ctx, model, func(st *State) { st.Aliases[alias] = version })
}

// DeleteAlias removes alias.
func (s *LocalState) DeleteAlias(ctx context.Context, model, alias string) error {
	return s.update(ctx, model, func(st *State) { delete(st.Aliases, alias) })
}

// SetModelTag sets a registered-model tag.
func (s *LocalState) SetModelTag(ctx context.Context, model, key, value string) error {
	return s.update(ctx, model, func(st *State) { st.Tags[key] = value })
}
