package mlflow

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"mlservice/registry"
)

// TestCacheFollowsWhatTheVersionNumberNames: a registered model deleted
// and created again numbers its versions from 1 again; the cached copy of
// the old "version 1" must not be served for the new one.
func TestCacheFollowsWhatTheVersionNumberNames(t *testing.T) {
	srv := goodArtifacts()
	c := fake(t, srv.ServeHTTP)
	cache := &registry.Cache{Dir: t.TempDir()}
	old, err := cache.Get(context.Background(), c, "m", "1")
	if err != nil {
		t.Fatal(err)
	}
	// The model is registered again: version 1 is now another logged model.
	const root = "1/models/m-2/artifacts"
	srv.uri = "mlflow-artifacts:/" + root
	srv.listings = map[string]string{root: `{"files": [{"path": "MLmodel", "is_dir": false, "file_size": 6},
		{"path": "model.onnx", "is_dir": false, "file_size": 7}]}`}
	srv.files = map[string]string{root + "/MLmodel": "flavor", root + "/model.onnx": "new one"}
	now, err := cache.Get(context.Background(), c, "m", "1")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := os.ReadFile(filepath.Join(now.Dir, "model.onnx"))
	if string(raw) != "new one" || now.Files["model.onnx"] == old.Files["model.onnx"] {
		t.Fatalf("the cache served the old version 1's model.onnx (%q) for the new version 1", raw)
	}
	// Offline, the copy on disk is what there is.
	if _, err := cache.Lookup(c, "m", "1"); err != nil {
		t.Fatalf("the new copy does not verify: %v", err)
	}
}

// offline is a source with the client's cache key that cannot download or
// say what a version stands for, as lastserved's.
type offline struct{ c *Client }

func (o offline) Key() string      { return o.c.Key() }
func (o offline) Kind() string     { return "cache" }
func (o offline) Describe() string { return "offline" }
func (o offline) State(context.Context, string) (registry.State, error) {
	return registry.State{}, registry.ErrUnavailable
}
func (o offline) Download(context.Context, string, string, string) error {
	return registry.ErrUnavailable
}

// TestCacheServesOfflineWhatItHas: with the registry down, the copy made
// from it is served as it is (lastserved pins its sha256).
func TestCacheServesOfflineWhatItHas(t *testing.T) {
	c := fake(t, goodArtifacts().ServeHTTP)
	cache := &registry.Cache{Dir: t.TempDir()}
	made, err := cache.Get(context.Background(), c, "m", "1")
	if err != nil || made.Identity != "mlflow-artifacts:/1/models/m-1/artifacts" {
		t.Fatalf("%+v, %v", made, err)
	}
	got, err := cache.Get(context.Background(), offline{c}, "m", "1")
	if err != nil || got.Files["model.onnx"] != made.Files["model.onnx"] {
		t.Fatalf("offline: %+v, %v", got, err)
	}
}
