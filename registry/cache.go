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
)

// manifestFile records the sha256 of every file of a cached version. It is
// written last, so a version without one was never completely downloaded.
const manifestFile = ".manifest.json"

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
	return Entry{Dir: dir, Files: files}, nil
}

// Get returns a verified copy of the version, downloading it from src when it
// is not cached or the cached copy fails verification.
func (c *Cache) Get(ctx context.Context, src Source, model, version string) (Entry, error) {
	if e, err := c.Lookup(src, model, version); err == nil {
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
	files, err := hashTree(tmp)
	if err != nil {
		return Entry{}, err
	}
	if err := writeFileAtomic(filepath.Join(tmp, manifestFile), mustJSON(files)); err != nil {
		return Entry{}, err
	}
	// Swap the new copy in whole: a reader sees the old complete copy, no
	// copy, or the new complete copy.
	if err := os.RemoveAll(dir); err != nil {
		return Entry{}, fmt.Errorf("registry: cache: %w", err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		return Entry{}, fmt.Errorf("registry: cache: %w", err)
	}
	return Entry{Dir: dir, Files: files}, nil
}

func (c *Cache) path(src Source, model, version string) string {
	return filepath.Join(c.Dir, "versions", safeName(src.Key()), safeName(model), safeName(version))
}

// safeName keeps a registry-supplied name from escaping the cache directory.
func safeName(s string) string {
	r := strings.NewReplacer("/", "_", "\\", "_", "..", "__", "\x00", "_")
	s = r.Replace(s)
	if s == "" || s == "." {
		return "_"
	}
	return s
}

func hashTree(root string) (map[string]string, error) {
	files := map[string]string{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		if rel == manifestFile {
			return nil
		}
		sum, err := hashFile(path)
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
		sum, err := hashFile(filepath.Join(dir, filepath.FromSlash(name)))
		if err != nil {
			return fmt.Errorf("%w: %s: %v", ErrCorrupt, name, err)
		}
		if sum != files[name] {
			return fmt.Errorf("%w: %s has sha256 %s, recorded %s", ErrCorrupt, name, sum, files[name])
		}
	}
	return nil
}

// HashFile returns the hex sha256 of a file.
func hashFile(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// writeFileAtomic writes data to a temporary file beside path and renames it
// into place, so a crash leaves either the old file or the new one.
func writeFileAtomic(path string, data []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}

func mustJSON(v any) []byte {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		panic(err) // only called with maps of strings
	}
	return b
}
