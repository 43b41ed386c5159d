package stack

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"mlservice/internal/freeport"
	"mlservice/internal/servetest"
)

const (
	replicas     = 3
	pollInterval = time.Second
	// loadSlack is what a replica may need beyond one poll interval to
	// download, verify and warm a version it has not loaded before: about
	// a second on an idle machine, up to 7 s when the three replicas,
	// MLflow and PostgreSQL load the two cores with other tests.
	loadSlack = 10 * time.Second
	token     = "stack-test-admin-token-0123456789"
)

// topology is a stack started by stack/stack.sh for one test.
type topology struct {
	dir, script string
	env         []string
	lb          string // HAProxy's front door
	replicas    []string
}

// The stack is started once for the whole package (TestMain stops it):
// MLflow with basic auth, the shipped versions registered with their
// aliases, PostgreSQL for the decision record, three replicas behind
// HAProxy; no Prometheus, no legacy form.
var (
	sharedOnce sync.Once
	shared     *topology
	sharedErr  error
	sharedDown func() error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if sharedDown != nil {
		if err := sharedDown(); err != nil {
			fmt.Fprintln(os.Stderr, "stack.sh down:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// startStack returns the package's stack, starting it on first use.
func startStack(t *testing.T) *topology {
	t.Helper()
	sharedOnce.Do(func() { shared, sharedErr = upStack(t) })
	if sharedErr != nil {
		t.Fatal(sharedErr)
	}
	t.Cleanup(func() {
		if t.Failed() {
			logs, _ := filepath.Glob(filepath.Join(shared.dir, "logs", "*.log"))
			for _, l := range logs {
				raw, _ := os.ReadFile(l)
				t.Logf("--- %s (tail)\n%s", filepath.Base(l), raw[max(0, len(raw)-2000):])
			}
		}
	})
	return shared
}

// upStack runs `stack/stack.sh up` in a fresh directory on free ports.
func upStack(t *testing.T) (*topology, error) {
	root := servetest.ModuleRoot()
	if _, err := os.Stat(filepath.Join(root, "notebooks", ".venv", "bin", "mlflow")); err != nil {
		return nil, fmt.Errorf("no notebooks/.venv/bin/mlflow (%v): run `make notebooks-env`", err)
	}
	dir, err := os.MkdirTemp("", "mlservice-stack-")
	if err != nil {
		return nil, err
	}
	mlflowPort, lbPort, pgPort, servePort := freeport.Ports(t, 1), freeport.Ports(t, 1), freeport.Ports(t, 1), freeport.Ports(t, replicas)
	env := append(os.Environ(),
		"STACK_DIR="+dir,
		"STACK_HOST=127.0.0.1",
		"STACK_REPLICAS="+strconv.Itoa(replicas),
		"STACK_MLFLOW_PORT="+strconv.Itoa(mlflowPort),
		"STACK_LB_PORT="+strconv.Itoa(lbPort),
		"STACK_LB_STATS_PORT="+strconv.Itoa(freeport.Ports(t, 1)),
		"STACK_POSTGRES_PORT="+strconv.Itoa(pgPort),
		"STACK_SERVE_PORT="+strconv.Itoa(servePort),
		"STACK_TRAIN=artifacts",
		"STACK_PROMETHEUS=0",
		"STACK_LEGACY=0",
		"STACK_START_TIMEOUT=150",
		"SERVE_POLL_INTERVAL="+pollInterval.String(),
		"SERVE_ADMIN_TOKEN="+token,
		"SERVE_LOG_LEVEL=info",
		"ONNXRUNTIME_SHARED_LIBRARY_PATH="+servetest.ORTLibrary(t),
	)
	top := &topology{dir: dir, env: env, script: filepath.Join(root, "stack", "stack.sh"),
		lb: "http://127.0.0.1:" + strconv.Itoa(lbPort)}
	sharedDown = func() error {
		out, err := top.run("down")
		if err != nil {
			return fmt.Errorf("%v\n%s", err, out)
		}
		if os.Getenv("STACK_TEST_KEEP") == "" {
			os.RemoveAll(dir)
		}
		return nil
	}
	start := time.Now()
	if out, err := top.run("up"); err != nil {
		return nil, fmt.Errorf("stack.sh up: %v\n%s", err, out)
	}
	t.Logf("stack up in %s", time.Since(start).Round(time.Millisecond))
	for i := range replicas {
		top.replicas = append(top.replicas, "http://127.0.0.1:"+strconv.Itoa(servePort+i))
	}
	return top, nil
}

// run runs stack/stack.sh with the stack's environment.
func (top *topology) run(args ...string) ([]byte, error) {
	cmd := exec.Command("bash", append([]string{top.script}, args...)...)
	cmd.Env = top.env
	return cmd.CombinedOutput()
}

// pid is the process id of a component (e.g. "serve-2") from its PID file.
func (top *topology) pid(t *testing.T, name string) int {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(top.dir, "run", name+".pid"))
	if err != nil {
		t.Fatal(err)
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(raw)))
	if err != nil {
		t.Fatal(err)
	}
	return pid
}

// inRotation is how many replicas HAProxy has in rotation (its /-/lb).
func (top *topology) inRotation(t *testing.T) int {
	t.Helper()
	resp, err := client.Get(top.lb + "/-/lb")
	if err != nil {
		t.Fatalf("GET /-/lb: %v", err)
	}
	defer resp.Body.Close()
	var st struct{ Up int }
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		t.Fatalf("GET /-/lb: %v", err)
	}
	return st.Up
}

// waitRotation waits until HAProxy has n replicas in rotation.
func (top *topology) waitRotation(t *testing.T, n int, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for top.inRotation(t) != n {
		if time.Now().After(deadline) {
			t.Fatalf("HAProxy has %d replicas in rotation after %s, want %d", top.inRotation(t), limit, n)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

var client = &http.Client{Timeout: 10 * time.Second}

// call sends a JSON request (admin ones with the token) and decodes the answer into out.
func call(t *testing.T, method, url string, body any, out any) int {
	t.Helper()
	var r io.Reader
	if body != nil {
		raw, _ := json.Marshal(body)
		r = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if strings.Contains(url, "/admin/") || strings.Contains(url, "/v1/decisions") {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if out != nil && json.Unmarshal(raw, out) != nil {
		t.Fatalf("%s %s: %d, not JSON: %s", method, url, resp.StatusCode, raw)
	}
	if resp.StatusCode >= 300 {
		t.Logf("%s %s: %d %s", method, url, resp.StatusCode, raw)
	}
	return resp.StatusCode
}

type decision struct {
	DecisionID    string `json:"decision_id"`
	ApplicationID string `json:"application_id"`
	Model         struct {
		Version string `json:"version"`
		Variant string `json:"variant"`
	} `json:"model"`
}

func predict(t *testing.T, base, id string) decision {
	t.Helper()
	var d decision
	app := map[string]any{"application_id": id, "income": 50000, "credit_score": 700,
		"loan_amount": 20000, "years_employed": 5, "points": 60}
	if code := call(t, http.MethodPost, base+"/v1/predict", app, &d); code != http.StatusOK {
		t.Fatalf("predict on %s: status %d", base, code)
	}
	return d
}

type models struct {
	Live []struct {
		Variant string `json:"variant"`
		Version string `json:"version"`
	} `json:"live"`
	Weights struct {
		Champion   int `json:"champion"`
		Challenger int `json:"challenger"`
	} `json:"weights"`
}

func (m models) version(variant string) string {
	for _, l := range m.Live {
		if l.Variant == variant {
			return l.Version
		}
	}
	return ""
}

// TestScaleOut: three replicas against one MLflow. A promotion through one
// replica's /admin is served by all three within one poll interval (plus the
// time to load the new version), and once a challenger takes half the
// traffic, every replica gives a given application_id the same variant.
func TestScaleOut(t *testing.T) {
	if testing.Short() {
		t.Skip("starts MLflow and three servers (~40 s)")
	}
	top := startStack(t)

	// The shipped registry: version 3 (the scorecard) is the champion everywhere.
	var before models
	for _, r := range top.replicas {
		call(t, http.MethodGet, r+"/admin/models", nil, &before)
		if got := before.version("champion"); got != "3" {
			t.Fatalf("%s: champion %q before the promotion, want 3", r, got)
		}
	}
	if n := top.inRotation(t); n != replicas {
		t.Fatalf("HAProxy has %d replicas in rotation, want %d", n, replicas)
	}

	t.Run("promote through one replica reaches all", func(t *testing.T) {
		if code := call(t, http.MethodPost, top.replicas[0]+"/admin/promote", map[string]string{"version": "1"}, nil); code != http.StatusOK {
			t.Fatalf("promote: status %d", code)
		}
		promoted := time.Now()
		limit := pollInterval + loadSlack
		for i, r := range top.replicas {
			for {
				d := predict(t, r, "A-promote")
				if d.Model.Version == "1" && d.Model.Variant == "champion" {
					t.Logf("replica %d serves version 1 after %s", i+1, time.Since(promoted).Round(time.Millisecond))
					break
				}
				if time.Since(promoted) > limit {
					t.Fatalf("replica %d (%s) still serves %+v %s after the promotion (limit: poll interval %s + %s to load)",
						i+1, r, d.Model, time.Since(promoted).Round(time.Millisecond), pollInterval, loadSlack)
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
		for range 6 { // and the load balancer, whichever replica answers
			if d := predict(t, top.lb, "A-promote"); d.Model.Version != "1" {
				t.Fatalf("through the load balancer: %+v", d.Model)
			}
		}
	})

	t.Run("same application, same variant on every replica", func(t *testing.T) {
		if code := call(t, http.MethodPost, top.replicas[1]+"/admin/promote", map[string]string{"alias": "challenger", "version": "2"}, nil); code != http.StatusOK {
			t.Fatalf("promote challenger: status %d", code)
		}
		if code := call(t, http.MethodPut, top.replicas[2]+"/admin/traffic", map[string]int{"champion": 50, "challenger": 50}, nil); code != http.StatusOK {
			t.Fatalf("traffic: status %d", code)
		}
		deadline := time.Now().Add(pollInterval + loadSlack + 2*time.Second)
		for i, r := range top.replicas {
			for {
				var m models
				call(t, http.MethodGet, r+"/admin/models", nil, &m)
				if m.version("champion") == "1" && m.version("challenger") == "2" && m.Weights.Champion == 50 && m.Weights.Challenger == 50 {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("replica %d has not taken up the challenger and the 50/50 split: %+v", i+1, m)
				}
				time.Sleep(50 * time.Millisecond)
			}
		}
		variants := map[string]int{}
		for n := range 60 {
			id := fmt.Sprintf("A-%04d", n)
			first := predict(t, top.replicas[0], id)
			for _, r := range append(top.replicas[1:], top.lb) {
				if d := predict(t, r, id); d.Model != first.Model {
					t.Fatalf("%s: %+v from %s, %+v from %s", id, first.Model, top.replicas[0], d.Model, r)
				}
			}
			wantVersion := map[string]string{"champion": "1", "challenger": "2"}[first.Model.Variant]
			if first.Model.Version != wantVersion {
				t.Fatalf("%s: %+v", id, first.Model)
			}
			variants[first.Model.Variant]++
		}
		if variants["champion"] == 0 || variants["challenger"] == 0 {
			t.Fatalf("a 50/50 split sent 60 applications as %v", variants)
		}
		t.Logf("60 applications: %v, identical on %d replicas and the load balancer", variants, replicas)
	})
}

// TestRecordShared: the three replicas write to one decision record
// (PostgreSQL, SERVE_DECISIONS_URL from stack.sh): a decision made by any
// replica is readable through every replica and through HAProxy.
func TestRecordShared(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the stack")
	}
	top := startStack(t)
	made := map[string]string{} // application id -> decision id
	for i, r := range top.replicas {
		for n := range 10 {
			id := fmt.Sprintf("R-%d-%02d", i+1, n)
			d := predict(t, r, id)
			if d.DecisionID == "" {
				t.Fatalf("%s on %s: no decision_id in the answer", id, r)
			}
			made[id] = d.DecisionID
		}
	}
	readers := append(slices.Clone(top.replicas), top.lb)
	for id, want := range made {
		for _, r := range readers {
			var got struct {
				Decisions []struct {
					DecisionID string `json:"decision_id"`
				} `json:"decisions"`
			}
			if code := call(t, http.MethodGet, r+"/v1/decisions/"+id, nil, &got); code != http.StatusOK {
				t.Fatalf("GET %s/v1/decisions/%s: status %d", r, id, code)
			}
			if len(got.Decisions) != 1 || got.Decisions[0].DecisionID != want {
				t.Fatalf("%s through %s: %+v, want the one decision %s", id, r, got.Decisions, want)
			}
		}
	}
	t.Logf("%d decisions, made 10 by each replica, each read back through all %d replicas and HAProxy", len(made), replicas)
}
