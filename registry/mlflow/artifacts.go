package mlflow

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"strings"

	"mlservice/registry"
)

// Download implements registry.Source: it writes every file of the version's
// artifact directory, subdirectories and ONNX external data included, into
// dir. Files come through the server's proxied-artifact API, each written to a
// temporary file and renamed into place once its size matches the listing
// (registry.ErrCorrupt if not). On error dir may hold some complete files.
func (c *Client) Download(ctx context.Context, model, version, dir string) error {
	uri, err := c.DownloadURI(ctx, model, version)
	if err != nil {
		return err
	}
	root, err := c.proxiedPath(ctx, uri, 0)
	if err != nil {
		return fmt.Errorf("mlflow: %s version %s: %w", model, version, err)
	}
	files, err := c.listTree(ctx, root, "", 0)
	if err != nil {
		return err
	}
	if len(files) == 0 {
		return fmt.Errorf("%w: mlflow: %s version %s has no files under %s", registry.ErrNotFound, model, version, uri)
	}
	var listed int64
	for _, f := range files {
		if f.size > c.cfg.MaxFileBytes {
			return fmt.Errorf("%w: mlflow: %s version %s: %s is listed at %d bytes, over the %d-byte cap", registry.ErrTooLarge, model, version, f.rel, f.size, c.cfg.MaxFileBytes)
		}
		listed += max(f.size, 0)
	}
	if listed > c.cfg.MaxVersionBytes {
		return fmt.Errorf("%w: mlflow: %s version %s is listed at %d bytes, over the %d-byte cap", registry.ErrTooLarge, model, version, listed, c.cfg.MaxVersionBytes)
	}
	budget := c.cfg.MaxVersionBytes
	for _, f := range files {
		n, err := c.downloadFile(ctx, root, f, dir, min(c.cfg.MaxFileBytes, budget))
		if err != nil {
			return err
		}
		budget -= n
	}
	return nil
}

// proxiedPath maps an artifact URI to a path under the server's proxied
// artifact root (/api/2.0/mlflow-artifacts/artifacts/<path>):
//
//	mlflow-artifacts:/1/models/m-<id>/artifacts  →  1/models/m-<id>/artifacts
//	models:/m-<id>                               →  the logged model's artifact_uri, mapped
//	models:/<name>/<version>                     →  that version's download URI, mapped
//	runs:/<run-id>/<path>                        →  the run's artifact_uri + /<path>, mapped
//
// Other schemes (s3://, file://, ...) mean the server does not proxy the
// files, and the client has no way to read them.
func (c *Client) proxiedPath(ctx context.Context, uri string, depth int) (string, error) {
	if depth > 3 {
		return "", fmt.Errorf("artifact URI %q: too many indirections", uri)
	}
	u, err := url.Parse(uri)
	if err != nil {
		return "", fmt.Errorf("artifact URI %q: %w", uri, err)
	}
	rest := strings.Trim(u.Path, "/")
	switch u.Scheme {
	case "mlflow-artifacts":
		if rest == "" || !cleanPath(rest) {
			return "", fmt.Errorf("%w: artifact URI %q", registry.ErrCorrupt, uri)
		}
		return rest, nil
	case "models":
		name, ver, ok := strings.Cut(rest, "/")
		if !ok && strings.HasPrefix(name, "m-") {
			var out struct {
				Model struct {
					Info struct {
						URI string `json:"artifact_uri"`
					} `json:"info"`
				} `json:"model"`
			}
			if err := c.call(ctx, http.MethodGet, "logged-models/"+url.PathEscape(name), nil, &out); err != nil {
				return "", err
			}
			return c.proxiedPath(ctx, out.Model.Info.URI, depth+1)
		}
		if !ok || strings.Contains(ver, "/") {
			return "", fmt.Errorf("artifact URI %q: want models:/m-<id> or models:/<name>/<version>", uri)
		}
		next, err := c.DownloadURI(ctx, name, ver)
		if err != nil {
			return "", err
		}
		return c.proxiedPath(ctx, next, depth+1)
	case "runs":
		runID, sub, _ := strings.Cut(rest, "/")
		var out struct {
			Run struct {
				Info struct {
					URI string `json:"artifact_uri"`
				} `json:"info"`
			} `json:"run"`
		}
		if err := c.call(ctx, http.MethodGet, "runs/get", map[string]string{"run_id": runID}, &out); err != nil {
			return "", err
		}
		return c.proxiedPath(ctx, strings.TrimRight(out.Run.Info.URI, "/")+"/"+sub, depth+1)
	}
	return "", fmt.Errorf("artifact URI %q is not served through the MLflow server (start it with --serve-artifacts)", uri)
}

// cleanPath reports whether p is a relative slash path with no ".." or "."
// segments, so that it names what it seems to name.
func cleanPath(p string) bool {
	return p != "" && path.Clean(p) == p && !path.IsAbs(p) && p != "." &&
		!strings.HasPrefix(p, "../") && p != ".." && !strings.ContainsAny(p, "\\\x00")
}

// artifactFile is one file of a version: its path relative to the version's
// root and the size the listing reports (-1: unknown).
type artifactFile struct {
	rel  string
	size int64
}

// listTree lists the files under root/rel recursively. MLflow lists one
// directory at a time and names entries by their base name; a name that
// could step out of the directory is refused, since it would otherwise
// become a path under the cache.
func (c *Client) listTree(ctx context.Context, root, rel string, depth int) ([]artifactFile, error) {
	if depth > 32 {
		return nil, fmt.Errorf("%w: mlflow: artifact directories nested too deep under %s", registry.ErrCorrupt, root)
	}
	var out struct {
		Files []struct {
			Path  string `json:"path"`
			IsDir bool   `json:"is_dir"`
			Size  *int64 `json:"file_size"`
		} `json:"files"`
	}
	dir := path.Join(root, rel)
	err := c.retry(ctx, "list artifacts "+dir, c.cfg.Timeout, func(ctx context.Context) error {
		resp, err := c.send(ctx, http.MethodGet, c.base+"/api/2.0/mlflow-artifacts/artifacts?path="+url.QueryEscape(dir), nil)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		return decodeJSON(resp.Body, &out)
	})
	if err != nil {
		return nil, err
	}
	var files []artifactFile
	for _, f := range out.Files {
		name := path.Base(f.Path)
		// Older servers named entries by their path from the root; both forms
		// must end in one plain name.
		if f.Path != name && f.Path != path.Join(dir, name) || !cleanPath(name) {
			return nil, fmt.Errorf("%w: mlflow: artifact listing of %s has entry %q", registry.ErrCorrupt, dir, f.Path)
		}
		if f.IsDir {
			sub, err := c.listTree(ctx, root, path.Join(rel, name), depth+1)
			if err != nil {
				return nil, err
			}
			files = append(files, sub...)
			continue
		}
		size := int64(-1)
		if f.Size != nil {
			size = *f.Size
		}
		files = append(files, artifactFile{rel: path.Join(rel, name), size: size})
	}
	return files, nil
}

// downloadFile fetches root/f.rel into dir/f.rel through a temporary file,
// retrying like any call, and renames it into place only when complete. It
// reads at most limit bytes whatever the listing says (registry.ErrTooLarge
// past it) and returns the file's size.
func (c *Client) downloadFile(ctx context.Context, root string, f artifactFile, dir string, limit int64) (int64, error) {
	target := filepath.Join(dir, filepath.FromSlash(f.rel))
	if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
		return 0, err
	}
	segs := strings.Split(path.Join(root, f.rel), "/")
	for i, s := range segs {
		segs[i] = url.PathEscape(s)
	}
	u := c.base + "/api/2.0/mlflow-artifacts/artifacts/" + strings.Join(segs, "/")
	var size int64
	err := c.retry(ctx, "download "+path.Join(root, f.rel), c.cfg.DownloadTimeout, func(ctx context.Context) error {
		resp, err := c.send(ctx, http.MethodGet, u, nil)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		tmp, err := os.CreateTemp(filepath.Dir(target), ".part-*")
		if err != nil {
			return err
		}
		defer os.Remove(tmp.Name()) // fails harmlessly after the rename
		// Read at most one byte more than allowed: enough to tell "too long".
		want := limit
		if f.size >= 0 {
			want = min(f.size, limit)
		}
		n, err := io.Copy(tmp, io.LimitReader(resp.Body, want+1))
		if err != nil {
			tmp.Close()
			var pe *os.PathError
			if errors.As(err, &pe) {
				return err // the disk, not the network
			}
			return &transportError{err}
		}
		if n > limit {
			tmp.Close()
			return fmt.Errorf("%w: %s is more than %d bytes", registry.ErrTooLarge, f.rel, limit)
		}
		if f.size >= 0 && n != f.size {
			tmp.Close()
			return fmt.Errorf("%w: %s is %d bytes, the listing says %d", registry.ErrCorrupt, f.rel, n, f.size)
		}
		if err := tmp.Sync(); err != nil {
			tmp.Close()
			return err
		}
		if err := tmp.Close(); err != nil {
			return err
		}
		size = n
		return os.Rename(tmp.Name(), target)
	})
	return size, err
}
