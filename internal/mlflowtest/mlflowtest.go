// Package mlflowtest starts a real MLflow tracking server for tests (sqlite
// backend, proxied artifacts in a temporary directory, a free loopback port)
// and registers model versions in it the way the training notebook does, so
// that tests of the registry client and of rollouts run against the real
// thing rather than a fake of it.
//
// StartWithAuth runs MLflow's basic-auth app (`mlflow server --app-name
// basic-auth`), as every stack we ship does: every call then needs a user,
// an admin account registers versions, and CreateUser and Grant set up the
// accounts a test needs (e.g. a read-only one for the servers and one with
// EDIT on the model for /admin).
//
// It uses the notebooks' Python environment (notebooks/.venv, made by
// `make notebooks-env`). A server takes several seconds to start: share one
// across the subtests of a test function.
package mlflowtest

import (
	"bufio"
	"bytes"
	"context"
	_ "embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"mlservice/internal/freeport"
)

//go:embed register_version.py
var registerScript string

// StartTimeout bounds how long a server may take to answer /health; MLflow
// imports a lot of Python, and a loaded CI machine is slow.
const StartTimeout = 3 * time.Minute

// Server is a running `mlflow server`. Its methods are not safe for
// concurrent use; tests that call Kill or Restart should not run in parallel
// with others that use the same Server.
type Server struct {
	// URI is the tracking URI, http://127.0.0.1:<port>.
	URI string
	// Dir holds the server's state: mlflow.db, artifacts/ and mlflow.log.
	Dir string
	// ArtifactsDir is where the server stores proxied artifacts, for tests
	// that compare downloads with what the server holds.
	ArtifactsDir string

	// AdminUser and AdminPassword are the basic-auth admin account ("" without auth).
	AdminUser, AdminPassword string

	root string // module root
	port int
	cmd  *exec.Cmd
	done chan struct{} // closed when cmd has exited
}

// Start starts a server with fresh state and stops it when the test ends.
// The test fails if the MLflow binary is missing or the server does not come up.
func Start(t testing.TB) *Server {
	t.Helper()
	return start(t, false)
}

// StartWithAuth is Start with MLflow's basic-auth app: default permission
// READ for every user, and an admin account (AdminUser, AdminPassword) that
// registers the versions.
func StartWithAuth(t testing.TB) *Server {
	t.Helper()
	return start(t, true)
}

func start(t testing.TB, auth bool) *Server {
	t.Helper()
	root := ModuleRoot(t)
	if _, err := os.Stat(filepath.Join(root, "notebooks", ".venv", "bin", "mlflow")); err != nil {
		t.Fatalf("mlflowtest: no MLflow at notebooks/.venv/bin/mlflow (%v); run `make notebooks-env` first", err)
	}
	port := freeport.Port(t)
	dir := t.TempDir()
	s := &Server{
		URI:          "http://127.0.0.1:" + strconv.Itoa(port),
		Dir:          dir,
		ArtifactsDir: filepath.Join(dir, "artifacts"),
		root:         root,
		port:         port,
	}
	if auth {
		s.AdminUser, s.AdminPassword = "mlflow-admin", "admin-password-for-tests-1"
		ini := fmt.Sprintf("[mlflow]\ndefault_permission = READ\ndatabase_uri = sqlite:///%s\nadmin_username = %s\nadmin_password = %s\n"+
			"authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n",
			filepath.Join(dir, "basic_auth.db"), s.AdminUser, s.AdminPassword)
		if err := os.WriteFile(filepath.Join(dir, "basic_auth.ini"), []byte(ini), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	t.Cleanup(s.stop)
	s.start(t)
	return s
}

// env is the environment of this server's MLflow processes: env(), plus the
// auth configuration for the server and the admin's credentials for clients.
func (s *Server) env() []string {
	e := env()
	if s.AdminUser != "" {
		e = append(e, "MLFLOW_AUTH_CONFIG_PATH="+filepath.Join(s.Dir, "basic_auth.ini"),
			"MLFLOW_FLASK_SERVER_SECRET_KEY=mlflowtest-csrf-key", // the auth app's CSRF protection needs one
			"MLFLOW_TRACKING_USERNAME="+s.AdminUser, "MLFLOW_TRACKING_PASSWORD="+s.AdminPassword)
	}
	return e
}

// CreateUser adds a basic-auth user; with the default permission READ it
// can read every model and write none.
func (s *Server) CreateUser(t testing.TB, username, password string) {
	t.Helper()
	s.adminCall(t, "/api/2.0/mlflow/users/create", map[string]string{"username": username, "password": password})
}

// Grant gives a user a permission (READ, EDIT, MANAGE) on a registered model.
func (s *Server) Grant(t testing.TB, username, model, permission string) {
	t.Helper()
	s.adminCall(t, "/api/3.0/mlflow/users/permissions/grant", map[string]string{
		"username": username, "resource_type": "registered_model", "resource_id": model, "permission": permission})
}

func (s *Server) adminCall(t testing.TB, path string, body any) {
	t.Helper()
	raw, _ := json.Marshal(body)
	req, err := http.NewRequest(http.MethodPost, s.URI+path, bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.SetBasicAuth(s.AdminUser, s.AdminPassword)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("mlflowtest: %s: %v", path, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		out, _ := io.ReadAll(resp.Body)
		t.Fatalf("mlflowtest: %s: %d %s", path, resp.StatusCode, out)
	}
}

// ModuleRoot returns the directory holding go.mod, found from the working
// directory, which `go test` sets to the package's directory.
func ModuleRoot(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("mlflowtest: no go.mod above the working directory")
		}
		dir = parent
	}
}

func (s *Server) bin(name string) string {
	return filepath.Join(s.root, "notebooks", ".venv", "bin", name)
}

// env is the environment for MLflow processes: no inherited tracking URI
// or credentials, and no job runner, whose consumers each import MLflow
// and would add tens of seconds to every start.
func env() []string {
	var out []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "MLFLOW_") {
			out = append(out, kv)
		}
	}
	return append(out, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION=false", "PYTHONUNBUFFERED=1",
		// Webhooks to the server under test: plain http on loopback, and no
		// minute-long cache of the webhook list.
		"MLFLOW_WEBHOOK_ALLOWED_SCHEMES=http,https", "MLFLOW_WEBHOOK_ALLOW_PRIVATE_IPS=true",
		"MLFLOW_WEBHOOK_CACHE_TTL=1")
}

func (s *Server) start(t testing.TB) {
	t.Helper()
	logf, err := os.OpenFile(filepath.Join(s.Dir, "mlflow.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer logf.Close() // the child has its own copy
	cmd := exec.Command(s.bin("mlflow"), "server",
		"--backend-store-uri", "sqlite:///"+filepath.Join(s.Dir, "mlflow.db"),
		"--artifacts-destination", s.ArtifactsDir,
		"--serve-artifacts",
		"--host", "127.0.0.1",
		"--port", strconv.Itoa(s.port),
		"--workers", "1",
	)
	if s.AdminUser != "" {
		cmd.Args = append(cmd.Args, "--app-name", "basic-auth")
	}
	cmd.Dir = s.Dir
	cmd.Env = s.env()
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group: uvicorn runs as a child, and stopping must reach it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("mlflowtest: starting mlflow: %v", err)
	}
	s.cmd, s.done = cmd, make(chan struct{})
	go func(done chan struct{}) { cmd.Wait(); close(done) }(s.done)

	deadline := time.Now().Add(StartTimeout)
	hc := &http.Client{Timeout: 2 * time.Second}
	for {
		select {
		case <-s.done:
			t.Fatalf("mlflowtest: mlflow server exited during start-up (%v):\n%s", cmd.ProcessState, s.logTail())
		case <-time.After(200 * time.Millisecond):
		}
		if resp, err := hc.Get(s.URI + "/health"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		if time.Now().After(deadline) {
			s.stop()
			t.Fatalf("mlflowtest: mlflow server at %s not healthy after %v:\n%s", s.URI, StartTimeout, s.logTail())
		}
	}
}

func (s *Server) logTail() string {
	raw, _ := os.ReadFile(filepath.Join(s.Dir, "mlflow.log"))
	return string(raw[max(0, len(raw)-3000):])
}

// signal sends sig to the server's whole process group.
func (s *Server) signal(sig syscall.Signal) {
	if s.cmd != nil {
		_ = syscall.Kill(-s.cmd.Process.Pid, sig)
	}
}

// stop ends the server: SIGTERM, then SIGKILL if it has not exited in 10s.
// Children left in the group after the leader exits are killed too.
func (s *Server) stop() {
	if s.cmd == nil {
		return
	}
	s.signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
	}
	s.signal(syscall.SIGKILL)
	<-s.done
	s.cmd = nil
}

// Kill ends the server at once (SIGKILL to the process group), as a crash
// would. Its state stays for Restart.
func (s *Server) Kill() {
	if s.cmd == nil {
		return
	}
	s.signal(syscall.SIGKILL)
	<-s.done
	s.cmd = nil
}

// Restart stops the server if it runs and starts it again on the same port
// with the same state.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	s.stop()
	s.start(t)
}

// RegisterVersion registers the MLflow model directory dir (MLmodel,
// model.onnx, serving_check.json, ...) as a new version of model and returns
// the version number. See RegisterVersions.
func (s *Server) RegisterVersion(t testing.TB, model, dir string) string {
	t.Helper()
	return s.RegisterVersions(t, model, dir)[0]
}

// RegisterVersions registers each directory in order as a new version, as
// the training notebook does: a run, mlflow.onnx.log_model with the
// directory's signature and input example, serving_check.json added to the
// logged model, mlflow.register_model. The directory's own ONNX file and any
// extra files (external data) are then uploaded unchanged, so a damaged copy
// (see CopyModelDir) stays damaged. One Python process registers all of them,
// which saves its few seconds of start-up per version.
func (s *Server) RegisterVersions(t testing.TB, model string, dirs ...string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	args := append([]string{"-", s.URI, model}, dirs...)
	cmd := exec.CommandContext(ctx, s.bin("python"), args...)
	cmd.Stdin = strings.NewReader(registerScript)
	cmd.Env = s.env()
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("mlflowtest: registering %v as %s: %v\n%s", dirs, model, err, tail(stderr.String(), 4000))
	}
	var versions []string
	sc := bufio.NewScanner(&stdout)
	for sc.Scan() {
		var v struct {
			Version string `json:"version"`
		}
		if strings.HasPrefix(sc.Text(), "{") && json.Unmarshal(sc.Bytes(), &v) == nil && v.Version != "" {
			versions = append(versions, v.Version)
		}
	}
	if len(versions) != len(dirs) {
		t.Fatalf("mlflowtest: registered %d of %d versions:\n%s\n%s", len(versions), len(dirs), stdout.String(), tail(stderr.String(), 4000))
	}
	return versions
}

func tail(s string, n int) string { return s[max(0, len(s)-n):] }

// CopyModelDir copies a model directory to a new temporary directory that
// the test may damage before registering it: corrupt model.onnx, wrong
// probabilities in serving_check.json, an unknown input in MLmodel.
func CopyModelDir(t testing.TB, src string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), filepath.Base(src))
	if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
		t.Fatalf("mlflowtest: copying %s: %v", src, err)
	}
	// os.CopyFS keeps the source's modes; some checkouts are read-only.
	err := filepath.WalkDir(dst, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		mode := os.FileMode(0o644)
		if d.IsDir() {
			mode = 0o755
		}
		return os.Chmod(p, mode)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// SaveWithExternalData rewrites dir's model.onnx so that its tensors live in
// one external-data file, model.onnx.data, as large models are saved. The
// shipped versions keep their weights in node attributes, which ONNX never
// moves out, so a model without initializers first gets one: its input is
// multiplied by a vector of ones, which leaves every prediction unchanged.
func SaveWithExternalData(t testing.TB, dir string) {
	t.Helper()
	root := ModuleRoot(t)
	const script = `import sys, numpy as np, onnx
from onnx import helper, numpy_helper
p = sys.argv[1]
m = onnx.load(p)
if not m.graph.initializer:
    x = m.graph.input[0]
    width = x.type.tensor_type.shape.dim[-1].dim_value or 1
    m.graph.initializer.append(numpy_helper.from_array(np.ones(width, np.float32), "ones"))
    for n in m.graph.node:
        n.input[:] = ["scaled_" + x.name if i == x.name else i for i in n.input]
    m.graph.node.insert(0, helper.make_node("Mul", [x.name, "ones"], ["scaled_" + x.name]))
onnx.checker.check_model(m)
onnx.save_model(m, p, save_as_external_data=True, all_tensors_to_one_file=True,
                location="model.onnx.data", size_threshold=0)
`
	cmd := exec.Command(filepath.Join(root, "notebooks", ".venv", "bin", "python"), "-c", script, filepath.Join(dir, "model.onnx"))
	cmd.Env = env()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("mlflowtest: saving %s with external data: %v\n%s", dir, err, out)
	}
	if _, err := os.Stat(filepath.Join(dir, "model.onnx.data")); errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("mlflowtest: %s/model.onnx has no tensors to move to external data", dir)
	}
}

// String is the tracking URI, for logs.
func (s *Server) String() string { return fmt.Sprintf("mlflow server %s", s.URI) }
