package registry

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"testing/fstest"
)

func tree() *Local {
	return &Local{Name: "test tree", FS: fstest.MapFS{
		"loan-approval/registry.json":                  {Data: []byte(`{"name":"loan-approval","aliases":{"champion":"2"},"tags":{}}`)},
		"loan-approval/versions/1/MLmodel":             {Data: []byte("flavors: {}")},
		"loan-approval/versions/1/model.onnx":          {Data: []byte("one")},
		"loan-approval/versions/2/MLmodel":             {Data: []byte("flavors: {}")},
		"loan-approval/versions/2/model.onnx":          {Data: []byte("two")},
		"loan-approval/versions/2/sub/model.onnx.data": {Data: []byte("weights")},
	}}
}

func TestLocalStatePersistsAdminChanges(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := &LocalState{Local: tree(), Dir: dir}
	st, err := s.State(ctx, "loan-approval")
	if err != nil || st.Aliases["champion"] != "2" {
		t.Fatalf("before any change the tree decides: %+v %v", st, err)
	}
	if err := s.SetAlias(ctx, "loan-approval", "champion", "1"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetModelTag(ctx, "loan-approval", TrafficTag, `{"champion":100,"challenger":0}`); err != nil {
		t.Fatal(err)
	}
	again := &LocalState{Local: tree(), Dir: dir} // a restart
	st, err = again.State(ctx, "loan-approval")
	if err != nil || st.Aliases["champion"] != "1" || st.Tags[TrafficTag] == "" {
		t.Fatalf("after a restart: %+v %v", st, err)
	}
	if err := again.DeleteAlias(ctx, "loan-approval", "champion"); err != nil {
		t.Fatal(err)
	}
	if st, _ := again.State(ctx, "loan-approval"); st.Aliases["champion"] != "" {
		t.Fatalf("alias not deleted: %+v", st)
	}
	for _, v := range []string{"9", "", "../1", "1/../2"} {
		if err := s.HasVersion(ctx, "loan-approval", v); !errors.Is(err, ErrNotFound) {
			t.Errorf("HasVersion(%q) = %v", v, err)
		}
	}
	if err := s.HasVersion(ctx, "loan-approval", "1"); err != nil {
		t.Fatal(err)
	}
}

func TestCacheCopiesWholeVersionsAndVerifies(t *testing.T) {
	src := tree()
	c := &Cache{Dir: t.TempDir()}
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
	if _, err := c.Lookup(src, "loan-approval", "2"); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("a missing file must fail verification: %v", err)
	}
	if _, err := c.Get(context.Background(), src, "loan-approval", "7"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing version: %v", err)
	}
}

// failing is a registry that is down.
type failing struct{ *Local }

func (f failing) State(context.Context, string) (State, error) { return State{}, ErrUnavailable }

func TestMemoryServesTheLastStateOffline(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	up := &Memory{Source: tree(), Dir: dir}
	if _, err := up.State(ctx, "loan-approval"); err != nil {
		t.Fatal(err)
	}
	c := &Cache{Dir: t.TempDir()}
	if _, err := c.Get(ctx, up, "loan-approval", "2"); err != nil {
		t.Fatal(err)
	}
	down := &Memory{Source: failing{tree()}, Dir: dir}
	off := down.Offline()
	st, err := off.State(ctx, "loan-approval")
	if err != nil || st.Aliases["champion"] != "2" || off.Kind() != "cache" {
		t.Fatalf("offline state: %+v %v", st, err)
	}
	if _, err := c.Get(ctx, off, "loan-approval", "2"); err != nil {
		t.Fatalf("a cached version must load offline: %v", err)
	}
	if _, err := c.Get(ctx, off, "loan-approval", "1"); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("an uncached version offline: %v", err)
	}
	if _, err := (&Memory{Source: tree(), Dir: t.TempDir()}).Offline().State(ctx, "loan-approval"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("nothing remembered: %v", err)
	}
}

func TestSafeName(t *testing.T) {
	for in, want := range map[string]string{"loan-approval": "loan-approval", "../x": "___x", "a/b": "a_b", "": "_", ".": "_"} {
		if got := safeName(in); got != want {
			t.Errorf("safeName(%q) = %q, want %q", in, got, want)
		}
	}
}
