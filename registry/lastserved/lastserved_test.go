package lastserved

import (
	"context"
	"errors"
	"testing"

	"mlservice/internal/registrytest"
	"mlservice/registry"
	"mlservice/registry/local"
)

func tree() *local.Tree { return &local.Tree{Name: "test tree", FS: registrytest.Tree()} }

// failing is a registry that is down.
type failing struct{ *local.Tree }

func (f failing) State(context.Context, string) (registry.State, error) {
	return registry.State{}, registry.ErrUnavailable
}

func TestLastServedServesTheLastStateOffline(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	up := &Dir{Registry: tree(), Path: dir}
	c := &registry.Cache{Dir: t.TempDir()}
	e, err := c.Get(ctx, up.Registry, "loan-approval", "2")
	if err != nil {
		t.Fatal(err)
	}
	// What the server records once version 2 is live.
	if err := up.Save("loan-approval", registry.State{Aliases: map[string]string{"champion": "2"},
		SHA256: map[string]string{"2": e.Files["model.onnx"]}}); err != nil {
		t.Fatal(err)
	}
	down := &Dir{Registry: failing{tree()}, Path: dir}
	off := down.Source()
	st, err := off.State(ctx, "loan-approval")
	if err != nil || st.Aliases["champion"] != "2" || off.Kind() != "cache" || st.SHA256["2"] != e.Files["model.onnx"] {
		t.Fatalf("offline state: %+v %v", st, err)
	}
	if _, err := c.Get(ctx, off, "loan-approval", "2"); err != nil {
		t.Fatalf("a cached version must load offline: %v", err)
	}
	if _, err := c.Get(ctx, off, "loan-approval", "1"); !errors.Is(err, registry.ErrUnavailable) {
		t.Fatalf("an uncached version offline: %v", err)
	}
	if _, err := (&Dir{Registry: tree(), Path: t.TempDir()}).Source().State(ctx, "loan-approval"); !errors.Is(err, registry.ErrNotFound) {
		t.Fatalf("nothing remembered: %v", err)
	}
}
