package registry_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"mlservice/internal/registrytest"
	"mlservice/registry"
	"mlservice/registry/local"
)

func tree() *local.Tree { return &local.Tree{Name: "test tree", FS: registrytest.Tree()} }

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
