package registry_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"testing/fstest"

	"mlservice/registry"
	"mlservice/registry/local"
)

func tree() *local.Tree {
	return &local.Tree{Name: "test tree", FS: fstest.MapFS{
		"loan-approval/registry.json":                  {Data: []byte(`{"name":"loan-approval","aliases":{"champion":"2"},"tags":{}}`)},
		"loan-approval/versions/1/MLmodel":             {Data: []byte("flavors: {}")},
		"loan-approval/versions/1/model.onnx":          {Data: []byte("one")},
		"loan-approval/versions/2/MLmodel":             {Data: []byte("flavors: {}")},
		"loan-approval/versions/2/model.onnx":          {Data: []byte("two")},
		"loan-approval/versions/2/sub/model.onnx.data": {Data: []byte("weights")},
	}}
}

func TestCacheCopiesWholeVersionsAndVerifies(t *testing.T) {
	src := tree()
	c := &registry.Cache{Dir: t.TempDir()}
	e, err := c.Get(context.Background(), src, "loan-approval", "2")
	if err != nil {
		t.Fatal(err)
	}
	if len(e.Files) != 3 || e.Files["sub/model.onnx.data"] == "" {
		t.Fatalf("files %v", e.Files)
	}
	if raw, _ := os.ReadFile(filepath.Join(e.Dir, "sub", "model.onnx.data")); string(raw) != "weights" {
		t.Fatal("external data not copied")
	}
	os.Remove(filepath.Join(e.Dir, "sub", "model.onnx.data"))
	if _, err := c.Lookup(src, "loan-approval", "2"); !errors.Is(err, registry.ErrCorrupt) {
		t.Fatalf("a missing file must fail verification: %v", err)
	}
	if _, err := c.Get(context.Background(), src, "loan-approval", "7"); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("missing version: %v", err)
	}
}

func TestSafeName(t *testing.T) {
	for in, want := range map[string]string{"loan-approval": "loan-approval", "../x": "___x", "a/b": "a_b", "": "_", ".": "_"} {
		if got := registry.SafeName(in); got != want {
			t.Errorf("safeName(%q) = %q, want %q", in, got, want)
		}
	}
}
