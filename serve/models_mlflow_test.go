package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mlservice/internal/mlflowtest"
	"mlservice/internal/servetest"
	"mlservice/registry/mlflow"
)

// otherModel is registered in MLflow only: the binary embeds no such name.
const otherModel = "credit-line-scorer"

// TestAnyModelMLflowHolds: with MLflow, SERVE_MODEL may name a model the
// binary does not embed, and a comma-separated list serves several at once
// through /v2/models/{name}, each with its own aliases, routing and metrics,
// while /v1/predict stays the first's.
func TestAnyModelMLflowHolds(t *testing.T) {
	m := mlflowtest.Start(t)
	root := servetest.ModuleRoot()
	v1 := filepath.Join(root, "artifacts", model, "versions", "1")
	v2 := filepath.Join(root, "artifacts", model, "versions", "2")
	loanVersions := m.RegisterVersions(t, model, v1, v2)
	otherVersions := m.RegisterVersions(t, otherModel, v1, v2) // 1: logistic regression, 2: random forest
	client, err := mlflow.New(mlflow.Config{TrackingURI: m.URI})
	if err != nil {
		t.Fatal(err)
	}
	setAlias := func(name, alias, version string) {
		t.Helper()
		if err := client.SetAlias(context.Background(), name, alias, version); err != nil {
			t.Fatal(err)
		}
	}
	setAlias(model, "champion", loanVersions[1])
	setAlias(otherModel, "champion", otherVersions[0])
	want1 := servingCheckCase(t, v1) // what version 1's training run recorded for its first case
	want2 := servingCheckCase(t, v2)

	t.Run("one model the binary does not embed", func(t *testing.T) {
		srv := servetest.Start(t, servetest.Options{Env: []string{
			"MLFLOW_TRACKING_URI=" + m.URI, "SERVE_MODEL=" + otherModel, "SERVE_POLL_INTERVAL=1s"}})
		// /v1/predict is this model's.
		resp, raw := postText(t, srv.URL+"/v1/predict", "application/json", applicationJSON(want1.input))
		var d struct {
			Probability float64
			Model       struct{ Name, Version string }
		}
		json.Unmarshal(raw, &d)
		if resp.StatusCode != 200 || d.Model.Name != otherModel || d.Model.Version != otherVersions[0] ||
			math.Abs(d.Probability-want1.probability) > 1e-5 {
			t.Fatalf("/v1/predict: %d %s", resp.StatusCode, raw)
		}
		r := infer(t, srv.URL, otherModel, want1.input)
		if r.Version != otherVersions[0] || math.Abs(r.Probability-want1.probability) > 1e-5 {
			t.Fatalf("/v2 infer: %+v, want version %s p %v", r, otherVersions[0], want1.probability)
		}
		if code, body := getText(t, srv.URL+"/v2/models/"+model); code != 404 || !strings.Contains(body, `"error"`) {
			t.Fatalf("the loan model is not served here: %d %s", code, body)
		}
	})

	t.Run("two models at once", func(t *testing.T) {
		srv := servetest.Start(t, servetest.Options{Env: []string{
			"MLFLOW_TRACKING_URI=" + m.URI, "SERVE_MODEL=" + model + ", " + otherModel, "SERVE_POLL_INTERVAL=1s"}})
		waitReady(t, srv.URL, 60*time.Second)
		for _, c := range []struct {
			name, version string
			want          float64
		}{{model, loanVersions[1], want2.probability}, {otherModel, otherVersions[0], want1.probability}} {
			r := infer(t, srv.URL, c.name, want1.input)
			if r.Model != c.name || r.Version != c.version {
				t.Fatalf("%s: answered by %s version %s, want version %s", c.name, r.Model, r.Version, c.version)
			}
			code, body := getText(t, srv.URL+"/v2/models/"+c.name)
			if code != 200 || !strings.Contains(body, `"versions":["`+c.version+`"]`) {
				t.Fatalf("%s metadata: %d %s", c.name, code, body)
			}
		}
		// Same input, each model's own champion: v2 (random forest) vs v1.
		if a, b := infer(t, srv.URL, model, want2.input), infer(t, srv.URL, otherModel, want1.input); math.Abs(a.Probability-want2.probability) > 1e-5 ||
			math.Abs(b.Probability-want1.probability) > 1e-5 {
			t.Fatalf("probabilities %v and %v, want %v and %v", a.Probability, b.Probability, want2.probability, want1.probability)
		}
		// /v1/predict stays the loan model's.
		_, raw := postText(t, srv.URL+"/v1/predict", "application/json", applicationJSON(want2.input))
		if !strings.Contains(string(raw), `"name":"`+model+`"`) {
			t.Fatalf("/v1/predict: %s", raw)
		}
		// Each model's own metrics.
		_, metrics := getText(t, srv.URL+"/metrics")
		for _, series := range []string{`model_info{model="` + otherModel + `"`, `model_info{model="` + model + `"`,
			`model_predictions_total{decision="approve",model="` + otherModel + `"`} {
			if !strings.Contains(metrics, series) {
				t.Errorf("/metrics has no %s…", series)
			}
		}
		// Each model's own aliases: moving the other model's champion moves
		// only its answers.
		setAlias(otherModel, "champion", otherVersions[1])
		deadline := time.Now().Add(30 * time.Second)
		for infer(t, srv.URL, otherModel, want1.input).Version != otherVersions[1] {
			if time.Now().After(deadline) {
				t.Fatalf("%s's new champion %s not served within 30s", otherModel, otherVersions[1])
			}
			time.Sleep(100 * time.Millisecond)
		}
		if r := infer(t, srv.URL, model, want1.input); r.Version != loanVersions[1] {
			t.Fatalf("the loan model moved too: %+v", r)
		}
	})
}

type checkCase struct {
	input       map[string]float64
	probability float64
}

func servingCheckCase(t *testing.T, dir string) checkCase {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(dir, "serving_check.json"))
	if err != nil {
		t.Fatal(err)
	}
	var check struct {
		Cases []struct {
			Input       map[string]float64 `json:"input"`
			Probability float64            `json:"probability"`
		} `json:"cases"`
	}
	if err := json.Unmarshal(raw, &check); err != nil || len(check.Cases) == 0 {
		t.Fatalf("%s: %v", dir, err)
	}
	return checkCase{check.Cases[0].Input, check.Cases[0].Probability}
}

func applicationJSON(in map[string]float64) string {
	return fmt.Sprintf(`{"income":%v,"credit_score":%v,"loan_amount":%v,"years_employed":%v,"points":%v}`,
		in["income"], in["credit_score"], in["loan_amount"], in["years_employed"], in["points"])
}

type inferred struct {
	Model, Version string
	Probability    float64
}

// infer sends one row to /v2/models/{name}/infer as one tensor per column.
func infer(t *testing.T, base, name string, in map[string]float64) inferred {
	t.Helper()
	var cols []string
	for _, c := range []string{"income", "credit_score", "loan_amount", "years_employed"} {
		cols = append(cols, fmt.Sprintf(`{"name":%q,"shape":[1],"datatype":"FP64","data":[%v]}`, c, in[c]))
	}
	resp, raw := postText(t, base+"/v2/models/"+name+"/infer", "", `{"inputs":[`+strings.Join(cols, ",")+`],"outputs":[{"name":"probability"}]}`)
	if resp.StatusCode != 200 {
		t.Fatalf("infer %s: %d %s", name, resp.StatusCode, raw)
	}
	var out struct {
		ModelName    string `json:"model_name"`
		ModelVersion string `json:"model_version"`
		Outputs      []struct {
			Data []float64 `json:"data"`
		} `json:"outputs"`
	}
	if err := json.Unmarshal(raw, &out); err != nil || len(out.Outputs) != 1 || len(out.Outputs[0].Data) != 1 {
		t.Fatalf("infer %s: %s", name, raw)
	}
	return inferred{out.ModelName, out.ModelVersion, out.Outputs[0].Data[0]}
}

func postText(t *testing.T, url, contentType, body string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp, raw
}

func getText(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(raw)
}

// waitReady waits for /v2/health/ready: every served model has a champion.
func waitReady(t *testing.T, base string, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		code, body := getText(t, base+"/v2/health/ready")
		if code == 200 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("/v2/health/ready: %d %s after %v", code, body, limit)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestSeveralModelsLocal: two models from one artifacts tree (no MLflow),
// each with its own champion, both under /v2 and ready together, each with
// its own /admin (?model=, the loan model by default) and sync gauge.
func TestSeveralModelsLocal(t *testing.T) {
	tree := t.TempDir()
	src := filepath.Join(servetest.ModuleRoot(), "artifacts", model)
	for _, c := range []struct{ name, champion string }{{model, "2"}, {otherModel, "1"}} {
		dst := filepath.Join(tree, c.name)
		if err := os.CopyFS(dst, os.DirFS(src)); err != nil {
			t.Fatal(err)
		}
		raw, err := os.ReadFile(filepath.Join(dst, "registry.json"))
		if err != nil {
			t.Fatal(err)
		}
		var reg map[string]any
		if err := json.Unmarshal(raw, &reg); err != nil {
			t.Fatal(err)
		}
		reg["name"], reg["aliases"] = c.name, map[string]string{"champion": c.champion}
		raw, _ = json.Marshal(reg)
		if err := os.WriteFile(filepath.Join(dst, "registry.json"), raw, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	srv := servetest.Start(t, servetest.Options{Env: []string{"SERVE_ARTIFACTS_DIR=" + tree, "SERVE_MODEL=" + model + "," + otherModel,
		"SERVE_ADMIN_TOKEN=" + adminToken}})
	waitReady(t, srv.URL, 30*time.Second)
	in := servingCheckCase(t, filepath.Join(src, "versions", "1"))
	for _, c := range []struct{ name, version string }{{model, "2"}, {otherModel, "1"}} {
		if r := infer(t, srv.URL, c.name, in.input); r.Model != c.name || r.Version != c.version {
			t.Fatalf("%s: %+v, want version %s", c.name, r, c.version)
		}
	}
	if r := infer(t, srv.URL, otherModel, in.input); math.Abs(r.Probability-in.probability) > 1e-5 {
		t.Fatalf("%s: probability %v, its serving check %v", otherModel, r.Probability, in.probability)
	}

	// /admin for the second model: promote and roll back its champion;
	// the loan model (the default) does not move.
	admin := func(method, path, body string) (int, map[string]any) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+adminToken)
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	champions := func() (loan, other string) {
		t.Helper()
		return infer(t, srv.URL, model, in.input).Version, infer(t, srv.URL, otherModel, in.input).Version
	}
	if status, out := admin("POST", "/admin/promote?model="+otherModel, `{"version":"3"}`); status != 200 || out["model"] != otherModel {
		t.Fatalf("promote %s: %d %v", otherModel, status, out)
	}
	if loan, other := champions(); loan != "2" || other != "3" {
		t.Fatalf("after promoting %s to 3: champions %s and %s, want 2 and 3", otherModel, loan, other)
	}
	for _, c := range []struct{ path, model, champion string }{
		{"/admin/models", model, "2"}, {"/admin/models?model=" + otherModel, otherModel, "3"},
	} {
		status, out := admin("GET", c.path, "")
		desired, _ := out["desired"].(map[string]any)
		if status != 200 || out["model"] != c.model || desired["champion"] != c.champion {
			t.Fatalf("GET %s: %d %v", c.path, status, out)
		}
	}
	if status, out := admin("POST", "/admin/rollback?model="+otherModel, ""); status != 200 {
		t.Fatalf("rollback %s: %d %v", otherModel, status, out)
	}
	if loan, other := champions(); loan != "2" || other != "1" {
		t.Fatalf("after rolling %s back: champions %s and %s, want 2 and 1", otherModel, loan, other)
	}
	// The default is the loan model: its rollback history is its own (empty).
	if status, out := admin("POST", "/admin/rollback", ""); status != 409 {
		t.Fatalf("rollback of the loan model with no history: %d %v", status, out)
	}
	if status, out := admin("POST", "/admin/promote?model=no-such-model", `{"version":"1"}`); status != 404 {
		t.Fatalf("unknown model: %d %v", status, out)
	}
	// Each model's own sync gauge.
	for _, name := range []string{model, otherModel} {
		if v := metricValue(t, srv.URL, `model_registry_sync_success{model="`+name+`"}`); v != 1 {
			t.Errorf("model_registry_sync_success{model=%q} = %v", name, v)
		}
	}
}
