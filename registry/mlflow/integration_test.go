package mlflow_test

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mlservice/internal/mlflowtest"
	"mlservice/registry"
	"mlservice/registry/mlflow"
	"mlservice/serve/models"
)

// TestAgainstMLflow runs the client against a real MLflow server. One server
// serves every subtest; they run in order, each building on the last.
func TestAgainstMLflow(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real MLflow server")
	}
	const model = "loan-approval"
	srv := mlflowtest.Start(t)
	root := mlflowtest.ModuleRoot(t)
	v1 := filepath.Join(root, "artifacts", model, "versions", "1")
	v2 := filepath.Join(root, "artifacts", model, "versions", "2")
	external := mlflowtest.CopyModelDir(t, v2)
	mlflowtest.SaveWithExternalData(t, external)
	corrupt := mlflowtest.CopyModelDir(t, v2)
	if err := os.WriteFile(filepath.Join(corrupt, "model.onnx"), []byte("not an onnx model"), 0o644); err != nil {
		t.Fatal(err)
	}
	versions := srv.RegisterVersions(t, model, v1, v2, external, corrupt)
	if strings.Join(versions, ",") != "1,2,3,4" {
		t.Fatalf("registered versions %v", versions)
	}
	sources := map[string]string{"1": v1, "2": v2, "3": external, "4": corrupt}

	c, err := mlflow.New(mlflow.Config{TrackingURI: srv.URI, Backoff: 10 * time.Millisecond, Attempts: 2})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()

	t.Run("aliases and tags", func(t *testing.T) {
		if _, err := c.VersionByAlias(ctx, model, registry.Champion.String()); !errors.Is(err, registry.ErrNotFound) {
			t.Fatalf("unset alias: %v, want ErrNotFound", err)
		}
		must(t, c.SetAlias(ctx, model, registry.Champion.String(), "1"))
		must(t, c.SetAlias(ctx, model, registry.Challenger.String(), "1"))
		must(t, c.SetAlias(ctx, model, registry.Champion.String(), "2")) // move
		must(t, c.SetModelTag(ctx, model, registry.TrafficTag, `{"champion":90,"challenger":10}`))
		must(t, c.SetModelTag(ctx, model, "owner", "credit-risk"))
		assertState(t, c, model, map[string]string{"champion": "2", "challenger": "1"},
			map[string]string{registry.TrafficTag: `{"champion":90,"challenger":10}`, "owner": "credit-risk"})

		must(t, c.DeleteAlias(ctx, model, registry.Challenger.String()))
		must(t, c.DeleteModelTag(ctx, model, "owner"))
		assertState(t, c, model, map[string]string{"champion": "2"},
			map[string]string{registry.TrafficTag: `{"champion":90,"challenger":10}`})

		v, err := c.VersionByAlias(ctx, model, registry.Champion.String())
		must(t, err)
		if v.Version != "2" || !strings.HasPrefix(v.Source, "models:/m-") || v.RunID == "" || v.Status != "READY" || v.ModelID == "" ||
			len(v.Aliases) != 1 || v.Aliases[0] != "champion" {
			t.Errorf("champion version = %+v", v)
		}
		if _, err := c.VersionByAlias(ctx, model, registry.Challenger.String()); !errors.Is(err, registry.ErrNotFound) {
			t.Errorf("deleted alias: %v, want ErrNotFound", err)
		}
		if err := c.DeleteAlias(ctx, model, registry.Shadow.String()); err != nil {
			t.Errorf("deleting an unset alias: %v", err)
		}
		if err := c.SetAlias(ctx, model, registry.Shadow.String(), "99"); !errors.Is(err, registry.ErrNotFound) {
			t.Errorf("alias to a missing version: %v, want ErrNotFound", err)
		}
		if _, err := c.ModelVersion(ctx, model, "99"); !errors.Is(err, registry.ErrNotFound) {
			t.Errorf("missing version: %v, want ErrNotFound", err)
		}
		// The registered model's creation time tells it from one deleted before.
		if st, err := c.State(ctx, model); err != nil || !strings.HasPrefix(st.Generation, "created-") {
			t.Errorf("generation %q, %v", st.Generation, err)
		}
		if _, err := c.State(ctx, "no-such-model"); !errors.Is(err, registry.ErrNotFound) {
			t.Errorf("missing model: %v, want ErrNotFound", err)
		}
		all, err := c.SearchVersions(ctx, model)
		must(t, err)
		if len(all) != 4 || all[0].Version != "1" || all[3].Version != "4" || all[1].Tags["source_dir"] != v2 {
			t.Errorf("SearchVersions = %+v", all)
		}
	})

	t.Run("download", func(t *testing.T) {
		for _, version := range []string{"1", "2", "3", "4"} {
			dir := t.TempDir()
			must(t, c.Download(ctx, model, version, dir))
			got := tree(t, dir)
			// Byte-identical to what the version was registered from ...
			for _, name := range []string{"model.onnx", "serving_check.json"} {
				want, err := os.ReadFile(filepath.Join(sources[version], name))
				must(t, err)
				if !bytes.Equal(got[name], want) {
					t.Errorf("version %s: %s differs from %s", version, name, sources[version])
				}
			}
			// ... and to every file MLflow stores for it, MLmodel included.
			uri, err := c.DownloadURI(ctx, model, version)
			must(t, err)
			stored := tree(t, filepath.Join(srv.ArtifactsDir, strings.TrimPrefix(uri, "mlflow-artifacts:/")))
			if len(got) != len(stored) || got["MLmodel"] == nil {
				t.Errorf("version %s: downloaded %v, stored %v", version, keys(got), keys(stored))
			}
			for name, want := range stored {
				if !bytes.Equal(got[name], want) {
					t.Errorf("version %s: %s differs from the stored file", version, name)
				}
			}
		}
	})

	t.Run("external data", func(t *testing.T) {
		dir := t.TempDir()
		must(t, c.Download(ctx, model, "3", dir))
		want, err := os.ReadFile(filepath.Join(external, "model.onnx.data"))
		must(t, err)
		if got, err := os.ReadFile(filepath.Join(dir, "model.onnx.data")); err != nil || !bytes.Equal(got, want) {
			t.Errorf("model.onnx.data: %v, %d bytes, want %d", err, len(got), len(want))
		}
	})

	t.Run("verified cache", func(t *testing.T) {
		cache := &registry.Cache{Dir: t.TempDir()}
		e, err := cache.Get(ctx, c, model, "2")
		must(t, err)
		if e.Files["model.onnx"] == "" || e.Files["serving_check.json"] == "" {
			t.Errorf("cached files %v", e.Files)
		}
		md, err := models.ReadModelDir(e.Dir)
		must(t, err)
		if strings.Join(md.Inputs, ",") != "income,credit_score,loan_amount,years_employed" || len(md.Check.Cases) == 0 {
			t.Errorf("model dir %+v", md)
		}
		if _, err := cache.Lookup(c, model, "2"); err != nil {
			t.Errorf("Lookup after Get: %v", err)
		}
		// The copy knows which of MLflow's logged models it was made from.
		uri, err := c.DownloadURI(ctx, model, "2")
		must(t, err)
		if again, err := cache.Get(ctx, c, model, "2"); err != nil || e.Identity != uri || again.Identity != uri {
			t.Errorf("identity %q then %q (%v), want %q", e.Identity, again.Identity, err, uri)
		}
	})

	t.Run("server down and back", func(t *testing.T) {
		srv.Kill()
		if _, err := c.State(ctx, model); !errors.Is(err, registry.ErrUnavailable) {
			t.Fatalf("State with MLflow down: %v, want ErrUnavailable", err)
		}
		srv.Restart(t)
		assertState(t, c, model, map[string]string{"champion": "2"},
			map[string]string{registry.TrafficTag: `{"champion":90,"challenger":10}`})
	})
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func assertState(t *testing.T, c *mlflow.Client, model string, aliases, tags map[string]string) {
	t.Helper()
	st, err := c.State(context.Background(), model)
	must(t, err)
	if !equal(st.Aliases, aliases) || !equal(st.Tags, tags) {
		t.Errorf("State = %+v, want aliases %v tags %v", st, aliases, tags)
	}
}

func equal(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func tree(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		raw, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		files[filepath.ToSlash(rel)] = raw
		return err
	})
	must(t, err)
	return files
}

func keys(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
