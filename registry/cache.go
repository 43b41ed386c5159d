package registry

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
	"path/filepath"
	"sort"
	"strings"
	"time"

	"mlservice/internal/durable"
)

// manifestFile records the sha256 of every file of a cached version. It is
// written last, so a version without one was never completely downloaded.
const manifestFile = ".manifest.json"

// identityFile holds what the version number stood for when the copy was
// made (registry.Identifier); the manifest covers it like any file.
const identityFile = ".registry-identity"

// Cache keeps verified copies of model versions on disk, so that a restart
// with the registry down still serves the versions it had, and a truncated or
// altered file is never opened. Cache is safe for concurrent use by one
// process; concurrent writers of one version lose nothing but time.
type Cache struct {
	Dir string
}

// Entry is a verified cached version.
type Entry struct {
	Dir string
	// Files maps each file's slash-separated path to its sha256.
	Files map[string]string
	// Identity is what the version number stood for at download, from a
	// registry.Identifier ("" from any other source).
	Identity string
}

// Lookup returns the cached copy of a version if it is complete and every file
// still matches its recorded sha256. ErrNotFound: never cached; ErrCorrupt:
// cached but damaged.
func (c *Cache) Lookup(src Source, model, version string) (Entry, error) {
	dir := c.path(src, model, version)
	raw, err := os.ReadFile(filepath.Join(dir, manifestFile))
	if errors.Is(err, fs.ErrNotExist) {
		return Entry{}, fmt.Errorf("%w: %s version %s is not cached", ErrNotFound, model, version)
	}
	if err != nil {
		return Entry{}, fmt.Errorf("%w: manifest: %v", ErrCorrupt, err)
	}
	var files map[string]string
	if err := json.Unmarshal(raw, &files); err != nil || len(files) == 0 {
		return Entry{}, fmt.Errorf("%w: manifest of %s version %s is unreadable", ErrCorrupt, model, version)
	}
	if err := verify(dir, files); err != nil {
		return Entry{}, err
	}
	var identity []byte
	if _, ok := files[identityFile]; ok {
		if identity, err = os.ReadFile(filepath.Join(dir, identityFile)); err != nil {
			return Entry{}, fmt.Errorf("%w: %s: %v", ErrCorrupt, identityFile, err)
		}
	}
	return Entry{Dir: dir, Files: files, Identity: string(identity)}, nil
}

// Get returns a verified copy of the version, downloading it from src when it
// is not cached, the cached copy fails verification, or src (a
// registry.Identifier) says the version number now stands for other files
// than the copy's. A source that cannot say (the offline record of what was
// served, which pins sha256 sums instead) takes the copy as it is.
func (c *Cache) Get(ctx context.Context, src Source, model, version string) (Entry, error) {
	var identity string
	if id, ok := src.(Identifier); ok {
		var err error
		if identity, err = id.Identity(ctx, model, version); err != nil {
			return Entry{}, err
		}
	}
	if e, err := c.Lookup(src, model, version); err == nil && (identity == "" || e.Identity == identity) {
		return e, nil
	}
	dir := c.path(src, model, version)
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return Entry{}, fmt.Errorf("registry: cache: %w", err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dir), ".download-*")
	if err != nil {
		return Entry{}, fmt.Errorf("registry: cache: %w", err)
	}
	defer os.RemoveAll(tmp)
	if err := src.Download(ctx, model, version, tmp); err != nil {
		return Entry{}, err
	}
	if identity != "" {
		if err := os.WriteFile(filepath.Join(tmp, identityFile), []byte(identity), 0o644); err != nil {
			return Entry{}, fmt.Errorf("registry: cache: %w", err)
		}
	}
	// Every file and directory reaches the disk before the manifest says
	// the version is complete, and the manifest before the rename.
	files, err := hashTree(tmp, true)
	if err != nil {
		return Entry{}, err
	}
	if err := durable.WriteFile(filepath.Join(tmp, manifestFile), mustJSON(files)); err != nil {
		return Entry{}, fmt.Errorf("registry: cache: %w", err)
	}
	// Swap the new copy in whole: a reader sees the old complete copy, no
	// copy, or the new complete copy; the directory fsync makes the rename
	// survive a crash.
	if err := os.RemoveAll(dir); err != nil {
		return Entry{}, fmt.Errorf("registry: cache: %w", err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return Entry{}, fmt.Errorf("registry: cache: %w", err)
	}
	if err := durable.SyncDir(filepath.Dir(dir)); err != nil {
		return Entry{}, fmt.Errorf("registry: cache: %w", err)
	}
	return Entry{Dir: dir, Files: files, Identity: identity}, nil
}

func (c *Cache) path(src Source, model, version string) string {
	return filepath.Join(c.modelDir(src, model), SafeName(version))
}

func (c *Cache) modelDir(src Source, model string) string {
	return filepath.Join(c.Dir, "versions", SafeName(src.Key()), SafeName(model))
}

// Prune removes the cached versions of model from src that are not in keep,
// and downloads abandoned more than an hour ago. It must not run while a
// version of the model is being downloaded into the cache (the controller
// that owns the model runs both).
func (c *Cache) Prune(src Source, model string, keep []string) error {
	dir := c.modelDir(src, model)
	entries, err := os.ReadDir(filepath.Dir(dir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("registry: cache: %w", err)
	}
	// Downloads are staged beside the model's directory.
	var errs []error
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".download-") {
			if info, err := e.Info(); err == nil && time.Since(info.ModTime()) > time.Hour {
				errs = append(errs, os.RemoveAll(filepath.Join(filepath.Dir(dir), e.Name())))
			}
		}
	}
	kept := map[string]bool{}
	for _, v := range keep {
		kept[SafeName(v)] = true
	}
	versions, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return errors.Join(errs...)
	}
	if err != nil {
		return fmt.Errorf("registry: cache: %w", err)
	}
	removed := false
	for _, v := range versions {
		if !kept[v.Name()] {
			// The manifest goes first: a half-removed version is then
			// "never cached", not "corrupt".
			errs = append(errs, os.Remove(filepath.Join(dir, v.Name(), manifestFile)))
			errs = append(errs, os.RemoveAll(filepath.Join(dir, v.Name())))
			removed = true
		}
	}
	if removed {
		errs = append(errs, durable.SyncDir(dir))
	}
	for i, err := range errs {
		if errors.Is(err, fs.ErrNotExist) {
			errs[i] = nil
		}
	}
	return errors.Join(errs...)
}

// Versions lists the cached versions of model from src, complete or not.
func (c *Cache) Versions(src Source, model string) ([]string, error) {
	entries, err := os.ReadDir(c.modelDir(src, model))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	var out []string
	for _, e := range entries {
		out = append(out, e.Name())
	}
	return out, err
}

// hashTree returns the sha256 of every file under root; with sync it also
// fsyncs each file and directory, for a tree about to be declared complete.
func hashTree(root string, sync bool) (map[string]string, error) {
	files := map[string]string{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if sync {
				return durable.SyncDir(path)
			}
			return nil
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		if rel == manifestFile {
			return nil
		}
		sum, err := hashFile(path, sync)
		if err != nil {
			return err
		}
		files[filepath.ToSlash(rel)] = sum
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("registry: hashing %s: %w", root, err)
	}
	if len(files) == 0 {
		return nil, fmt.Errorf("%w: the version has no files", ErrCorrupt)
	}
	return files, nil
}

func verify(dir string, files map[string]string) error {
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, name := range names {
		sum, err := hashFile(filepath.Join(dir, filepath.FromSlash(name)), false)
		if err != nil {
			return fmt.Errorf("%w: %s: %v", ErrCorrupt, name, err)
		}
		if sum != files[name] {
			return fmt.Errorf("%w: %s has sha256 %s, recorded %s", ErrCorrupt, name, sum, files[name])
		}
	}
	return nil
}

// hashFile returns the hex sha256 of a file, fsyncing it first if sync.
func hashFile(path string, sync bool) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	if sync {
		if err := f.Sync(); err != nil {
			return "", err
		}
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

func mustJSON(v any) []byte {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		panic(err) // only called with maps of strings
	}
	return b
}
