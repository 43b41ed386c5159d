package local

import (
	"context"
	"errors"
	"testing"

	"mlservice/internal/registrytest"
	"mlservice/registry"
)

func tree() *Tree { return &Tree{Name: "test tree", FS: registrytest.Tree()} }

func TestLocalStatePersistsAdminChanges(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	s := &Registry{Tree: tree(), Dir: dir}
	st, err := s.State(ctx, "loan-approval")
	if err != nil || st.Aliases["champion"] != "2" {
		t.Fatalf("before any change the tree decides: %+v %v", st, err)
	}
	if err := s.SetAlias(ctx, "loan-approval", "champion", "1"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetModelTag(ctx, "loan-approval", registry.TrafficTag, `{"champion":100,"challenger":0}`); err != nil {
		t.Fatal(err)
	}
	again := &Registry{Tree: tree(), Dir: dir} // a restart
	st, err = again.State(ctx, "loan-approval")
	if err != nil || st.Aliases["champion"] != "1" || st.Tags[registry.TrafficTag] == "" {
		t.Fatalf("after a restart: %+v %v", st, err)
	}
	if err := again.DeleteAlias(ctx, "loan-approval", "champion"); err != nil {
		t.Fatal(err)
	}
	if st, _ := again.State(ctx, "loan-approval"); st.Aliases["champion"] != "" {
		t.Fatalf("alias not deleted: %+v", st)
	}
	for _, v := range []string{"9", "", "../1", "1/../2"} {
		if err := s.HasVersion(ctx, "loan-approval", v); !errors.Is(err, registry.ErrNotFound) {
			t.Errorf("HasVersion(%q) = %v", v, err)
		}
	}
	if err := s.HasVersion(ctx, "loan-approval", "1"); err != nil {
		t.Fatal(err)
	}
}
