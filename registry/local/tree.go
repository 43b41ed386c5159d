// Package local is the registry without MLflow: the versions shipped in
// artifacts/ (Tree, read-only, usually embedded in the binary) and Registry,
// the same tree made writable through a state file so that /admin works and
// its changes survive restarts.
package local

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync"

	"mlservice/registry"
)

// Tree is the registry over a directory tree in the layout of artifacts/:
//
//	<model>/registry.json             aliases, tags and version notes
//	<model>/versions/<version>/...    one MLflow model directory per version
//
// It lets the server run with no MLflow at all. The tree must not change
// while the server runs. Tree is safe for concurrent use.
type Tree struct {
	// FS holds the tree; the server passes the artifacts embedded in its binary.
	FS fs.FS
	// Name describes the tree for /ready ("embedded artifacts", a path).
	Name string

	keyOnce sync.Once
	key     string
}

var _ registry.Source = (*Tree)(nil)

// RegistryFile is the content of <model>/registry.json.
type RegistryFile struct {
	Name     string            `json:"name"`
	Aliases  map[string]string `json:"aliases"`
	Tags     map[string]string `json:"tags"`
	Versions []VersionNotes    `json:"versions"`
}

// VersionNotes is one version's notes in registry.json.
type VersionNotes struct {
	Version     string             `json:"version"`
	Description string             `json:"description"`
	RunID       string             `json:"run_id,omitempty"`
	Metrics     map[string]float64 `json:"metrics,omitempty"`
	Features    []string           `json:"features,omitempty"`
}

// Key implements registry.Source. It names the tree by its content, so a rebuilt
// binary whose "version 2" differs never reuses the cached copy of the old one.
func (l *Tree) Key() string {
	l.keyOnce.Do(func() {
		h := sha256.New()
		err := fs.WalkDir(l.FS, ".", func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			f, err := l.FS.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			fmt.Fprintf(h, "%s\x00", p)
			_, err = io.Copy(h, f)
			return err
		})
		if err != nil {
			fmt.Fprintf(h, "unreadable: %v", err)
		}
		l.key = "artifacts-" + hex.EncodeToString(h.Sum(nil))[:16]
	})
	return l.key
}

// Kind implements registry.Source.
func (l *Tree) Kind() string { return "artifacts" }

// Describe implements registry.Source.
func (l *Tree) Describe() string { return l.Name }

// RegistryFile reads <model>/registry.json.
func (l *Tree) RegistryFile(model string) (RegistryFile, error) {
	var r RegistryFile
	raw, err := fs.ReadFile(l.FS, path.Join(model, "registry.json"))
	if errors.Is(err, fs.ErrNotExist) {
		return r, fmt.Errorf("%w: model %q in %s", registry.ErrNotFound, model, l.Name)
	}
	if err != nil {
		return r, fmt.Errorf("registry: %s: %w", l.Name, err)
	}
	if err := json.Unmarshal(raw, &r); err != nil {
		return r, fmt.Errorf("registry: %s/%s/registry.json: %w", l.Name, model, err)
	}
	return r, nil
}

// State implements registry.Source.
func (l *Tree) State(_ context.Context, model string) (registry.State, error) {
	r, err := l.RegistryFile(model)
	if err != nil {
		return registry.State{}, err
	}
	return registry.State{Aliases: r.Aliases, Tags: r.Tags}, nil
}

// validVersion keeps a version name to one path element, so "1/../2" can
// never name version 2.
func validVersion(v string) bool {
	return v != "" && v != "." && v != ".." && !strings.ContainsAny(v, "/\\\x00")
}

// Download implements registry.Source by copying the version's files.
func (l *Tree) Download(_ context.Context, model, version, dir string) error {
	root := path.Join(model, "versions", version)
	if !validVersion(version) || !fs.ValidPath(root) {
		return fmt.Errorf("%w: version %q", registry.ErrNotFound, version)
	}
	if _, err := fs.Stat(l.FS, root); err != nil {
		return fmt.Errorf("%w: %s version %s in %s", registry.ErrNotFound, model, version, l.Name)
	}
	return fs.WalkDir(l.FS, root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel := p[len(root):]
		target := filepath.Join(dir, filepath.FromSlash(rel))
		if d.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		return copyFile(l.FS, p, target)
	})
}

func copyFile(fsys fs.FS, name, target string) error {
	in, err := fsys.Open(name)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.Create(target)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
