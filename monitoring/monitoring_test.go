package monitoring

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"mlservice/internal/servetest"
)

const (
	dashboardsDir  = "grafana/dashboards"
	datasourcesDir = "grafana/provisioning/datasources"
	rulesGlob      = "prometheus/rules/*.yml"
	ruleTestsGlob  = "prometheus/tests/*.yml"
	readmePath     = "README.md"
	rootReadmePath = "../README.md"
)

// grafanaVars are the values substituted for Grafana's variables before an
// expression goes to Prometheus. The windows are sized for a test that
// scrapes every second for well under a minute.
var grafanaVars = []string{
	"$__rate_interval", "1m",
	"${__rate_interval}", "1m",
	"$__interval", "30s",
	"${__interval}", "30s",
	"$__range", "5m",
	"${__range}", "5m",
	"${model}", "loan-approval",
	"$model", "loan-approval",
}

// query is one PromQL expression found in the monitoring files.
type query struct {
	source string // where it was found, for messages
	expr   string // as written
	// condition marks an alert expression: it must parse, but its result
	// may be empty; its operands must return data.
	condition bool
}

func (q query) promQL() string {
	return strings.NewReplacer(grafanaVars...).Replace(q.expr)
}

// dashboardQueries returns every "expr" field in the dashboard JSON files,
// at any depth (panels, rows, annotations).
func dashboardQueries(t *testing.T) []query {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(dashboardsDir, "*.json"))
	if len(files) == 0 {
		t.Fatalf("no dashboards in %s", dashboardsDir)
	}
	var out []query
	for _, f := range files {
		var doc any
		readJSON(t, f, &doc)
		walkJSON(doc, "", func(path string, key string, v any) {
			if s, ok := v.(string); ok && key == "expr" {
				out = append(out, query{source: filepath.Base(f) + path, expr: s})
			}
		})
	}
	return out
}

// walkJSON calls fn for every object member, with a readable path.
func walkJSON(v any, path string, fn func(path, key string, v any)) {
	switch v := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(v))
		for k := range v {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		here := path
		if title, ok := v["title"].(string); ok {
			here += fmt.Sprintf("[%s]", title)
		} else if ref, ok := v["refId"].(string); ok {
			here += "." + ref
		}
		for _, k := range keys {
			fn(here, k, v[k])
			walkJSON(v[k], here+"."+k, fn)
		}
	case []any:
		for _, e := range v {
			walkJSON(e, path, fn)
		}
	}
}

// rule is one recording or alerting rule of the rule files.
type rule struct {
	Alert  string `yaml:"alert"`
	Record string `yaml:"record"`
	Expr   string `yaml:"expr"`
}

// allRules returns every rule of the files rulesGlob matches, in order.
func allRules(t *testing.T) []rule {
	t.Helper()
	files, _ := filepath.Glob(rulesGlob)
	if len(files) == 0 {
		t.Fatalf("no rule files match %s", rulesGlob)
	}
	var out []rule
	for _, f := range files {
		var rf struct {
			Groups []struct {
				Rules []rule `yaml:"rules"`
			} `yaml:"groups"`
		}
		readYAML(t, f, &rf)
		for _, g := range rf.Groups {
			out = append(out, g.Rules...)
		}
	}
	return out
}

// ruleQueries returns each rule's expression: recording rules as plain
// queries, alerts as conditions followed by each quantity they compare.
func ruleQueries(t *testing.T) []query {
	t.Helper()
	var out []query
	for _, r := range allRules(t) {
		if r.Record != "" {
			out = append(out, query{source: "record " + r.Record, expr: r.Expr})
			continue
		}
		out = append(out, query{source: "alert " + r.Alert, expr: r.Expr, condition: true})
		ops := operands(r.Expr)
		if len(ops) == 0 {
			t.Errorf("alert %s: no quantity found in %q", r.Alert, r.Expr)
		}
		for i, op := range ops {
			out = append(out, query{source: fmt.Sprintf("alert %s quantity %d", r.Alert, i+1), expr: op})
		}
	}
	return out
}

var promqlBlock = regexp.MustCompile("(?s)```promql\\n(.*?)```")

// readmeQueries returns the ```promql blocks of monitoring/README.md and of
// the project README, one expression each.
func readmeQueries(t *testing.T) []query {
	t.Helper()
	var out []query
	for _, path := range []string{readmePath, rootReadmePath} {
		b, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		for i, m := range promqlBlock.FindAllStringSubmatch(string(b), -1) {
			out = append(out, query{source: fmt.Sprintf("%s block %d", path, i+1), expr: strings.TrimSpace(m[1])})
		}
	}
	if len(out) == 0 {
		t.Fatal("the READMEs have no ```promql blocks")
	}
	return out
}

func allQueries(t *testing.T) []query {
	t.Helper()
	qs := append(dashboardQueries(t), ruleQueries(t)...)
	qs = append(qs, readmeQueries(t)...)
	for _, q := range qs {
		if e := q.promQL(); strings.Contains(e, "$") {
			t.Errorf("%s: a Grafana variable is left after substitution: %s", q.source, e)
		}
	}
	return qs
}

func readJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(b, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// TestDashboardDatasource checks that every datasource reference in the
// dashboards is the provisioned Prometheus, by uid.
func TestDashboardDatasource(t *testing.T) {
	files, _ := filepath.Glob(filepath.Join(datasourcesDir, "*.yml"))
	uids := map[string]string{} // uid → type
	for _, f := range files {
		var prov struct {
			Datasources []struct{ Name, UID, Type string } `yaml:"datasources"`
		}
		readYAML(t, f, &prov)
		for _, d := range prov.Datasources {
			if d.UID == "" {
				t.Errorf("%s: datasource %q has no fixed uid", f, d.Name)
			}
			uids[d.UID] = d.Type
		}
	}
	if len(uids) == 0 {
		t.Fatalf("no datasources provisioned in %s", datasourcesDir)
	}
	dashboards, _ := filepath.Glob(filepath.Join(dashboardsDir, "*.json"))
	if len(dashboards) == 0 {
		t.Fatalf("no dashboards in %s", dashboardsDir)
	}
	for _, f := range dashboards {
		raw, _ := os.ReadFile(f)
		if bytes.Contains(raw, []byte("${DS_")) {
			t.Errorf("%s: has an import-time datasource input (${DS_...}); name the provisioned uid", f)
		}
		var doc struct {
			Panels []map[string]any `json:"panels"`
		}
		readJSON(t, f, &doc)
		var all any
		readJSON(t, f, &all)
		refs := 0
		walkJSON(all, filepath.Base(f), func(path, key string, v any) {
			if key != "datasource" {
				return
			}
			refs++
			ds, ok := v.(map[string]any)
			uid, _ := ds["uid"].(string)
			typ, _ := ds["type"].(string)
			if !ok || uids[uid] == "" || uids[uid] != typ {
				t.Errorf("%s: datasource %v is not a provisioned one (uid→type %v)", path, v, uids)
			}
		})
		// Every query-bearing panel and target names its datasource.
		for _, p := range doc.Panels {
			title, _ := p["title"].(string)
			if p["type"] == "row" {
				continue
			}
			if _, ok := p["datasource"]; !ok {
				t.Errorf("%s: panel %q has no datasource", f, title)
			}
			targets, _ := p["targets"].([]any)
			if len(targets) == 0 {
				t.Errorf("%s: panel %q has no queries", f, title)
			}
			for _, tg := range targets {
				if m, _ := tg.(map[string]any); m["datasource"] == nil {
					t.Errorf("%s: panel %q: a target has no datasource", f, title)
				}
			}
		}
		if refs == 0 {
			t.Errorf("%s: no datasource references", f)
		}
	}
}

// TestEveryAlertHasRuleTests checks that every alert has a promtool case
// where it fires and one where it does not.
func TestEveryAlertHasRuleTests(t *testing.T) {
	firing, quiet := map[string]bool{}, map[string]bool{}
	files, _ := filepath.Glob(ruleTestsGlob)
	for _, f := range files {
		var tf struct {
			Tests []struct {
				AlertRuleTest []struct {
					Alertname string `yaml:"alertname"`
					ExpAlerts []any  `yaml:"exp_alerts"`
				} `yaml:"alert_rule_test"`
			} `yaml:"tests"`
		}
		readYAML(t, f, &tf)
		for _, tc := range tf.Tests {
			for _, a := range tc.AlertRuleTest {
				if len(a.ExpAlerts) > 0 {
					firing[a.Alertname] = true
				} else {
					quiet[a.Alertname] = true
				}
			}
		}
	}
	alerts := 0
	for _, r := range allRules(t) {
		if r.Alert == "" {
			continue
		}
		alerts++
		if !firing[r.Alert] {
			t.Errorf("alert %s: no promtool case in %s where it fires", r.Alert, ruleTestsGlob)
		}
		if !quiet[r.Alert] {
			t.Errorf("alert %s: no promtool case in %s where it stays quiet", r.Alert, ruleTestsGlob)
		}
	}
	if alerts == 0 {
		t.Fatalf("no alerts in %s", rulesGlob)
	}
}

// TestQueriesAgainstLiveServer runs every PromQL expression of the
// dashboards, the alert rules and the README through a real Prometheus
// scraping a real server that has served a champion, a challenger, client
// errors and a failed promotion.
func TestQueriesAgainstLiveServer(t *testing.T) {
	queries := allQueries(t)
	promBin, err := exec.LookPath("prometheus")
	if err != nil {
		t.Fatal("prometheus is not installed: run make monitoring-test-deps")
	}

	const adminToken = "monitoring-test-admin-token"
	srv := servetest.Start(t, servetest.Options{Env: []string{
		"MLFLOW_TRACKING_URI=", // local mode: the shipped champion (3), versions 1, 2, 4 available
		"SERVE_ARTIFACTS_DIR=" + artifactsWithBrokenVersion(t),
		"SERVE_ADMIN_TOKEN=" + adminToken,
		"SERVE_POLL_INTERVAL=1s",
	}})
	prom := startPrometheus(t, promBin, srv.Addr)

	client := &http.Client{Timeout: 5 * time.Second}
	driveTraffic(t, client, srv.URL, "champion-only", 30)
	driveClientErrors(t, client, srv.URL)
	putChallengerLive(t, client, srv.URL, adminToken)
	variants := driveTraffic(t, client, srv.URL, "split", 60)
	if variants["challenger"] == 0 || variants["champion"] == 0 {
		t.Fatalf("after a 50/50 split, decisions by variant = %v; want both", variants)
	}
	putShadowLive(t, client, srv.URL, adminToken)
	driveTraffic(t, client, srv.URL, "shadowed", 30)
	failPromotion(t, client, srv.URL, adminToken)
	driveTraffic(t, client, srv.URL, "after-failure", 20)
	postOutcomes(t, client, srv.URL, adminToken, []string{"champion-only", "split", "shadowed"}, 30)

	// Scrapes land every second; give every expression a shared bound.
	type outcome struct {
		ok  bool
		msg string
	}
	results := make([]outcome, len(queries))
	deadline := time.Now().Add(25 * time.Second)
	for {
		pending := 0
		for i, q := range queries {
			if results[i].ok {
				continue
			}
			n, err := prom.query(q.promQL())
			switch {
			case err != nil:
				results[i].msg = err.Error()
			case n == 0 && !q.condition:
				results[i].msg = "empty result"
			default:
				results[i] = outcome{ok: true}
			}
			if !results[i].ok {
				pending++
			}
		}
		if pending == 0 || time.Now().After(deadline) {
			break
		}
		time.Sleep(time.Second)
	}
	for i, q := range queries {
		t.Run(q.source, func(t *testing.T) {
			if !results[i].ok {
				t.Errorf("%s\n%s\nquery: %s", q.source, results[i].msg, q.promQL())
			}
		})
	}
	if t.Failed() {
		t.Logf("server log (tail):\n%s", tail(srv.Log.String(), 3000))
	}
}

// prometheus is a running Prometheus process.
type prometheus struct {
	url    string
	client *http.Client
}

// startPrometheus runs prom on a free loopback port with fresh storage,
// scraping target every second, and stops its process group at the end.
func startPrometheus(t *testing.T, bin, target string) *prometheus {
	t.Helper()
	dir := t.TempDir()
	cfg := fmt.Sprintf(`global:
  scrape_interval: 1s
  evaluation_interval: 1s
scrape_configs:
  - job_name: mlservice
    static_configs:
      - targets: [%q]
`, target)
	cfgPath := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	addr := servetest.FreeAddr(t)
	var log servetest.SafeBuffer
	cmd := exec.Command(bin,
		"--config.file="+cfgPath,
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+addr,
		"--log.level=warn",
	)
	cmd.Stdout, cmd.Stderr = &log, &log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	})
	p := &prometheus{url: "http://" + addr, client: &http.Client{Timeout: 5 * time.Second}}
	deadline := time.Now().Add(15 * time.Second)
	for {
		select {
		case <-done:
			t.Fatalf("prometheus exited at start:\n%s", log.String())
		default:
		}
		if resp, err := p.client.Get(p.url + "/-/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus not ready after 15s:\n%s", log.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// query runs an instant query and returns the number of result elements; an
// error means Prometheus refused the expression (e.g. a parse error).
func (p *prometheus) query(expr string) (int, error) {
	resp, err := p.client.PostForm(p.url+"/api/v1/query", url.Values{"query": {expr}})
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var body struct {
		Status    string `json:"status"`
		ErrorType string `json:"errorType"`
		Error     string `json:"error"`
		Data      struct {
			ResultType string          `json:"resultType"`
			Result     json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		return 0, fmt.Errorf("HTTP %d: %v", resp.StatusCode, err)
	}
	if body.Status != "success" {
		return 0, fmt.Errorf("prometheus: %s: %s", body.ErrorType, body.Error)
	}
	switch body.Data.ResultType {
	case "vector", "matrix":
		var r []json.RawMessage
		if err := json.Unmarshal(body.Data.Result, &r); err != nil {
			return 0, err
		}
		return len(r), nil
	default: // scalar, string
		return 1, nil
	}
}

// driveTraffic sends n decisions with distinct application ids (so that a
// split sends some to each variant) and spread-out applicants (so that both
// decisions occur), and counts them by the variant that answered.
func driveTraffic(t *testing.T, c *http.Client, base, phase string, n int) map[string]int {
	t.Helper()
	variants := map[string]int{}
	for i := range n {
		app := map[string]any{
			"application_id": fmt.Sprintf("%s-%d", phase, i),
			"income":         20000 + 7000*(i%12),
			"credit_score":   420 + 37*(i%11),
			"loan_amount":    5000 + 3500*(i%9),
			"years_employed": i % 15,
			"points":         30 + 7*(i%10),
		}
		status, body := call(t, c, http.MethodPost, base+"/v1/predict", "application/json", "", app)
		if status != http.StatusOK {
			t.Fatalf("POST /v1/predict = %d: %s", status, body)
		}
		var d struct {
			Model struct{ Variant string } `json:"model"`
		}
		_ = json.Unmarshal(body, &d)
		variants[d.Model.Variant]++
	}
	batch := map[string]any{"applications": []map[string]any{
		{"income": 60000, "credit_score": 720, "loan_amount": 15000, "years_employed": 6, "points": 70},
		{"income": 15000, "credit_score": 450, "loan_amount": 40000, "years_employed": 0, "points": 20},
	}}
	if status, body := call(t, c, http.MethodPost, base+"/v1/predict/batch", "application/json", "", batch); status != http.StatusOK {
		t.Logf("POST /v1/predict/batch = %d: %s (not required)", status, body)
	}
	for _, path := range []string{"/health", "/ready", "/openapi.json"} {
		if status, body := call(t, c, http.MethodGet, base+path, "", "", nil); status != http.StatusOK {
			t.Fatalf("GET %s = %d: %s", path, status, body)
		}
	}
	return variants
}

// driveClientErrors sends the client errors the dashboard's status panels
// and the 4xx ratio count.
func driveClientErrors(t *testing.T, c *http.Client, base string) {
	t.Helper()
	cases := []struct {
		method, path, ctype string
		body                any
		want                int
	}{
		{http.MethodPost, "/v1/predict", "application/json", map[string]any{"income": -1, "credit_score": 700, "loan_amount": 1000, "years_employed": 1, "points": 10}, 422},
		{http.MethodPost, "/v1/predict", "application/json", "{not json", 400},
		{http.MethodPost, "/v1/predict", "text/plain", "income=1", 415},
		{http.MethodGet, "/v1/no-such-route", "", nil, 404},
	}
	for _, tc := range cases {
		for range 3 {
			if status, body := call(t, c, tc.method, base+tc.path, tc.ctype, "", tc.body); status != tc.want {
				t.Fatalf("%s %s = %d, want %d: %s", tc.method, tc.path, status, tc.want, body)
			}
		}
	}
}

// The admin API (POST /admin/promote, PUT /admin/traffic) is the only way to
// put a challenger or a shadow live in local mode; everything about it is in
// the functions below.

// putChallengerLive promotes version 1 to challenger beside the champion
// (version 2) and splits traffic 50/50.
func putChallengerLive(t *testing.T, c *http.Client, base, token string) {
	t.Helper()
	status, body := call(t, c, http.MethodPost, base+"/admin/promote", "application/json", token,
		map[string]any{"alias": "challenger", "version": "1"})
	if status == http.StatusNotFound || status == http.StatusMethodNotAllowed {
		t.Fatalf("POST /admin/promote = %d: the admin API is not there (needed to put a challenger live): %s", status, body)
	}
	if status/100 != 2 {
		t.Fatalf("POST /admin/promote challenger=1 = %d: %s", status, body)
	}
	status, body = call(t, c, http.MethodPut, base+"/admin/traffic", "application/json", token,
		map[string]any{"champion": 50, "challenger": 50})
	if status/100 != 2 {
		t.Fatalf("PUT /admin/traffic 50/50 = %d: %s", status, body)
	}
	if status, body := call(t, c, http.MethodGet, base+"/admin/models", "", token, nil); status != http.StatusOK {
		t.Fatalf("GET /admin/models = %d: %s", status, body)
	}
}

// putShadowLive mirrors requests to version 1 as the shadow.
func putShadowLive(t *testing.T, c *http.Client, base, token string) {
	t.Helper()
	promote(t, c, base, token, "shadow", "1")
}

// promote puts version live as alias (champion, challenger, shadow) and
// fails the test unless the server accepts it.
func promote(t *testing.T, c *http.Client, base, token, alias, version string) {
	t.Helper()
	status, body := call(t, c, http.MethodPost, base+"/admin/promote", "application/json", token,
		map[string]any{"alias": alias, "version": version})
	if status/100 != 2 {
		t.Fatalf("POST /admin/promote %s=%s = %d: %s", alias, version, status, body)
	}
}

// failPromotion promotes version 3, which fails its serving check, so that
// the load-failure and failed-swap series exist; the live versions stay.
func failPromotion(t *testing.T, c *http.Client, base, token string) {
	t.Helper()
	status, body := call(t, c, http.MethodPost, base+"/admin/promote", "application/json", token,
		map[string]any{"alias": "challenger", "version": brokenVersion})
	if status/100 == 2 {
		t.Fatalf("POST /admin/promote challenger=%s (fails its serving check) = %d, want an error: %s", brokenVersion, status, body)
	}
	if status, body := call(t, c, http.MethodGet, base+"/ready", "", "", nil); status != http.StatusOK {
		t.Fatalf("after a failed promotion, GET /ready = %d: %s", status, body)
	}
}

// brokenVersion is the version artifactsWithBrokenVersion adds.
const brokenVersion = "9" // beside the shipped 1-4

// artifactsWithBrokenVersion returns a copy of the embedded artifacts/ tree
// (champion = version 3, versions 1, 2 and 4) with one more version of
// loan-approval: version 1's files with a serving_check.json whose expected
// probabilities are off, so that loading it fails at the serving-check step.
// The admin API refuses versions the registry does not have before loading
// anything, so only a version that exists and is bad produces a load failure.
func artifactsWithBrokenVersion(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	model := filepath.Join(dir, "loan-approval")
	if err := os.CopyFS(model, os.DirFS(filepath.Join(servetest.ModuleRoot(), "artifacts", "loan-approval"))); err != nil {
		t.Fatal(err)
	}
	broken := filepath.Join(model, "versions", brokenVersion)
	if err := os.CopyFS(broken, os.DirFS(filepath.Join(model, "versions", "1"))); err != nil {
		t.Fatal(err)
	}
	var check map[string]any
	readJSON(t, filepath.Join(broken, "serving_check.json"), &check)
	cases, _ := check["cases"].([]any)
	if len(cases) == 0 {
		t.Fatal("serving_check.json of version 1 has no cases")
	}
	for _, c := range cases {
		m := c.(map[string]any)
		p, _ := m["probability"].(float64)
		if p < 0.5 {
			m["probability"] = p + 0.3
		} else {
			m["probability"] = p - 0.3
		}
	}
	writeJSON(t, filepath.Join(broken, "serving_check.json"), check)

	var reg map[string]any
	readJSON(t, filepath.Join(model, "registry.json"), &reg)
	versions, _ := reg["versions"].([]any)
	reg["versions"] = append(versions, map[string]any{
		"version":     brokenVersion,
		"description": "monitoring test: version 1 with a serving check it cannot pass",
	})
	writeJSON(t, filepath.Join(model, "registry.json"), reg)
	withTrainingDistributions(t, filepath.Join(model, "versions"))
	return dir
}

// withTrainingDistributions gives every version that has none a training
// distribution, so the drift metrics exist for every live version.
func withTrainingDistributions(t *testing.T, versions string) {
	t.Helper()
	dirs, err := os.ReadDir(versions)
	if err != nil {
		t.Fatal(err)
	}
	deciles := func(lo, hi float64) map[string]any {
		var edges, shares []float64
		for i := 1; i < 10; i++ {
			edges = append(edges, lo+(hi-lo)*float64(i)/10)
		}
		for range 10 {
			shares = append(shares, 0.1)
		}
		return map[string]any{"edges": edges, "shares": shares}
	}
	for _, d := range dirs {
		path := filepath.Join(versions, d.Name(), "training_distribution.json")
		if _, err := os.Stat(path); err == nil {
			continue
		}
		writeJSON(t, path, map[string]any{"format_version": 1,
			"features": map[string]any{
				"income": deciles(30000, 150000), "credit_score": deciles(300, 850),
				"loan_amount": deciles(1000, 50000), "years_employed": deciles(0, 40)},
			"score": deciles(0, 1)})
	}
}

// postOutcomes sends the bank's verdict on the first n applications of each
// traffic phase, in one batch, as the legacy batch job does each night.
func postOutcomes(t *testing.T, c *http.Client, base, token string, phases []string, n int) {
	t.Helper()
	var items []map[string]any
	for _, phase := range phases {
		for i := range n {
			items = append(items, map[string]any{"application_id": fmt.Sprintf("%s-%d", phase, i), "approved": i%3 != 0})
		}
	}
	status, body := call(t, c, http.MethodPost, base+"/v1/outcomes", "application/json", token, map[string]any{"outcomes": items})
	if status != http.StatusOK || !strings.Contains(string(body), fmt.Sprintf(`"recorded":%d`, len(items))) {
		t.Fatalf("POST /v1/outcomes = %d: %s", status, body)
	}
}

func writeJSON(t *testing.T, path string, v any) {
	t.Helper()
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// call sends one request; body is JSON-encoded unless it is a string.
func call(t *testing.T, c *http.Client, method, url, ctype, token string, body any) (int, []byte) {
	t.Helper()
	var r io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		r = strings.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			t.Fatal(err)
		}
		r = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	out, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, out
}

func tail(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "..." + s[len(s)-n:]
}

// TestReadmeNamesEveryAlertAndPanel keeps README's Alerts and dashboard
// tables equal to the rules and the dashboards, both ways: an operator paged
// by an alert, or looking at a panel, finds it explained.
func TestReadmeNamesEveryAlertAndPanel(t *testing.T) {
	raw, err := os.ReadFile(readmePath)
	if err != nil {
		t.Fatal(err)
	}
	readme := string(raw)

	alerts := map[string]bool{}
	for _, r := range allRules(t) {
		if r.Alert != "" {
			alerts[r.Alert] = true
		}
	}
	panels := map[string]bool{}
	dashboards, _ := filepath.Glob(filepath.Join(dashboardsDir, "*.json"))
	for _, f := range dashboards {
		var doc struct {
			Panels []struct{ Title, Type string } `json:"panels"`
		}
		readJSON(t, f, &doc)
		for _, p := range doc.Panels {
			if p.Type != "row" {
				panels[p.Title] = true
			}
		}
	}
	if len(alerts) == 0 || len(panels) == 0 {
		t.Fatalf("%d alerts in %s, %d panels in %s", len(alerts), rulesGlob, len(panels), dashboardsDir)
	}
	compareRows(t, "## Alerts", tableFirstCells(readme, "## Alerts"), alerts)
	compareRows(t, "## The dashboard", tableFirstCells(readme, "## The dashboard"), panels)
}

// tableFirstCells returns the first cell of every table row in the README
// section that starts with heading, headers and rules left out.
func tableFirstCells(readme, heading string) map[string]bool {
	cells := map[string]bool{}
	section, _ := readmeSection(readme, heading)
	for _, line := range strings.Split(section, "\n") {
		if !strings.HasPrefix(line, "| ") {
			continue
		}
		first := strings.TrimSpace(strings.Split(line, "|")[1])
		if first == "alert" || first == "panel" || strings.HasPrefix(first, "---") {
			continue
		}
		cells[first] = true
	}
	return cells
}

func compareRows(t *testing.T, section string, documented, actual map[string]bool) {
	t.Helper()
	for name := range actual {
		if !documented[name] {
			t.Errorf("README %s: no row for %q", section, name)
		}
	}
	for name := range documented {
		if !actual[name] {
			t.Errorf("README %s: row %q names nothing the monitoring files have", section, name)
		}
	}
}
