// Package servetest starts the real server binary for tests: built once per
// test binary, listening on a free loopback port, stopped (SIGTERM, then
// SIGKILL) when the test ends.
package servetest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"mlservice/internal/freeport"
)

var build struct {
	once sync.Once
	path string
	err  error
}

// ModuleRoot is the repository root (where go.mod is).
func ModuleRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// ORTLibrary returns the ONNX Runtime library path, failing the test with the
// fix when it is missing.
func ORTLibrary(t testing.TB) string {
	t.Helper()
	p := os.Getenv("ONNXRUNTIME_SHARED_LIBRARY_PATH")
	if p == "" {
		matches, _ := filepath.Glob(filepath.Join(ModuleRoot(), ".cache", "onnxruntime", "*", "libonnxruntime.so"))
		if len(matches) > 0 {
			p = matches[len(matches)-1]
		}
	}
	if _, err := os.Stat(p); p == "" || err != nil {
		t.Fatalf("ONNX Runtime library not found (%q): run `make test` or scripts/onnxruntime.sh", p)
	}
	return p
}

// Binary builds ./serve once per test process and returns its path: under
// the checkout's .cache, named by its content, so that the test processes of
// one run share one file and nothing is left in /tmp (a binary is 36 MB).
func Binary(t testing.TB) string {
	t.Helper()
	build.once.Do(func() { build.path, build.err = buildServe() })
	if build.err != nil {
		t.Fatal(build.err)
	}
	return build.path
}

// buildServe builds into a temporary name and renames it to serve-<sha256>,
// which is atomic, so concurrent test processes never run a half-written
// file. Builds of other contents a day old are removed.
func buildServe() (string, error) {
	dir := filepath.Join(ModuleRoot(), ".cache", "servetest")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	tmp, err := os.CreateTemp(dir, "build-*")
	if err != nil {
		return "", err
	}
	tmp.Close()
	defer os.Remove(tmp.Name())
	cmd := exec.Command("go", "build", "-o", tmp.Name(), "./serve")
	cmd.Dir = ModuleRoot()
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go build ./serve: %v\n%s", err, out)
	}
	data, err := os.ReadFile(tmp.Name())
	if err != nil {
		return "", err
	}
	path := filepath.Join(dir, fmt.Sprintf("serve-%x", sha256.Sum256(data))[:len("serve-")+16])
	if err := os.Rename(tmp.Name(), path); err != nil {
		return "", err
	}
	old, _ := filepath.Glob(filepath.Join(dir, "*"))
	for _, o := range old {
		if info, err := os.Stat(o); o != path && err == nil && time.Since(info.ModTime()) > 24*time.Hour {
			os.Remove(o)
		}
	}
	return path, nil
}

// FreeAddr returns a free 127.0.0.1 port as host:port (freeport.Addr).
func FreeAddr(t testing.TB) string {
	t.Helper()
	return freeport.Addr(t)
}

// Server is a running server process.
type Server struct {
	URL  string
	Addr string
	Cmd  *exec.Cmd
	// Log holds what the process wrote to stderr (its JSON log).
	Log *SafeBuffer
	// Env is the environment it was started with.
	Env []string

	done    chan struct{}
	waitErr error
}

// Options tune Start.
type Options struct {
	// Env adds variables (KEY=VALUE) to the defaults, and wins over them: a
	// free SERVE_ADDR, a fresh SERVE_CACHE_DIR, the ONNX Runtime library, no
	// shutdown drain.
	Env []string
	// NoWait returns without waiting for /ready.
	NoWait bool
	// ReadyTimeout bounds the wait for /ready (default 30s).
	ReadyTimeout time.Duration
}

// Start runs the server binary and waits until /ready answers 200.
func Start(t testing.TB, opts Options) *Server {
	t.Helper()
	bin := Binary(t)
	addr := FreeAddr(t)
	env := append(os.Environ(),
		"SERVE_ADDR="+addr,
		"SERVE_CACHE_DIR="+t.TempDir(),
		"SERVE_DATA_DIR="+t.TempDir(), // the decision record's SQLite file
		// The shipped artifacts' versions give no reasons; tests of other
		// features promote them (serve/record's tests set it false).
		"SERVE_ALLOW_VERSIONS_WITHOUT_REASONS=true",
		"ONNXRUNTIME_SHARED_LIBRARY_PATH="+ORTLibrary(t),
		"SERVE_LOG_LEVEL=info",
		"SERVE_SHUTDOWN_DRAIN=0s", // tests that are about shutdown set their own
	)
	env = append(env, opts.Env...)
	s := &Server{URL: "http://" + addr, Addr: addr, Log: &SafeBuffer{}, Env: env, done: make(chan struct{})}
	s.Cmd = exec.Command(bin)
	s.Cmd.Env = env
	s.Cmd.Stderr = s.Log
	s.Cmd.Stdout = s.Log
	s.Cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := s.Cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		s.waitErr = s.Cmd.Wait()
		close(s.done)
	}()
	t.Cleanup(func() { s.Stop(t) })
	if !opts.NoWait {
		timeout := opts.ReadyTimeout
		if timeout == 0 {
			timeout = 30 * time.Second
		}
		if err := s.WaitReady(timeout); err != nil {
			t.Fatalf("server not ready: %v\nlog:\n%s", err, s.Log.String())
		}
	}
	return s
}

// WaitReady polls /ready until it answers 200, the process exits or the
// timeout passes.
func (s *Server) WaitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	client := &http.Client{Timeout: time.Second}
	for time.Now().Before(deadline) {
		select {
		case <-s.done:
			return fmt.Errorf("process exited: %v", s.waitErr)
		default:
		}
		resp, err := client.Get(s.URL + "/ready")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("/ready not 200 after %s", timeout)
}

// Signal sends sig to the process.
func (s *Server) Signal(sig os.Signal) error { return s.Cmd.Process.Signal(sig) }

// Wait waits for the process to exit and returns its error.
func (s *Server) Wait(ctx context.Context) error {
	select {
	case <-s.done:
		return s.waitErr
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Exited reports whether the process has ended.
func (s *Server) Exited() bool {
	select {
	case <-s.done:
		return true
	default:
		return false
	}
}

// Stop ends the process: SIGTERM, then SIGKILL to its group after 10s.
func (s *Server) Stop(t testing.TB) {
	if s.Exited() {
		return
	}
	_ = s.Cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-s.Cmd.Process.Pid, syscall.SIGKILL)
		<-s.done
		t.Logf("server %s did not stop on SIGTERM; killed", s.Addr)
	}
}

// SafeBuffer is a bytes.Buffer safe for one writer and concurrent readers.
type SafeBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *SafeBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *SafeBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// WaitLog waits up to timeout for the process log to contain substr: the log
// comes through a pipe, a little behind the responses.
func (s *Server) WaitLog(substr string, timeout time.Duration) bool {
	for deadline := time.Now().Add(timeout); ; time.Sleep(20 * time.Millisecond) {
		if strings.Contains(s.Log.String(), substr) {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
	}
}
