package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"mlservice/internal/mlflowtest"
	"mlservice/internal/servetest"
	"mlservice/registry"
	"mlservice/registry/mlflow"
	"mlservice/serve/models"
)

// These tests run the server in MLflow mode against a real `mlflow server`,
// with versions registered the way the training notebook registers them.

const model = "loan-approval"

type mlflowEnv struct {
	mlflow   *mlflowtest.Server
	client   *mlflow.Client
	versions map[string]string // what → registered version
}

func startMLflow(t *testing.T) *mlflowEnv {
	t.Helper()
	m := mlflowtest.Start(t)
	root := servetest.ModuleRoot()
	good1 := filepath.Join(root, "artifacts", model, "versions", "1")
	good2 := filepath.Join(root, "artifacts", model, "versions", "2")

	corrupt := mlflowtest.CopyModelDir(t, good2)
	raw, _ := os.ReadFile(filepath.Join(corrupt, "model.onnx"))
	os.WriteFile(filepath.Join(corrupt, "model.onnx"), raw[:len(raw)/3], 0o644)

	badSignature := mlflowtest.CopyModelDir(t, good2)
	ml, _ := os.ReadFile(filepath.Join(badSignature, "MLmodel"))
	os.WriteFile(filepath.Join(badSignature, "MLmodel"), bytes.Replace(ml, []byte(`"name": "income"`), []byte(`"name": "salary"`), 1), 0o644)

	badCheck := mlflowtest.CopyModelDir(t, good2)
	var check models.ServingCheck
	rawCheck, _ := os.ReadFile(filepath.Join(badCheck, models.ServingCheckFile))
	json.Unmarshal(rawCheck, &check)
	check.Cases[0].Probability = math.Mod(check.Cases[0].Probability+0.3, 1)
	rawCheck, _ = json.Marshal(check)
	os.WriteFile(filepath.Join(badCheck, models.ServingCheckFile), rawCheck, 0o644)

	vs := m.RegisterVersions(t, model, good1, good2, corrupt, badSignature, badCheck)
	c, err := mlflow.New(mlflow.Config{TrackingURI: m.URI})
	if err != nil {
		t.Fatal(err)
	}
	return &mlflowEnv{mlflow: m, client: c, versions: map[string]string{
		"v1": vs[0], "v2": vs[1], "corrupt": vs[2], "signature": vs[3], "check": vs[4]}}
}

func (e *mlflowEnv) setAlias(t *testing.T, alias, what string) {
	t.Helper()
	if err := e.client.SetAlias(context.Background(), model, alias, e.versions[what]); err != nil {
		t.Fatal(err)
	}
}

func startMLflowServer(t *testing.T, e *mlflowEnv, env ...string) *servetest.Server {
	t.Helper()
	return servetest.Start(t, servetest.Options{Env: append([]string{
		"MLFLOW_TRACKING_URI=" + e.mlflow.URI, "SERVE_POLL_INTERVAL=1s", "SERVE_ADMIN_TOKEN=" + adminToken}, env...)})
}

const adminToken = "mlflow-mode-admin-token-42"

// servedVersion decides one application and returns the version that decided.
func servedVersion(t *testing.T, url string) (string, error) {
	resp, err := http.Post(url+"/v1/predict", "application/json", strings.NewReader(
		`{"application_id":"MLF-1","income":50000,"credit_score":700,"loan_amount":20000,"years_employed":5,"points":60}`))
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var out struct{ Model struct{ Version string } }
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		return "", fmt.Errorf("status %d: %s", resp.StatusCode, raw)
	}
	json.Unmarshal(raw, &out)
	return out.Model.Version, nil
}

// waitServed polls until the server decides with version, and returns how long it took.
func waitServed(t *testing.T, url, version string, limit time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < limit {
		if v, err := servedVersion(t, url); err == nil && v == version {
			return time.Since(start)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("version %s not served within %v", version, limit)
	return 0
}

func metricValue(t *testing.T, url, series string) float64 {
	t.Helper()
	resp, err := http.Get(url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindSubmatch(raw)
	if m == nil {
		return math.NaN()
	}
	v, _ := strconv.ParseFloat(string(m[1]), 64)
	return v
}

func readyBody(t *testing.T, url string) (int, map[string]any) {
	resp, err := http.Get(url + "/ready")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	json.NewDecoder(resp.Body).Decode(&out)
	return resp.StatusCode, out
}

func TestMLflowMode(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real MLflow server")
	}
	e := startMLflow(t)
	e.setAlias(t, "champion", "v1")
	cache := t.TempDir()
	s := startMLflowServer(t, e, "SERVE_CACHE_DIR="+cache)
	if v, err := servedVersion(t, s.URL); err != nil || v != e.versions["v1"] {
		t.Fatalf("champion: %q, %v", v, err)
	}
	if _, body := readyBody(t, s.URL); body["source"] != "mlflow" {
		t.Fatalf("/ready: %v", body)
	}

	steps := []struct {
		name string
		fn   func(t *testing.T)
	}{}
	step := func(name string, fn func(t *testing.T)) {
		steps = append(steps, struct {
			name string
			fn   func(t *testing.T)
		}{name, fn})
	}
	defer func() {
		for _, st := range steps {
			if !t.Run(st.name, st.fn) {
				t.Fatalf("step %q failed; the later steps depend on it", st.name)
			}
		}
	}()

	step("an alias move is served within one poll interval", func(t *testing.T) {
		e.setAlias(t, "champion", "v2")
		took := waitServed(t, s.URL, e.versions["v2"], 5*time.Second)
		t.Logf("alias move served after %v (poll interval 1s)", took)
		if took > 1750*time.Millisecond { // one poll interval plus the sync itself
			t.Fatalf("took %v, more than one poll interval", took)
		}
	})

	step("bad versions are rejected while the old one serves", func(t *testing.T) {
		for what, reason := range map[string]string{"corrupt": "session", "signature": "signature", "check": "serving_check"} {
			e.setAlias(t, "champion", what)
			series := fmt.Sprintf(`model_load_failures_total{model="loan-approval",reason=%q}`, reason)
			deadline := time.Now().Add(5 * time.Second)
			for !(metricValue(t, s.URL, series) >= 1) && time.Now().Before(deadline) {
				time.Sleep(50 * time.Millisecond)
			}
			if v := metricValue(t, s.URL, series); v != 1 {
				t.Fatalf("%s: %s = %v", what, series, v)
			}
			if v, err := servedVersion(t, s.URL); err != nil || v != e.versions["v2"] {
				t.Fatalf("%s: serving %q, %v; want the old version %s", what, v, err, e.versions["v2"])
			}
			if v := metricValue(t, s.URL, `model_registry_sync_success{model="`+model+`"}`); v != 0 {
				t.Fatalf("%s: model_registry_sync_success = %v", what, v)
			}
		}
		e.setAlias(t, "champion", "v2")
		deadline := time.Now().Add(5 * time.Second)
		for metricValue(t, s.URL, `model_registry_sync_success{model="`+model+`"}`) != 1 && time.Now().Before(deadline) {
			time.Sleep(50 * time.Millisecond)
		}
		if v := metricValue(t, s.URL, `model_registry_sync_success{model="`+model+`"}`); v != 1 {
			t.Fatalf("sync success after the alias is good again: %v", v)
		}
	})

	step("MLflow killed: serving continues, restart serves from the cache", func(t *testing.T) {
		e.mlflow.Kill()
		for range 50 {
			if v, err := servedVersion(t, s.URL); err != nil || v != e.versions["v2"] {
				t.Fatalf("with MLflow down: %q, %v", v, err)
			}
			time.Sleep(40 * time.Millisecond)
		}
		// A sync against a dead MLflow takes its retries (about 2s) to fail.
		deadline := time.Now().Add(10 * time.Second)
		for metricValue(t, s.URL, `model_registry_sync_success{model="`+model+`"}`) != 0 && time.Now().Before(deadline) {
			time.Sleep(100 * time.Millisecond)
		}
		if v := metricValue(t, s.URL, `model_registry_sync_success{model="`+model+`"}`); v != 0 {
			t.Fatalf("model_registry_sync_success = %v with MLflow down", v)
		}
		if v, err := servedVersion(t, s.URL); err != nil || v != e.versions["v2"] {
			t.Fatalf("after failed syncs: %q, %v", v, err)
		}
		if v := metricValue(t, s.URL, `model_registry_sync_errors_total{model="`+model+`"}`); !(v >= 1) {
			t.Fatalf("model_registry_sync_errors_total = %v with MLflow down", v)
		}
		s.Stop(t)

		restarted := startMLflowServer(t, e, "SERVE_CACHE_DIR="+cache)
		status, body := readyBody(t, restarted.URL)
		if status != 200 || body["source"] != "cache" {
			t.Fatalf("restart with MLflow down: /ready %d %v", status, body)
		}
		if v, err := servedVersion(t, restarted.URL); err != nil || v != e.versions["v2"] {
			t.Fatalf("restart with MLflow down serves %q, %v", v, err)
		}

		e.mlflow.Restart(t)
		deadline = time.Now().Add(10 * time.Second)
		for time.Now().Before(deadline) {
			if _, body := readyBody(t, restarted.URL); body["source"] == "mlflow" {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		_, body = readyBody(t, restarted.URL)
		t.Fatalf("did not converge back to MLflow: %v", body)
	})

	step("a webhook is served within 1s", func(t *testing.T) {
		const secret = "webhook-secret-for-tests"
		hooked := startMLflowServer(t, e, "SERVE_POLL_INTERVAL=1h", "SERVE_WEBHOOK_SECRET="+secret)
		createWebhook(t, e.mlflow.URI, hooked.URL+"/hooks/mlflow", secret)
		if v, _ := servedVersion(t, hooked.URL); v != e.versions["v2"] {
			t.Fatalf("start: %s", v)
		}
		e.setAlias(t, "champion", "v1")
		took := waitServed(t, hooked.URL, e.versions["v1"], 5*time.Second)
		t.Logf("alias move served after %v through the webhook (poll interval 1h)", took)
		if took > time.Second {
			t.Fatalf("took %v", took)
		}
		if !hooked.WaitLog("webhook accepted", 3*time.Second) {
			t.Fatal("the webhook was not what triggered the sync")
		}
	})

	step("two replicas converge after a promote on one", func(t *testing.T) {
		a := startMLflowServer(t, e)
		b := startMLflowServer(t, e)
		current, _ := servedVersion(t, a.URL)
		next := e.versions["v1"]
		if current == next {
			next = e.versions["v2"]
		}
		req, _ := http.NewRequest("POST", a.URL+"/admin/promote", strings.NewReader(`{"version":"`+next+`"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+adminToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("promote through replica a: %v %v", err, resp)
		}
		resp.Body.Close()
		if v, _ := servedVersion(t, a.URL); v != next {
			t.Fatalf("replica a serves %s right after its own promote", v)
		}
		took := waitServed(t, b.URL, next, 5*time.Second)
		t.Logf("replica b followed after %v (poll interval 1s)", took)
		if took > 1750*time.Millisecond { // one poll interval plus the sync itself
			t.Fatalf("replica b took %v", took)
		}
		if got, err := e.client.VersionByAlias(context.Background(), model, "champion"); err != nil || got.Version != next {
			t.Fatalf("MLflow's champion alias: %v %v", got.Version, err)
		}
	})

	step("zero downtime: sustained load while the champion moves 10 times", func(t *testing.T) {
		s := startMLflowServer(t, e, "SERVE_POLL_INTERVAL=200ms")
		zeroDowntime(t, e, s)
	})
}

// zeroDowntime drives 16 connections while the champion alias moves ten
// times: no request may fail, each response must name a version that was the
// champion at some point during the test, and afterwards the open sessions
// must come back to the live variants.
func zeroDowntime(t *testing.T, e *mlflowEnv, s *servetest.Server) {
	var (
		stop     atomic.Bool
		wg       sync.WaitGroup
		requests atomic.Int64
		failures atomic.Int64
		mu       sync.Mutex
		seen     = map[string]int{}
		firstErr atomic.Value
	)
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 16}, Timeout: 5 * time.Second}
	for c := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; !stop.Load(); i++ {
				body := fmt.Sprintf(`{"application_id":"ZD-%d-%d","income":50000,"credit_score":700,"loan_amount":20000,"years_employed":5,"points":60}`, c, i)
				resp, err := client.Post(s.URL+"/v1/predict", "application/json", strings.NewReader(body))
				requests.Add(1)
				if err != nil {
					failures.Add(1)
					firstErr.CompareAndSwap(nil, err.Error())
					continue
				}
				var out struct{ Model struct{ Version string } }
				raw, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 || json.Unmarshal(raw, &out) != nil {
					failures.Add(1)
					firstErr.CompareAndSwap(nil, fmt.Sprintf("%d %s", resp.StatusCode, raw))
					continue
				}
				mu.Lock()
				seen[out.Model.Version]++
				mu.Unlock()
			}
		}()
	}
	aliased := map[string]bool{}
	for i := range 10 {
		what := []string{"v1", "v2"}[i%2]
		e.setAlias(t, "champion", what)
		aliased[e.versions[what]] = true
		waitServed(t, s.URL, e.versions[what], 5*time.Second)
		time.Sleep(150 * time.Millisecond)
	}
	stop.Store(true)
	wg.Wait()
	t.Logf("%d requests during 10 alias moves, versions served %v", requests.Load(), seen)
	if failures.Load() != 0 {
		t.Fatalf("%d of %d requests failed; first: %v", failures.Load(), requests.Load(), firstErr.Load())
	}
	for v := range seen {
		if !aliased[v] {
			t.Fatalf("served version %s, which the champion alias never named during the test", v)
		}
	}
	if len(seen) != 2 {
		t.Fatalf("want both versions served across the moves, got %v", seen)
	}
	deadline := time.Now().Add(5 * time.Second)
	for metricValue(t, s.URL, "model_sessions_open") != 1 && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if v := metricValue(t, s.URL, "model_sessions_open"); v != 1 {
		t.Fatalf("model_sessions_open = %v with one live variant", v)
	}
}

// createWebhook registers a webhook for alias changes in MLflow.
func createWebhook(t *testing.T, mlflowURI, url, secret string) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{
		"name": "mlservice", "url": url, "secret": secret,
		"events": []map[string]string{{"entity": "MODEL_VERSION_ALIAS", "action": "CREATED"}},
	})
	resp, err := http.Post(mlflowURI+"/api/2.0/mlflow/webhooks", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		t.Fatalf("create webhook: %d %s", resp.StatusCode, raw)
	}
}

// TestMLflowWithAuth runs MLflow's basic-auth app as the stacks do, with a
// model the binary does not embed:
//   - issue 12 item 4: SERVE_MODEL=credit-risk serves from MLflow alone;
//   - issue 12 item 5: the server syncs with a read-only account, /admin
//     writes only with the separate write account, and a champion moved by
//     an ops account in MLflow is audited, counted and added to the rollback
//     history.
func TestMLflowWithAuth(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a real MLflow server")
	}
	const name = "credit-risk"
	m := mlflowtest.StartWithAuth(t)
	root := servetest.ModuleRoot()
	vs := m.RegisterVersions(t, name, filepath.Join(root, "artifacts", model, "versions", "1"),
		filepath.Join(root, "artifacts", model, "versions", "2"))
	const readPass, writePass, opsPass = "server-read-password-1", "server-write-password-1", "alice-ops-password-1"
	m.CreateUser(t, "mlservice", readPass) // READ by default, nothing else
	m.CreateUser(t, "mlservice-admin", writePass)
	m.Grant(t, "mlservice-admin", name, "EDIT")
	m.CreateUser(t, "alice", opsPass)
	m.Grant(t, "alice", name, "EDIT")
	client := func(user, pass string) *mlflow.Client {
		c, err := mlflow.New(mlflow.Config{TrackingURI: m.URI, Username: user, Password: pass, Attempts: 1})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	ctx := context.Background()
	alice := client("alice", opsPass)
	if err := alice.SetAlias(ctx, name, "champion", vs[0]); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*mlflow.Client{client("", ""), client("mlservice", readPass), client("mlservice", "wrong-password-123")} {
		if err := c.SetAlias(ctx, name, "champion", vs[1]); !errors.Is(err, registry.ErrDenied) {
			t.Fatalf("a write without the right account: %v, want ErrDenied", err)
		}
	}

	env := []string{"MLFLOW_TRACKING_URI=" + m.URI, "SERVE_MODEL=" + name, "SERVE_POLL_INTERVAL=1s",
		"SERVE_ADMIN_TOKEN=" + adminToken, "MLFLOW_TRACKING_USERNAME=mlservice", "MLFLOW_TRACKING_PASSWORD=" + readPass}
	readOnly := servetest.Start(t, servetest.Options{Env: env})
	if v, err := servedVersion(t, readOnly.URL); err != nil || v != vs[0] {
		t.Fatalf("SERVE_MODEL=%s from MLflow alone: %q %v", name, v, err)
	}
	promote := func(url, version string) (int, string) {
		req, _ := http.NewRequest("POST", url+"/admin/promote", strings.NewReader(`{"version":"`+version+`"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+adminToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(raw)
	}
	if status, body := promote(readOnly.URL, vs[1]); status != 403 || !strings.Contains(body, "SERVE_MLFLOW_WRITE_USERNAME") {
		t.Fatalf("promote with read-only credentials: %d %s", status, body)
	}
	if got, _ := alice.VersionByAlias(ctx, name, "champion"); got.Version != vs[0] {
		t.Fatalf("a refused promote moved the champion to %s", got.Version)
	}

	writer := servetest.Start(t, servetest.Options{Env: append(env,
		"SERVE_MLFLOW_WRITE_USERNAME=mlservice-admin", "SERVE_MLFLOW_WRITE_PASSWORD="+writePass)})
	if status, body := promote(writer.URL, vs[1]); status != 200 {
		t.Fatalf("promote with the write account: %d %s", status, body)
	}
	waitServed(t, readOnly.URL, vs[1], 30*time.Second) // basic auth hashes the password on every call: slow on a loaded machine

	// Alice moves the champion back in MLflow, past /admin.
	if err := alice.SetAlias(ctx, name, "champion", vs[0]); err != nil {
		t.Fatal(err)
	}
	waitServed(t, readOnly.URL, vs[0], 30*time.Second) // basic auth hashes the password on every call: slow on a loaded machine
	waitServed(t, writer.URL, vs[0], 30*time.Second)   // basic auth hashes the password on every call: slow on a loaded machine
	for _, s := range []*servetest.Server{readOnly, writer} {
		if !s.WaitLog("champion changed outside /admin", 10*time.Second) {
			t.Fatalf("no audit line for the outside change:\n%s", s.Log.String())
		}
		if v := metricValue(t, s.URL, `model_champion_changes_total{model="credit-risk",origin="outside"}`); v != 1 {
			t.Fatalf("outside changes counted %v", v)
		}
	}
	st, err := alice.State(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf(`{"champions":[%q,%q,%q],"outside":true}`, vs[0], vs[1], vs[0])
	if got := st.Tags["serve.champion_history"]; got != want {
		t.Fatalf("history tag %s, want %s", got, want)
	}
	// The rollback undoes Alice's change.
	req, _ := http.NewRequest("POST", writer.URL+"/admin/rollback", nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("rollback: %v %v", err, resp)
	}
	resp.Body.Close()
	waitServed(t, readOnly.URL, vs[1], 30*time.Second) // basic auth hashes the password on every call: slow on a loaded machine
}
