package api

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestSwaggerUIEmbedded: the binary carries Swagger UI (make swagger-ui puts
// the files in place; make test runs it) and serves each file.
func TestSwaggerUIEmbedded(t *testing.T) {
	if !SwaggerUIEmbedded() {
		t.Fatal("no Swagger UI files in serve/api/assets/swagger: run `make swagger-ui`")
	}
	ts := newTestServer(t, Config{})
	for _, f := range append([]string{"docs.js"}, SwaggerFiles...) {
		if status, body := ts.get(t, "/docs/"+f); status != 200 || len(body) == 0 {
			t.Errorf("/docs/%s: %d, %d bytes", f, status, len(body))
		}
	}
	for _, f := range []string{"index.html", "..%2Fdocs.go", "swagger-ui.js"} {
		if status, _ := ts.get(t, "/docs/"+f); status != 404 {
			t.Errorf("/docs/%s: %d, want 404", f, status)
		}
	}
}

// TestSwaggerUIMatchesPinnedPackage installs the package pinned in
// swagger/package-lock.json afresh (npm ci, from the registry) and checks the
// embedded files are byte for byte the package's.
func TestSwaggerUIMatchesPinnedPackage(t *testing.T) {
	npm, err := exec.LookPath("npm")
	if err != nil {
		t.Fatal("npm not found: make swagger-ui installs it")
	}
	dir := t.TempDir()
	for _, f := range []string{"package.json", "package-lock.json"} {
		b, err := os.ReadFile(filepath.Join("swagger", f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, f), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cmd := exec.Command(npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "npm_config_cache="+filepath.Join(dir, ".npm"))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("npm ci: %v\n%s", err, out)
	}
	for _, f := range SwaggerFiles {
		want, err := os.ReadFile(filepath.Join(dir, "node_modules", "swagger-ui-dist", f))
		if err != nil {
			t.Fatal(err)
		}
		got, err := swaggerFiles.ReadFile("assets/swagger/" + f)
		if err != nil {
			t.Fatalf("%s not embedded: run `make swagger-ui`", f)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("embedded %s differs from the pinned package's: run `make swagger-ui`", f)
		}
	}
	mk, err := os.ReadFile(filepath.Join("swagger", "swagger.mk"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(mk), "SWAGGER_FILES := "+strings.Join(SwaggerFiles, " ")) {
		t.Error("swagger.mk's SWAGGER_FILES and SwaggerFiles disagree")
	}
}
