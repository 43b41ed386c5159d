package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"mlservice/internal/servetest"
)

func TestConfigErrorsNameTheVariable(t *testing.T) {
	tests := []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"SERVE_POLL_INTERVAL": "often"}, `SERVE_POLL_INTERVAL="often": not a duration`},
		{map[string]string{"SERVE_POLL_INTERVAL": "1ms"}, `SERVE_POLL_INTERVAL="1ms": must be at least`},
		{map[string]string{"MLFLOW_TRACKING_URI": "localhost:5000"}, `MLFLOW_TRACKING_URI="localhost:5000": must be an http(s) URL`},
		{map[string]string{"SERVE_ADMIN_TOKEN": "short"}, `SERVE_ADMIN_TOKEN=(5 characters, not shown): must be at least 16 characters`},
		{map[string]string{"SERVE_INFERENCE_THREADS": "0"}, `SERVE_INFERENCE_THREADS="0"`},
		{map[string]string{"SERVE_LOG_LEVEL": "loud"}, `SERVE_LOG_LEVEL="loud"`},
		{map[string]string{"SERVE_ARTIFACTS_DIR": "/no/such/dir"}, `SERVE_ARTIFACTS_DIR="/no/such/dir": must be an existing directory`},
		{map[string]string{"SERVE_MODEL": " "}, `SERVE_MODEL=" ": must not be empty`},
		{map[string]string{"SERVE_MEMORY_LIMIT": "lots"}, `SERVE_MEMORY_LIMIT="lots": not a size`},
		{map[string]string{"SERVE_BATCH_CONCURRENCY": "0"}, `SERVE_BATCH_CONCURRENCY="0": must be a whole number from 1 to 64`},
		{map[string]string{"SERVE_BATCH_QUEUE": "-1"}, `SERVE_BATCH_QUEUE="-1"`},
		{map[string]string{"SERVE_MODEL": "loan-approval,,credit-line"}, `SERVE_MODEL="loan-approval,,credit-line": has an empty name`},
		{map[string]string{"SERVE_MODEL": "loan-approval, loan-approval"}, `SERVE_MODEL="loan-approval, loan-approval": names "loan-approval" twice`},
		{map[string]string{"SERVE_MODEL": "a/b"}, `SERVE_MODEL="a/b": "a/b" is not a model name`},
	}
	for _, tc := range tests {
		t.Run(tc.want, func(t *testing.T) {
			_, err := loadConfig(nil, func(k string) string { return tc.env[k] }, io.Discard)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want %q", err, tc.want)
			}
		})
	}
	c, err := loadConfig([]string{"-addr", "127.0.0.1:9"}, func(k string) string {
		return map[string]string{"SERVE_ADDR": ":1234", "SERVE_POLL_INTERVAL": "3s"}[k]
	}, io.Discard)
	if err != nil || c.Addr != "127.0.0.1:9" || c.PollInterval != 3*time.Second || c.Model != "loan-approval" {
		t.Fatalf("flags over env over defaults: %+v, %v", c, err)
	}
}

// TestStartUpErrorsAreOneLine runs the binary with each kind of bad set-up:
// it must exit 1 with one line that names the problem.
func TestStartUpErrorsAreOneLine(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	tests := []struct {
		name string
		env  []string
		want string
	}{
		{"bad duration", []string{"SERVE_POLL_INTERVAL=soon"}, "SERVE_POLL_INTERVAL"},
		{"missing ONNX Runtime", []string{"ONNXRUNTIME_SHARED_LIBRARY_PATH=/nonexistent/libonnxruntime.so"}, "ONNXRUNTIME_SHARED_LIBRARY_PATH"},
		{"missing model", []string{"SERVE_MODEL=mortgage"}, `SERVE_MODEL="mortgage"`},
		{"address in use", []string{"SERVE_ADDR=" + busy.Addr().String()}, "SERVE_ADDR"},
	}
	bin := servetest.Binary(t)
	lib := servetest.ORTLibrary(t)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cmd := exec.Command(bin)
			cmd.Env = append([]string{"SERVE_CACHE_DIR=" + t.TempDir(), "SERVE_DATA_DIR=" + t.TempDir(), "SERVE_ADDR=127.0.0.1:0",
				"ONNXRUNTIME_SHARED_LIBRARY_PATH=" + lib}, tc.env...)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			err := cmd.Run()
			if exit, ok := err.(*exec.ExitError); !ok || exit.ExitCode() != 1 {
				t.Fatalf("want exit 1, got %v; stderr:\n%s", err, stderr.String())
			}
			lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
			last := lines[len(lines)-1]
			if !strings.HasPrefix(last, "mlservice: start-up failed: ") || !strings.Contains(last, tc.want) {
				t.Fatalf("last line %q does not name %s", last, tc.want)
			}
			for _, l := range lines[:len(lines)-1] {
				if strings.Contains(l, `"level":"ERROR"`) && !strings.Contains(l, "registry sync failed") {
					t.Errorf("extra error line: %s", l)
				}
			}
		})
	}
}

// TestHugeBodyIsRefusedUnread announces a 1 GB body and sends none of it: the
// server must answer 413 from the Content-Length alone.
func TestHugeBodyIsRefusedUnread(t *testing.T) {
	s := servetest.Start(t, servetest.Options{})
	for _, c := range []struct{ path, want string }{
		{"/v1/predict/batch", `"code":"body_too_large"`},
		// /v2 answers in the protocol's own shape, even before its handler runs.
		{"/v2/models/loan-approval/infer", `{"error":"the request body is too large"}`},
	} {
		conn, err := net.DialTimeout("tcp", s.Addr, 2*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		fmt.Fprintf(conn, "POST %s HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", c.path, 1<<30)
		conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
		if err != nil {
			t.Fatalf("%s: no answer before the body was sent: %v", c.path, err)
		}
		body, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 413 || !strings.Contains(string(body), c.want) {
			t.Fatalf("%s: got %d %s", c.path, resp.StatusCode, body)
		}
	}
}

// TestGracefulShutdown sends SIGTERM while batches are in flight: each must
// complete, and the process must exit 0 within the shutdown bound.
func TestGracefulShutdown(t *testing.T) {
	s := servetest.Start(t, servetest.Options{Env: []string{"SERVE_SHUTDOWN_TIMEOUT=15s", "SERVE_SHUTDOWN_DRAIN=1s"}})
	var batch strings.Builder
	batch.WriteString(`{"applications":[`)
	for i := range 10000 {
		if i > 0 {
			batch.WriteString(",")
		}
		fmt.Fprintf(&batch, `{"income":%d,"credit_score":700,"loan_amount":20000,"years_employed":5,"points":60}`, 30000+i)
	}
	batch.WriteString("]}")
	body := batch.String()

	const clients = 6
	var sent sync.WaitGroup
	results := make(chan error, clients)
	client := &http.Client{Timeout: 20 * time.Second}
	for range clients {
		sent.Add(1)
		go func() {
			// The body signals when the transport has read all of it: the
			// request is then in the server's hands.
			req, _ := http.NewRequest("POST", s.URL+"/v1/predict/batch", &signalAtEOF{r: strings.NewReader(body), done: sent.Done})
			req.ContentLength = int64(len(body))
			req.Header.Set("Content-Type", "application/json")
			resp, err := client.Do(req)
			if err != nil {
				results <- err
				return
			}
			defer resp.Body.Close()
			raw, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != 200 || !bytes.Contains(raw, []byte(`"accepted":10000`)) {
				results <- fmt.Errorf("status %d: %.200s", resp.StatusCode, raw)
				return
			}
			results <- nil
		}()
	}
	sent.Wait()
	if err := s.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// While draining, /ready tells load balancers to stop sending.
	if !s.WaitLog("shutting down: draining", 2*time.Second) {
		t.Fatal("no drain on SIGTERM")
	}
	if resp, err := http.Get(s.URL + "/ready"); err != nil || resp.StatusCode != 503 {
		t.Fatalf("/ready while draining: %v %v", resp, err)
	}
	for range clients {
		if err := <-results; err != nil {
			t.Errorf("in-flight request failed during shutdown: %v", err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := s.Wait(ctx); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, s.Log.String())
	}
	if !strings.Contains(s.Log.String(), `"msg":"stopped"`) {
		t.Fatalf("no clean stop in the log:\n%s", s.Log.String())
	}
}

// signalAtEOF calls done once, when the reader is exhausted.
type signalAtEOF struct {
	r    io.Reader
	done func()
	once sync.Once
}

func (s *signalAtEOF) Read(p []byte) (int, error) {
	n, err := s.r.Read(p)
	if err == io.EOF {
		s.once.Do(s.done)
	}
	return n, err
}

// TestMLflowDownAtFirstStart points the server at an MLflow that is not
// there and has never been reached: it must serve the embedded default model
// and say so on /ready.
// With the opt-in, a first start with MLflow down serves the embedded
// artifacts, degraded.
func TestMLflowDownAtFirstStart(t *testing.T) {
	s := servetest.Start(t, servetest.Options{Env: []string{"MLFLOW_TRACKING_URI=http://" + servetest.FreeAddr(t),
		"SERVE_ALLOW_EMBEDDED_FALLBACK=true"}})
	resp, err := http.Get(s.URL + "/ready")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || !strings.Contains(string(raw), `"source":"artifacts"`) || !strings.Contains(string(raw), `"degraded"`) {
		t.Fatalf("/ready: %d %s", resp.StatusCode, raw)
	}
}

// TestSecretsAreNeverPrinted: -h, a mistyped flag, a too-short token and a
// tracking URI with credentials must not print a secret.
func TestSecretsAreNeverPrinted(t *testing.T) {
	const (
		token    = "admin-token-0123456789-s3cr3t"
		password = "mlflow-password-s3cr3t"
		webhook  = "webhook-secret-s3cr3t"
		bearer   = "mlflow-bearer-s3cr3t"
		write    = "mlflow-write-password-s3cr3t"
	)
	env := map[string]string{"SERVE_ADMIN_TOKEN": token, "MLFLOW_TRACKING_PASSWORD": password,
		"SERVE_WEBHOOK_SECRET": webhook, "MLFLOW_TRACKING_TOKEN": bearer, "SERVE_MLFLOW_WRITE_PASSWORD": write}
	getenv := func(k string) string { return env[k] }
	secrets := []string{token, password, webhook, bearer, write, "s3cr3t"}
	check := func(t *testing.T, what, out string) {
		t.Helper()
		for _, s := range secrets {
			if strings.Contains(out, s) {
				t.Fatalf("%s prints a secret (%q):\n%s", what, s, out)
			}
		}
	}
	for _, args := range [][]string{{"-h"}, {"-admin-tokn", "x"}, {"-poll-interval"}} {
		var out bytes.Buffer
		_, err := loadConfig(args, getenv, &out)
		if err == nil {
			t.Fatalf("%v: no error", args)
		}
		check(t, strings.Join(args, " "), out.String()+err.Error())
		if !strings.Contains(out.String(), "-admin-token") {
			t.Fatalf("%v: usage not printed:\n%s", args, out.String())
		}
	}
	// The environment still configures the secrets.
	c, err := loadConfig(nil, getenv, io.Discard)
	if err != nil || c.AdminToken != token || c.TrackingPassword != password || c.WebhookSecret != webhook || c.TrackingToken != bearer {
		t.Fatalf("secrets from the environment: %+v %v", c, err)
	}
	for name, bad := range map[string]map[string]string{
		"short token":          {"SERVE_ADMIN_TOKEN": "s3cr3t-x"},
		"short token by flag":  nil,
		"credentials in a URI": {"MLFLOW_TRACKING_URI": "ftp://alice:s3cr3t@mlflow:5000"},
		"unparsable URI":       {"MLFLOW_TRACKING_URI": "http://alice:s3cr3t@mlflow:50:00"},
	} {
		t.Run(name, func(t *testing.T) {
			args := []string(nil)
			if bad == nil {
				args = []string{"-admin-token", "s3cr3t-y"}
			}
			_, err := loadConfig(args, func(k string) string { return bad[k] }, io.Discard)
			if err == nil {
				t.Fatal("accepted")
			}
			check(t, name, err.Error())
		})
	}
	// The binary's own -h.
	cmd := exec.Command(servetest.Binary(t), "-h")
	cmd.Env = []string{"SERVE_ADMIN_TOKEN=" + token, "MLFLOW_TRACKING_PASSWORD=" + password, "SERVE_WEBHOOK_SECRET=" + webhook,
		"MLFLOW_TRACKING_URI=http://alice:" + password + "@127.0.0.1:1"}
	out, _ := cmd.CombinedOutput()
	check(t, "serve -h", string(out))
}

// TestActorsStopTogether runs the server in-process and stops it: when run
// returns, the controller and the shadow worker have returned too (one
// group, joined), not merely been asked to stop.
func TestActorsStopTogether(t *testing.T) {
	env := map[string]string{"SERVE_ADDR": "127.0.0.1:0", "SERVE_CACHE_DIR": t.TempDir(),
		"ONNXRUNTIME_SHARED_LIBRARY_PATH": servetest.ORTLibrary(t), "SERVE_SHUTDOWN_DRAIN": "0s", "SERVE_LOG_LEVEL": "error"}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- run(ctx, nil, func(k string) string { return env[k] }, io.Discard) }()
	deadline := time.Now().Add(20 * time.Second)
	for !actorsRunning() {
		if time.Now().After(deadline) {
			t.Fatal("the controller and the shadow worker never started")
		}
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond) // the HTTP server is up
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("run did not return after its context ended")
	}
	if actorsAlive() {
		t.Fatalf("run returned with an actor still running:\n%s", stacks())
	}
}

func stacks() string {
	buf := make([]byte, 1<<20)
	return string(buf[:runtime.Stack(buf, true)])
}

func actorsRunning() bool {
	s := stacks()
	return strings.Contains(s, "shadow.(*Mirror).Run") && strings.Contains(s, "rollout.(*Controller).Run")
}

func actorsAlive() bool {
	s := stacks()
	return strings.Contains(s, "shadow.(*Mirror).Run") || strings.Contains(s, "rollout.(*Controller).Run")
}

// Issue 12 item 3: without the opt-in, a first start with MLflow down never
// goes ready on the embedded artifacts, and /ready says why.
func TestMLflowDownAtFirstStartWithoutOptInIsNotReady(t *testing.T) {
	s := servetest.Start(t, servetest.Options{NoWait: true, Env: []string{"MLFLOW_TRACKING_URI=http://" + servetest.FreeAddr(t)}})
	if !s.WaitLog("fallback failed", 30*time.Second) {
		t.Fatalf("no sync attempt logged:\n%s", s.Log.String())
	}
	for range 3 {
		resp, err := http.Get(s.URL + "/ready")
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 503 || !strings.Contains(string(raw), "unavailable") ||
			!strings.Contains(string(raw), "SERVE_ALLOW_EMBEDDED_FALLBACK") || !strings.Contains(string(raw), "not served") {
			t.Fatalf("/ready: %d %s", resp.StatusCode, raw)
		}
		resp, err = http.Post(s.URL+"/v1/predict", "application/json", strings.NewReader(
			`{"income":50000,"credit_score":700,"loan_amount":20000,"years_employed":5,"points":60}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 503 {
			t.Fatalf("predict without an approved version: %d", resp.StatusCode)
		}
		// /v2 says the same in the protocol's shape.
		for _, c := range []struct{ method, path, body string }{
			{"GET", "/v2/health/ready", ""},
			{"GET", "/v2/models/loan-approval/ready", ""},
			{"GET", "/v2/models/loan-approval", ""},
			{"POST", "/v2/models/loan-approval/infer", `{"inputs":[{"name":"features","shape":[1,4],"datatype":"FP32","data":[50000,700,20000,5]}]}`},
		} {
			req, _ := http.NewRequest(c.method, s.URL+c.path, strings.NewReader(c.body))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var e map[string]string
			if resp.StatusCode != 503 || json.Unmarshal(raw, &e) != nil || len(e) != 1 || e["error"] == "" {
				t.Fatalf("%s %s: %d %s", c.method, c.path, resp.StatusCode, raw)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Issue 12 item 4: in MLflow mode the model need not be embedded; start-up
// goes on and waits for MLflow (the serving itself is TestMLflowServesAModelTheBinaryDoesNotEmbed).
func TestMLflowModeAcceptsAModelTheBinaryDoesNotEmbed(t *testing.T) {
	s := servetest.Start(t, servetest.Options{NoWait: true, Env: []string{"MLFLOW_TRACKING_URI=http://" + servetest.FreeAddr(t),
		"SERVE_MODEL=credit-risk"}})
	if !s.WaitLog(`"msg":"serving"`, 30*time.Second) || s.Exited() {
		t.Fatalf("start-up with a model only MLflow has:\n%s", s.Log.String())
	}
	// The opt-in cannot help a model the binary does not have: say so at start.
	bad := servetest.Start(t, servetest.Options{NoWait: true, Env: []string{"MLFLOW_TRACKING_URI=http://" + servetest.FreeAddr(t),
		"SERVE_MODEL=credit-risk", "SERVE_ALLOW_EMBEDDED_FALLBACK=true"}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := bad.Wait(ctx); err == nil || !strings.Contains(bad.Log.String(), "no such model in the embedded artifacts") {
		t.Fatalf("opt-in with a model not embedded: %v\n%s", err, bad.Log.String())
	}
}

// TestMemoryLimit: the Go heap gets a soft limit by default (1GiB),
// SERVE_MEMORY_LIMIT sets another, and a GOMEMLIMIT of the environment is
// left to the runtime.
func TestMemoryLimit(t *testing.T) {
	for _, tc := range []struct {
		env  map[string]string
		want int64
	}{
		{nil, 1 << 30},
		{map[string]string{"SERVE_MEMORY_LIMIT": "768MiB"}, 768 << 20},
		{map[string]string{"SERVE_MEMORY_LIMIT": "0"}, 0},
		{map[string]string{"GOMEMLIMIT": "512MiB"}, 0},
		{map[string]string{"GOMEMLIMIT": "512MiB", "SERVE_MEMORY_LIMIT": "2GiB"}, 2 << 30},
	} {
		c, err := loadConfig(nil, func(k string) string { return tc.env[k] }, io.Discard)
		if err != nil || c.MemoryLimit != tc.want {
			t.Errorf("%v: limit %d, want %d (%v)", tc.env, c.MemoryLimit, tc.want, err)
		}
	}
}
