package mlflow

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"mlservice/registry"
)

// fake serves handler and returns a client for it with quick retries.
func fake(t *testing.T, handler http.HandlerFunc, mod ...func(*Config)) *Client {
	t.Helper()
	srv := httptest.NewServer(handler)
	t.Cleanup(srv.Close)
	cfg := Config{TrackingURI: srv.URL, Backoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond, Attempts: 3}
	for _, m := range mod {
		m(&cfg)
	}
	c, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func mlflowError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(map[string]string{"error_code": code, "message": msg})
}

const modelJSON = `{"registered_model": {"name": "loan-approval",
	"aliases": [{"alias": "champion", "version": "2"}],
	"tags": [{"key": "serve.traffic", "value": "{}"}]}}`

func TestRetries(t *testing.T) {
	ok := func(w http.ResponseWriter) { w.Write([]byte(modelJSON)) }
	tests := []struct {
		name     string
		answers  []func(w http.ResponseWriter) // one per attempt; the last repeats
		attempts int32
		want     error // nil: success
	}{
		{"503 then success", []func(http.ResponseWriter){
			func(w http.ResponseWriter) { mlflowError(w, 503, "TEMPORARILY_UNAVAILABLE", "busy") }, ok}, 2, nil},
		{"429 then success", []func(http.ResponseWriter){
			func(w http.ResponseWriter) { w.Header().Set("Retry-After", "1"); w.WriteHeader(429) }, ok}, 2, nil},
		{"5xx until out of attempts", []func(http.ResponseWriter){
			func(w http.ResponseWriter) { w.WriteHeader(502); w.Write([]byte("<html>bad gateway</html>")) }}, 3, registry.ErrUnavailable},
		{"no retry on 404", []func(http.ResponseWriter){
			func(w http.ResponseWriter) { mlflowError(w, 404, "RESOURCE_DOES_NOT_EXIST", "no model") }}, 1, registry.ErrNotFound},
		{"no retry on 403", []func(http.ResponseWriter){
			func(w http.ResponseWriter) { mlflowError(w, 403, "PERMISSION_DENIED", "no") }}, 1, errAny},
		{"broken connection then success", []func(http.ResponseWriter){
			func(w http.ResponseWriter) {
				conn, _, _ := w.(http.Hijacker).Hijack()
				conn.Close()
			}, ok}, 2, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var n atomic.Int32
			c := fake(t, func(w http.ResponseWriter, r *http.Request) {
				i := int(n.Add(1)) - 1
				tt.answers[min(i, len(tt.answers)-1)](w)
			})
			start := time.Now()
			st, err := c.State(context.Background(), "loan-approval")
			if got := n.Load(); got != tt.attempts {
				t.Errorf("attempts = %d, want %d", got, tt.attempts)
			}
			switch {
			case tt.want == nil && err != nil:
				t.Fatalf("State: %v", err)
			case tt.want == nil && st.Aliases["champion"] != "2":
				t.Errorf("State = %+v", st)
			case tt.want == errAny && err == nil:
				t.Fatal("State succeeded, want an error")
			case tt.want != nil && tt.want != errAny && !errors.Is(err, tt.want):
				t.Fatalf("State error %v, want %v", err, tt.want)
			}
			if time.Since(start) > 5*time.Second { // Retry-After is capped by MaxBackoff
				t.Errorf("took %v", time.Since(start))
			}
		})
	}
}

var errAny = errors.New("any error")

func TestNetworkErrorIsUnavailable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens: connection refused
	c, err := New(Config{TrackingURI: "http://" + addr, Backoff: time.Millisecond, Attempts: 3})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.State(context.Background(), "loan-approval")
	if !errors.Is(err, registry.ErrUnavailable) {
		t.Fatalf("State error %v, want ErrUnavailable", err)
	}
	if !strings.Contains(err.Error(), "after 3 attempts") {
		t.Errorf("error %q does not say how often it tried", err)
	}
}

func TestRetryStopsWithContext(t *testing.T) {
	c := fake(t, func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(503) },
		func(c *Config) { c.Backoff, c.MaxBackoff, c.Attempts = time.Hour, time.Hour, 10 })
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := c.State(ctx, "m")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("error %v, want DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("returned after %v", d)
	}
}

func TestPerAttemptTimeout(t *testing.T) {
	var n atomic.Int32
	c := fake(t, func(w http.ResponseWriter, r *http.Request) {
		if n.Add(1) == 1 {
			<-r.Context().Done() // hang until the client gives up on this attempt
			return
		}
		w.Write([]byte(modelJSON))
	}, func(c *Config) { c.Timeout = 100 * time.Millisecond })
	if _, err := c.State(context.Background(), "m"); err != nil {
		t.Fatalf("State: %v", err)
	}
	if n.Load() != 2 {
		t.Errorf("attempts = %d, want 2", n.Load())
	}
}

func TestErrorMapping(t *testing.T) {
	tests := []struct {
		name          string
		status        int
		code, message string
		call          func(c *Client) error
		notFound      bool
	}{
		{"missing alias", 400, "INVALID_PARAMETER_VALUE", "Registered model alias champion not found.",
			func(c *Client) error { _, err := c.VersionByAlias(context.Background(), "m", "champion"); return err }, true},
		{"other invalid parameter", 400, "INVALID_PARAMETER_VALUE", "Alias name must not be a version-like string.",
			func(c *Client) error { _, err := c.VersionByAlias(context.Background(), "m", "v1"); return err }, false},
		{"another alias's message", 400, "INVALID_PARAMETER_VALUE", "Registered model alias challenger not found.",
			func(c *Client) error { _, err := c.VersionByAlias(context.Background(), "m", "champion"); return err }, false},
		{"missing model on alias lookup", 404, "RESOURCE_DOES_NOT_EXIST", "Registered Model with name=m not found",
			func(c *Client) error { _, err := c.VersionByAlias(context.Background(), "m", "champion"); return err }, true},
		{"missing version", 404, "RESOURCE_DOES_NOT_EXIST", "Model Version (name=m, version=9) not found",
			func(c *Client) error { _, err := c.ModelVersion(context.Background(), "m", "9"); return err }, true},
		{"invalid parameter elsewhere", 400, "INVALID_PARAMETER_VALUE", "Registered model alias champion not found.",
			func(c *Client) error { return c.SetAlias(context.Background(), "m", "champion", "1") }, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := fake(t, func(w http.ResponseWriter, r *http.Request) { mlflowError(w, tt.status, tt.code, tt.message) })
			err := tt.call(c)
			var ae *APIError
			if !errors.As(err, &ae) {
				t.Fatalf("error %v (%T) is no *APIError", err, err)
			}
			if ae.Status != tt.status || ae.Code != tt.code || ae.Message != tt.message {
				t.Errorf("APIError = %+v", ae)
			}
			if got := errors.Is(err, registry.ErrNotFound); got != tt.notFound {
				t.Errorf("errors.Is(%v, ErrNotFound) = %v, want %v", err, got, tt.notFound)
			}
			if errors.Is(err, registry.ErrUnavailable) {
				t.Errorf("%v is ErrUnavailable", err)
			}
		})
	}
}

func TestAuth(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want string
	}{
		{"basic", Config{Username: "ops", Password: "s3cret"}, "Basic b3BzOnMzY3JldA=="},
		{"bearer", Config{Token: "tok"}, "Bearer tok"},
		{"basic wins over bearer", Config{Username: "ops", Password: "s3cret", Token: "tok"}, "Basic b3BzOnMzY3JldA=="},
		{"none", Config{}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got atomic.Value
			c := fake(t, func(w http.ResponseWriter, r *http.Request) {
				got.Store(r.Header.Get("Authorization"))
				w.Write([]byte(modelJSON))
			}, func(c *Config) { c.Username, c.Password, c.Token = tt.cfg.Username, tt.cfg.Password, tt.cfg.Token })
			if _, err := c.State(context.Background(), "m"); err != nil {
				t.Fatal(err)
			}
			if got.Load() != tt.want {
				t.Errorf("Authorization = %q, want %q", got.Load(), tt.want)
			}
		})
	}
}

func TestURICredentialsStayOutOfDescribe(t *testing.T) {
	var got atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got.Store(r.Header.Get("Authorization"))
		w.Write([]byte(modelJSON))
	}))
	defer srv.Close()
	c, err := New(Config{TrackingURI: strings.Replace(srv.URL, "http://", "http://ops:s3cret@", 1) + "/"})
	if err != nil {
		t.Fatal(err)
	}
	if d := c.Describe(); d != srv.URL || strings.Contains(c.Key(), "s3cret") || !strings.HasPrefix(c.Key(), "mlflow-") {
		t.Errorf("Describe() = %q, Key() = %q", d, c.Key())
	}
	if _, err := c.State(context.Background(), "m"); err != nil {
		t.Fatal(err)
	}
	if got.Load() != "Basic b3BzOnMzY3JldA==" {
		t.Errorf("Authorization = %q", got.Load())
	}
	other, _ := New(Config{TrackingURI: "http://mlflow.internal:5000"})
	if other.Key() == c.Key() {
		t.Error("two servers share a cache key")
	}
	if _, err := New(Config{TrackingURI: "file:///tmp/mlruns"}); err == nil {
		t.Error("New accepted a file:// tracking URI")
	}
}

// artifactServer fakes the calls Download makes: the version's download URI
// and the proxied-artifact listing and files under 1/models/m-1/artifacts.
type artifactServer struct {
	uri      string            // download URI of the version
	listings map[string]string // listed path → JSON answer
	files    map[string]string // file path → content
}

func (a *artifactServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	const files = "/api/2.0/mlflow-artifacts/artifacts"
	switch {
	case r.URL.Path == "/api/2.0/mlflow/model-versions/get-download-uri":
		json.NewEncoder(w).Encode(map[string]string{"artifact_uri": a.uri})
	case r.URL.Path == files:
		if l, ok := a.listings[r.URL.Query().Get("path")]; ok {
			w.Write([]byte(l))
		} else {
			w.Write([]byte("{}"))
		}
	case strings.HasPrefix(r.URL.Path, files+"/"):
		if f, ok := a.files[strings.TrimPrefix(r.URL.Path, files+"/")]; ok {
			w.Write([]byte(f))
		} else {
			mlflowError(w, 404, "RESOURCE_DOES_NOT_EXIST", "No such artifact")
		}
	default:
		mlflowError(w, 404, "ENDPOINT_NOT_FOUND", r.URL.Path)
	}
}

func goodArtifacts() *artifactServer {
	const root = "1/models/m-1/artifacts"
	return &artifactServer{
		uri: "mlflow-artifacts:/" + root,
		listings: map[string]string{
			root: `{"files": [{"path": "MLmodel", "is_dir": false, "file_size": 6},
				{"path": "model.onnx", "is_dir": false, "file_size": 4},
				{"path": "data", "is_dir": true}]}`,
			root + "/data": `{"files": [{"path": "model.onnx.data", "is_dir": false, "file_size": 3},
				{"path": "empty", "is_dir": false, "file_size": 0}]}`,
		},
		files: map[string]string{
			root + "/MLmodel": "flavor", root + "/model.onnx": "onnx",
			root + "/data/model.onnx.data": "abc", root + "/data/empty": "",
		},
	}
}

func readTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	got := map[string]string{}
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			raw, _ := os.ReadFile(p)
			rel, _ := filepath.Rel(dir, p)
			got[filepath.ToSlash(rel)] = string(raw)
		}
		return err
	})
	return got
}

func TestDownload(t *testing.T) {
	c := fake(t, goodArtifacts().ServeHTTP)
	dir := t.TempDir()
	if err := c.Download(context.Background(), "m", "1", dir); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"MLmodel": "flavor", "model.onnx": "onnx", "data/model.onnx.data": "abc", "data/empty": ""}
	got := readTree(t, dir)
	if len(got) != len(want) {
		t.Errorf("files %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
}

func TestDownloadRejects(t *testing.T) {
	const root = "1/models/m-1/artifacts"
	tests := []struct {
		name   string
		change func(a *artifactServer)
		want   error
	}{
		{"file shorter than listed", func(a *artifactServer) { a.files[root+"/model.onnx"] = "onn" }, registry.ErrCorrupt},
		{"file longer than listed", func(a *artifactServer) { a.files[root+"/model.onnx"] = "onnx!" }, registry.ErrCorrupt},
		{"parent in listing", func(a *artifactServer) {
			a.listings[root] = `{"files": [{"path": "../../evil", "is_dir": false, "file_size": 1}]}`
		}, registry.ErrCorrupt},
		{"dot-dot entry", func(a *artifactServer) {
			a.listings[root] = `{"files": [{"path": "..", "is_dir": true}]}`
		}, registry.ErrCorrupt},
		{"nested path", func(a *artifactServer) {
			a.listings[root] = `{"files": [{"path": "x/../../../evil", "is_dir": false, "file_size": 1}]}`
		}, registry.ErrCorrupt},
		{"absolute path", func(a *artifactServer) {
			a.listings[root] = `{"files": [{"path": "/etc/passwd", "is_dir": false, "file_size": 1}]}`
		}, registry.ErrCorrupt},
		{"no files", func(a *artifactServer) { delete(a.listings, root) }, registry.ErrNotFound},
		{"listed file missing", func(a *artifactServer) { delete(a.files, root+"/MLmodel") }, registry.ErrNotFound},
		{"traversal in download URI", func(a *artifactServer) { a.uri = "mlflow-artifacts:/1/../../etc" }, registry.ErrCorrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := goodArtifacts()
			tt.change(a)
			c := fake(t, a.ServeHTTP)
			parent := t.TempDir()
			dir := filepath.Join(parent, "v")
			os.Mkdir(dir, 0o755)
			err := c.Download(context.Background(), "m", "1", dir)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Download error %v, want %v", err, tt.want)
			}
			entries, _ := os.ReadDir(parent)
			if len(entries) != 1 {
				t.Errorf("Download wrote beside its directory: %v", entries)
			}
			for rel := range readTree(t, dir) {
				if strings.Contains(rel, ".part-") {
					t.Errorf("left a partial file %s", rel)
				}
			}
		})
	}
}

func TestProxiedPath(t *testing.T) {
	c := fake(t, func(w http.ResponseWriter, r *http.Request) {
		switch {
		case r.URL.Path == "/api/2.0/mlflow/logged-models/m-1":
			w.Write([]byte(`{"model": {"info": {"model_id": "m-1", "artifact_uri": "mlflow-artifacts:/1/models/m-1/artifacts"}}}`))
		case r.URL.Path == "/api/2.0/mlflow/runs/get" && r.URL.Query().Get("run_id") == "abc":
			w.Write([]byte(`{"run": {"info": {"artifact_uri": "mlflow-artifacts:/1/abc/artifacts"}}}`))
		case r.URL.Path == "/api/2.0/mlflow/model-versions/get-download-uri" && r.URL.Query().Get("version") == "3":
			w.Write([]byte(`{"artifact_uri": "models:/m-1"}`))
		default:
			mlflowError(w, 404, "RESOURCE_DOES_NOT_EXIST", r.URL.String())
		}
	})
	tests := []struct{ uri, want string }{
		{"mlflow-artifacts:/1/models/m-1/artifacts", "1/models/m-1/artifacts"},
		{"mlflow-artifacts://mlflow:5000/1/models/m-1/artifacts/", "1/models/m-1/artifacts"},
		{"models:/m-1", "1/models/m-1/artifacts"},
		{"models:/loan-approval/3", "1/models/m-1/artifacts"},
		{"runs:/abc/model", "1/abc/artifacts/model"},
		{"s3://bucket/1/models/m-1/artifacts", ""},
		{"models:/m-2", ""},
	}
	for _, tt := range tests {
		got, err := c.proxiedPath(context.Background(), tt.uri, 0)
		if got != tt.want || (err == nil) != (tt.want != "") {
			t.Errorf("proxiedPath(%q) = %q, %v; want %q", tt.uri, got, err, tt.want)
		}
	}
}

// Issue 12 item 9: file and version sizes are capped whatever the listing
// says, so a listing without sizes (or a lying one) cannot fill the disk.
func TestDownloadSizeCaps(t *testing.T) {
	const root = "1/models/m-1/artifacts"
	big := strings.Repeat("x", 1000)
	tests := []struct {
		name    string
		listing string
		files   map[string]string
		caps    func(*Config)
	}{
		{"no size listed, file over the file cap",
			`{"files": [{"path": "model.onnx", "is_dir": false}]}`, map[string]string{root + "/model.onnx": big},
			func(c *Config) { c.MaxFileBytes = 999 }},
		{"listed over the file cap",
			`{"files": [{"path": "model.onnx", "is_dir": false, "file_size": 1000}]}`, map[string]string{root + "/model.onnx": big},
			func(c *Config) { c.MaxFileBytes = 999 }},
		{"no sizes, files together over the version cap",
			`{"files": [{"path": "a", "is_dir": false}, {"path": "b", "is_dir": false}]}`,
			map[string]string{root + "/a": big, root + "/b": big},
			func(c *Config) { c.MaxVersionBytes = 1500 }},
		{"listed together over the version cap",
			`{"files": [{"path": "a", "is_dir": false, "file_size": 1000}, {"path": "b", "is_dir": false, "file_size": 1000}]}`,
			map[string]string{root + "/a": big, root + "/b": big},
			func(c *Config) { c.MaxVersionBytes = 1500 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := &artifactServer{uri: "mlflow-artifacts:/" + root, listings: map[string]string{root: tt.listing}, files: tt.files}
			c := fake(t, a.ServeHTTP, tt.caps)
			dir := t.TempDir()
			if err := c.Download(context.Background(), "m", "1", dir); !errors.Is(err, registry.ErrTooLarge) {
				t.Fatalf("Download: %v, want ErrTooLarge", err)
			}
			for rel, content := range readTree(t, dir) {
				if len(content) > 1000 || strings.Contains(rel, ".part-") {
					t.Errorf("left %s (%d bytes)", rel, len(content))
				}
			}
		})
	}
	// Within the caps, a listing without sizes still downloads.
	a := &artifactServer{uri: "mlflow-artifacts:/" + root, listings: map[string]string{root: `{"files": [{"path": "a", "is_dir": false}]}`},
		files: map[string]string{root + "/a": big}}
	if err := fake(t, a.ServeHTTP, func(c *Config) { c.MaxFileBytes = 1000 }).Download(context.Background(), "m", "1", t.TempDir()); err != nil {
		t.Fatal(err)
	}
}

// A 401 or 403 (wrong or read-only credentials) is registry.ErrDenied.
func TestDeniedIsErrDenied(t *testing.T) {
	for _, status := range []int{401, 403} {
		c := fake(t, func(w http.ResponseWriter, r *http.Request) {
			mlflowError(w, status, "PERMISSION_DENIED", "Permission denied")
		})
		if err := c.SetAlias(context.Background(), "m", "champion", "1"); !errors.Is(err, registry.ErrDenied) || errors.Is(err, registry.ErrUnavailable) {
			t.Errorf("%d: %v, want ErrDenied", status, err)
		}
	}
}
