package models_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mlservice/artifacts"
	"mlservice/internal/servetest"
	"mlservice/registry"
	"mlservice/registry/local"
	"mlservice/serve/decision"
	"mlservice/serve/inference"
	"mlservice/serve/models"
)

// These tests run the real load pipeline with real ONNX Runtime on the
// versions shipped in artifacts/.

func newLoader(t *testing.T) *models.Loader {
	t.Helper()
	if err := inference.Init(servetest.ORTLibrary(t)); err != nil {
		t.Fatal(err)
	}
	return &models.Loader{
		Cache: &registry.Cache{Dir: t.TempDir()},
		Open: func(path string) (models.Scorer, error) {
			return inference.Open(path, inference.Options{})
		},
		Check: decision.ServingCheck,
	}
}

// copyArtifacts makes a writable copy of artifacts/ that a test may damage.
func copyArtifacts(t *testing.T) (string, *local.Tree) {
	t.Helper()
	dir := t.TempDir()
	src := filepath.Join(servetest.ModuleRoot(), "artifacts")
	if err := os.CopyFS(dir, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	return dir, &local.Tree{FS: os.DirFS(dir), Name: dir}
}

func TestLoadEveryShippedVersion(t *testing.T) {
	l := newLoader(t)
	src := &local.Tree{FS: artifacts.FS, Name: "embedded"}
	reg, err := src.RegistryFile("loan-approval")
	if err != nil {
		t.Fatal(err)
	}
	if len(reg.Versions) < 2 {
		t.Fatalf("artifacts/ ships %d versions, want at least 2", len(reg.Versions))
	}
	for _, rv := range reg.Versions {
		v, err := l.Load(context.Background(), src, "loan-approval", rv.Version)
		if err != nil {
			t.Fatalf("version %s: %v", rv.Version, err)
		}
		if len(v.SHA256) != 64 || v.Source != "artifacts" || len(v.Features) == 0 {
			t.Fatalf("version %s: %+v", rv.Version, v)
		}
		v.Release()
		if !v.Closed() {
			t.Fatalf("version %s not closed after its last release", rv.Version)
		}
	}
}

func TestLoadRejectsBadVersions(t *testing.T) {
	l := newLoader(t)
	tests := []struct {
		name   string
		damage func(t *testing.T, dir string)
		reason string
	}{
		{"corrupt onnx", func(t *testing.T, dir string) {
			write(t, filepath.Join(dir, "model.onnx"), []byte("this is not an ONNX graph"))
		}, models.ReasonSession},
		{"truncated onnx", func(t *testing.T, dir string) {
			raw := read(t, filepath.Join(dir, "model.onnx"))
			write(t, filepath.Join(dir, "model.onnx"), raw[:len(raw)/2])
		}, models.ReasonSession},
		{"signature names a field the API lacks", func(t *testing.T, dir string) {
			ml := strings.Replace(string(read(t, filepath.Join(dir, "MLmodel"))), `"name": "income"`, `"name": "salary"`, 1)
			write(t, filepath.Join(dir, "MLmodel"), []byte(ml))
		}, models.ReasonSignature},
		{"signature narrower than the graph", func(t *testing.T, dir string) {
			ml := strings.Replace(string(read(t, filepath.Join(dir, "MLmodel"))), `{"type": "float", "name": "income", "required": true}, `, ``, 1)
			write(t, filepath.Join(dir, "MLmodel"), []byte(ml))
		}, models.ReasonSignature},
		{"serving check disagrees", func(t *testing.T, dir string) {
			var check models.ServingCheck
			if err := json.Unmarshal(read(t, filepath.Join(dir, models.ServingCheckFile)), &check); err != nil {
				t.Fatal(err)
			}
			check.Cases[0].Probability += 0.001
			raw, _ := json.Marshal(check)
			write(t, filepath.Join(dir, models.ServingCheckFile), raw)
		}, models.ReasonServingCheck},
		{"no serving check", func(t *testing.T, dir string) {
			if err := os.Remove(filepath.Join(dir, models.ServingCheckFile)); err != nil {
				t.Fatal(err)
			}
		}, models.ReasonModelDir},
		{"no MLmodel", func(t *testing.T, dir string) {
			if err := os.Remove(filepath.Join(dir, "MLmodel")); err != nil {
				t.Fatal(err)
			}
		}, models.ReasonModelDir},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root, src := copyArtifacts(t)
			tc.damage(t, filepath.Join(root, "loan-approval", "versions", "2"))
			_, err := l.Load(context.Background(), src, "loan-approval", "2")
			var le *models.LoadError
			if !errors.As(err, &le) || le.Reason != tc.reason {
				t.Fatalf("want a %s failure, got %v", tc.reason, err)
			}
		})
	}
	_, src := copyArtifacts(t)
	if _, err := l.Load(context.Background(), src, "loan-approval", "99"); err == nil {
		t.Fatal("a missing version loaded")
	}
}

func TestCacheDetectsTamperingAndRefetches(t *testing.T) {
	l := newLoader(t)
	_, src := copyArtifacts(t)
	v, err := l.Load(context.Background(), src, "loan-approval", "2")
	if err != nil {
		t.Fatal(err)
	}
	v.Release()
	entry, err := l.Cache.Lookup(src, "loan-approval", "2")
	if err != nil {
		t.Fatal(err)
	}
	cached := filepath.Join(entry.Dir, "model.onnx")
	raw := read(t, cached)
	for name, bad := range map[string][]byte{"truncated": raw[:len(raw)-10], "altered": append([]byte{raw[0] ^ 0xff}, raw[1:]...)} {
		write(t, cached, bad)
		if _, err := l.Cache.Lookup(src, "loan-approval", "2"); !errors.Is(err, registry.ErrCorrupt) {
			t.Fatalf("%s cache file not detected: %v", name, err)
		}
		if _, err := l.LoadCached(src, "loan-approval", "2"); err == nil {
			t.Fatalf("%s cache file loaded from the cache", name)
		}
		v, err := l.Load(context.Background(), src, "loan-approval", "2")
		if err != nil {
			t.Fatalf("%s: reload from the source failed: %v", name, err)
		}
		v.Release()
		if got := read(t, cached); string(got) != string(raw) {
			t.Fatalf("%s: cache not repaired", name)
		}
	}
}

func read(t *testing.T, path string) []byte {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

func write(t *testing.T, path string, raw []byte) {
	t.Helper()
	if err := os.WriteFile(path, raw, 0o644); err != nil {
		t.Fatal(err)
	}
}

// scorecardRegistry is a local registry whose version "3" is the scorecard
// test model (serve/inference/testdata/scorecard: contrib_* outputs and a
// serving check with contributions); damage may change its serving check.
func scorecardRegistry(t *testing.T, damage func(*models.ServingCheck)) *local.Tree {
	t.Helper()
	src := filepath.Join(servetest.ModuleRoot(), "serve", "inference", "testdata", "scorecard")
	dir := t.TempDir()
	vdir := filepath.Join(dir, "loan-approval", "versions", "3")
	if err := os.MkdirAll(vdir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.CopyFS(vdir, os.DirFS(src)); err != nil {
		t.Fatal(err)
	}
	if damage != nil {
		var check models.ServingCheck
		if err := json.Unmarshal(read(t, filepath.Join(vdir, models.ServingCheckFile)), &check); err != nil {
			t.Fatal(err)
		}
		damage(&check)
		raw, _ := json.Marshal(check)
		write(t, filepath.Join(vdir, models.ServingCheckFile), raw)
	}
	write(t, filepath.Join(dir, "loan-approval", "registry.json"),
		[]byte(`{"name":"loan-approval","aliases":{"champion":"3"},"tags":{},"versions":[{"version":"3"}]}`))
	return &local.Tree{FS: os.DirFS(dir), Name: dir}
}

func TestLoadVerifiesContributions(t *testing.T) {
	l := newLoader(t)
	v, err := l.Load(context.Background(), scorecardRegistry(t, nil), "loan-approval", "3")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(v.Characteristics, ",") != "income,credit_score,years_employed,loan_to_income" {
		t.Fatalf("characteristics %v", v.Characteristics)
	}
	v.Release()
	for name, damage := range map[string]func(*models.ServingCheck){
		"a contribution off by 1e-4": func(c *models.ServingCheck) { c.Cases[1].Contributions["loan_to_income"] += 1e-4 },
		"a characteristic the model lacks": func(c *models.ServingCheck) {
			c.Cases[0].Contributions["points"] = 0
		},
	} {
		t.Run(name, func(t *testing.T) {
			_, err := l.Load(context.Background(), scorecardRegistry(t, damage), "loan-approval", "3")
			var le *models.LoadError
			if !errors.As(err, &le) || le.Reason != models.ReasonServingCheck || !strings.Contains(err.Error(), "contribution") {
				t.Fatalf("want a serving check failure about contributions, got %v", err)
			}
		})
	}
}

// TestReleaseBelowZeroPanics: over-releasing a Version would close a session
// under a running request; it must be loud.
func TestReleaseBelowZeroPanics(t *testing.T) {
	closeErr := errors.New("native close failed")
	v := models.NewVersion("m", "1", "", "", nil, failingClose{closeErr})
	v.Release() // the last reference: closes
	defer func() {
		if recover() == nil {
			t.Fatal("a second release did not panic")
		}
	}()
	v.Release()
}

type failingClose struct{ err error }

func (failingClose) Columns() int                         { return 0 }
func (failingClose) Score(_, _ []float32, _ []bool) error { return nil }
func (f failingClose) Close() error                       { return f.err }

// TestCloseErrorsAreLoggedAndSessionsCounted: the loader counts open
// sessions itself (no wrapper in main) and logs a failed close.
func TestCloseErrorsAreLoggedAndSessionsCounted(t *testing.T) {
	var logged strings.Builder
	sessions := &countingSessions{}
	l := &models.Loader{Cache: &registry.Cache{Dir: t.TempDir()}, Check: decision.ServingCheck, Sessions: sessions,
		Log: slog.New(slog.NewTextHandler(&logged, nil)),
		Open: func(path string) (models.Scorer, error) {
			s, err := inference.Open(path, inference.Options{})
			return closeFails{s}, err
		}}
	if err := inference.Init(servetest.ORTLibrary(t)); err != nil {
		t.Fatal(err)
	}
	v, err := l.Load(context.Background(), &local.Tree{FS: artifacts.FS, Name: "embedded"}, "loan-approval", "2")
	if err != nil {
		t.Fatal(err)
	}
	if sessions.open != 1 {
		t.Fatalf("%d sessions open after a load", sessions.open)
	}
	v.Release()
	if sessions.open != 0 || !strings.Contains(logged.String(), "close failed on purpose") {
		t.Fatalf("sessions %d, log %q", sessions.open, logged.String())
	}
}

type countingSessions struct{ open int }

func (c *countingSessions) SessionOpened() { c.open++ }
func (c *countingSessions) SessionClosed() { c.open-- }

type closeFails struct{ *inference.Session }

func (c closeFails) Close() error {
	_ = c.Session.Close()
	return errors.New("close failed on purpose")
}
