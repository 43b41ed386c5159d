package admin_test

import (
	"bytes"
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

	"mlservice/internal/servetest"
	"mlservice/serve/models"
)

// These tests drive the real server binary in local mode (the shipped
// artifacts: champion version shippedChampion, versions 1 and 2 also available).

const token = "test-admin-token-0123456789"

// shippedChampion is the champion alias of artifacts/loan-approval/registry.json
// (the scorecard since issue 14).
const shippedChampion = "3"

type client struct {
	t   *testing.T
	url string
}

func (c client) call(method, path, auth, body string) (int, map[string]any, http.Header) {
	c.t.Helper()
	req, err := http.NewRequest(method, c.url+path, strings.NewReader(body))
	if err != nil {
		c.t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		c.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	_ = json.Unmarshal(raw, &out)
	return resp.StatusCode, out, resp.Header
}

func (c client) admin(method, path, body string) (int, map[string]any) {
	c.t.Helper()
	status, out, _ := c.call(method, path, "Bearer "+token, body)
	return status, out
}

func (c client) mustAdmin(method, path, body string) map[string]any {
	c.t.Helper()
	status, out := c.admin(method, path, body)
	if status != 200 {
		c.t.Fatalf("%s %s %s: %d %v", method, path, body, status, out)
	}
	return out
}

// decide returns the variant and version that decided one application.
func (c client) decide(id string) (variant, version string) {
	c.t.Helper()
	status, out, _ := c.call("POST", "/v1/predict", "", fmt.Sprintf(
		`{"application_id":%q,"income":50000,"credit_score":700,"loan_amount":20000,"years_employed":5,"points":60}`, id))
	if status != 200 {
		c.t.Fatalf("predict: %d %v", status, out)
	}
	m := out["model"].(map[string]any)
	return m["variant"].(string), m["version"].(string)
}

func start(t *testing.T, env ...string) (*servetest.Server, client) {
	s := servetest.Start(t, servetest.Options{Env: append([]string{"SERVE_ADMIN_TOKEN=" + token}, env...)})
	return s, client{t: t, url: s.URL}
}

func TestAuthMatrix(t *testing.T) {
	_, c := start(t)
	tests := []struct {
		name, auth string
		status     int
	}{
		{"no header", "", 401},
		{"wrong token", "Bearer not-the-token-at-all", 401},
		{"token prefix", "Bearer " + token[:10], 401},
		{"basic scheme", "Basic " + token, 401},
		{"empty bearer", "Bearer ", 401},
		{"right token", "Bearer " + token, 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			status, body, h := c.call("GET", "/admin/models", tc.auth, "")
			if status != tc.status {
				t.Fatalf("status %d, want %d: %v", status, tc.status, body)
			}
			if status == 401 && !strings.HasPrefix(h.Get("WWW-Authenticate"), "Bearer") {
				t.Fatalf("401 without WWW-Authenticate: %v", h)
			}
		})
	}
	for _, route := range [][2]string{{"POST", "/admin/promote"}, {"PUT", "/admin/traffic"}, {"POST", "/admin/rollback"}, {"POST", "/admin/retire"}} {
		if status, _, _ := c.call(route[0], route[1], "", `{}`); status != 401 {
			t.Fatalf("%s %s without a token: %d", route[0], route[1], status)
		}
	}
}

func TestAdminDisabledWithoutToken(t *testing.T) {
	s := servetest.Start(t, servetest.Options{})
	c := client{t: t, url: s.URL}
	for _, auth := range []string{"", "Bearer anything-at-all-here"} {
		status, body, _ := c.call("GET", "/admin/models", auth, "")
		if status != 403 || body["error"].(map[string]any)["code"] != "admin_disabled" {
			t.Fatalf("with no token configured: %d %v", status, body)
		}
	}
}

func TestPromoteRollbackAndAudit(t *testing.T) {
	s, c := start(t)
	if _, v := c.decide("A-1"); v != shippedChampion {
		t.Fatalf("champion before promote: %s", v)
	}
	out := c.mustAdmin("POST", "/admin/promote", `{"version":"1"}`)
	if out["before"].(map[string]any)["champion"] != shippedChampion || out["after"].(map[string]any)["champion"] != "1" {
		t.Fatalf("promote answer: %v", out)
	}
	for i := range 20 {
		if variant, v := c.decide(fmt.Sprint("A-", i)); v != "1" || variant != "champion" {
			t.Fatalf("after promote: %s %s", variant, v)
		}
	}
	c.mustAdmin("POST", "/admin/rollback", "")
	for i := range 20 {
		if _, v := c.decide(fmt.Sprint("B-", i)); v != shippedChampion {
			t.Fatalf("after rollback: version %s", v)
		}
	}
	if status, body := c.admin("POST", "/admin/rollback", ""); status != 409 {
		t.Fatalf("rollback with no history: %d %v", status, body)
	}
	// One audit line per action, with the fields ops need. The log reaches
	// us through a pipe, so give it a moment.
	var audits []map[string]any
	for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		audits = audits[:0]
		for _, line := range strings.Split(s.Log.String(), "\n") {
			var rec map[string]any
			if json.Unmarshal([]byte(line), &rec) == nil && rec["audit"] == true {
				audits = append(audits, rec)
			}
		}
		if len(audits) >= 3 || time.Now().After(deadline) {
			break
		}
	}
	if len(audits) != 3 {
		t.Fatalf("%d audit lines for 3 actions:\n%s", len(audits), s.Log.String())
	}
	for _, a := range audits {
		for _, field := range []string{"time", "remote", "action", "result"} {
			if a[field] == nil || a[field] == "" {
				t.Fatalf("audit line lacks %s: %v", field, a)
			}
		}
	}
	if audits[0]["before"] == nil || audits[0]["after"] == nil || audits[2]["result"] != "failure" {
		t.Fatalf("audit lines: %v", audits)
	}
	metrics := get(t, s.URL+"/metrics")
	for _, want := range []string{`admin_actions_total{action="promote",result="success"} 1`,
		`admin_actions_total{action="rollback",result="success"} 1`, `admin_actions_total{action="rollback",result="failure"} 1`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}

func TestInvalidActionsAre422(t *testing.T) {
	_, c := start(t)
	tests := []struct{ method, path, body, mention string }{
		{"POST", "/admin/promote", `{"version":"99"}`, `no version "99"`},
		{"POST", "/admin/promote", `{"alias":"favourite","version":"1"}`, "alias"},
		{"POST", "/admin/promote", `{"alias":"champion"}`, "version is required"},
		{"POST", "/admin/promote", `{"version":"1","force":true}`, "force"},
		{"PUT", "/admin/traffic", `{"champion":90,"challenger":20}`, "sum to 100"},
		{"PUT", "/admin/traffic", `{"champion":110,"challenger":-10}`, "0-100"},
		{"PUT", "/admin/traffic", `{"champion":90,"challenger":10}`, "no challenger"},
		{"PUT", "/admin/traffic", `{"champion":"90"}`, "champion"},
	}
	for _, tc := range tests {
		status, body := c.admin(tc.method, tc.path, tc.body)
		msg, _ := body["error"].(map[string]any)["message"].(string)
		if status != 422 || !strings.Contains(msg, tc.mention) {
			t.Errorf("%s %s: %d %q, want 422 mentioning %q", tc.path, tc.body, status, msg, tc.mention)
		}
	}
	if status, _ := c.admin("POST", "/admin/promote", `{"version":`); status != 400 {
		t.Errorf("malformed admin JSON: %d", status)
	}
	if _, v := c.decide("A-1"); v != shippedChampion {
		t.Fatalf("a rejected action changed the champion to %s", v)
	}
}

// TestVersionFailingVerificationIs409 ships a version 1 whose serving check
// disagrees with its model: promoting it must answer 409 and change nothing.
func TestVersionFailingVerificationIs409(t *testing.T) {
	dir := t.TempDir()
	if err := os.CopyFS(dir, os.DirFS(filepath.Join(servetest.ModuleRoot(), "artifacts"))); err != nil {
		t.Fatal(err)
	}
	checkPath := filepath.Join(dir, "loan-approval", "versions", "1", models.ServingCheckFile)
	var check models.ServingCheck
	if err := json.Unmarshal(read(t, checkPath), &check); err != nil {
		t.Fatal(err)
	}
	check.Cases[3].Probability = math.Mod(check.Cases[3].Probability+0.5, 1)
	raw, _ := json.Marshal(check)
	if err := os.WriteFile(checkPath, raw, 0o644); err != nil {
		t.Fatal(err)
	}
	s, c := start(t, "SERVE_ARTIFACTS_DIR="+dir)
	status, body := c.admin("POST", "/admin/promote", `{"version":"1"}`)
	msg, _ := body["error"].(map[string]any)["message"].(string)
	if status != 409 || !strings.Contains(msg, "serving_check") {
		t.Fatalf("promote of a failing version: %d %v", status, body)
	}
	if _, v := c.decide("A-1"); v != shippedChampion {
		t.Fatalf("champion changed to %s", v)
	}
	if !strings.Contains(get(t, s.URL+"/metrics"), `model_load_failures_total{model="loan-approval",reason="serving_check"} 1`) {
		t.Fatal("load failure not counted")
	}
}

// TestChallengerSplitAndStickiness sends 10,000 distinct ids at 90/10 and
// checks the challenger's share, then checks that a second server process
// sends each id to the same variant.
func TestChallengerSplitAndStickiness(t *testing.T) {
	_, c := start(t)
	c.mustAdmin("POST", "/admin/promote", `{"alias":"challenger","version":"1"}`)
	c.mustAdmin("PUT", "/admin/traffic", `{"champion":90,"challenger":10}`)

	var b strings.Builder
	b.WriteString(`{"applications":[`)
	for i := range 10000 {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"application_id":"LOAN-%06d","income":50000,"credit_score":700,"loan_amount":20000,"years_employed":5,"points":60}`, i)
	}
	b.WriteString("]}")
	variants := func(c client) []string {
		resp, err := http.Post(c.url+"/v1/predict/batch", "application/json", strings.NewReader(b.String()))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out struct {
			Results []struct {
				Model struct{ Variant, Version string }
			}
		}
		if err := json.NewDecoder(resp.Body).Decode(&out); err != nil || len(out.Results) != 10000 {
			t.Fatalf("batch: %v, %d results", err, len(out.Results))
		}
		vs := make([]string, len(out.Results))
		for i, r := range out.Results {
			vs[i] = r.Model.Variant + "/" + r.Model.Version
		}
		return vs
	}
	first := variants(c)
	challengers := 0
	for _, v := range first {
		if v == "challenger/1" {
			challengers++
		}
	}
	share := float64(challengers) / 100
	t.Logf("challenger share at 90/10: %.2f%%", share)
	if share < 8 || share > 12 {
		t.Fatalf("challenger share %.2f%%, want 10 ± 2", share)
	}

	// A second process, configured the same way, assigns every id the same.
	_, c2 := start(t)
	c2.mustAdmin("POST", "/admin/promote", `{"alias":"challenger","version":"1"}`)
	c2.mustAdmin("PUT", "/admin/traffic", `{"champion":90,"challenger":10}`)
	second := variants(c2)
	for i := range first {
		if first[i] != second[i] {
			t.Fatalf("LOAN-%06d: %s on one replica, %s on the other", i, first[i], second[i])
		}
	}
	// Retiring the challenger sends everyone back to the champion.
	c2.mustAdmin("POST", "/admin/retire", `{"alias":"challenger"}`)
	for i := range 20 {
		if variant, _ := c2.decide(fmt.Sprintf("LOAN-%06d", i)); variant != "champion" {
			t.Fatalf("after retiring the challenger: %s", variant)
		}
	}
	if status, _ := c2.admin("POST", "/admin/retire", `{"alias":"champion"}`); status != 422 {
		t.Fatalf("retiring the champion: %d", status)
	}
	if status, _ := c2.admin("POST", "/admin/retire", `{"alias":"challenger"}`); status != 422 {
		t.Fatalf("retiring an unset alias: %d", status)
	}
	// And one by one on the first replica, the same as in the batch.
	for i := range 50 {
		variant, version := c.decide(fmt.Sprintf("LOAN-%06d", i))
		if variant+"/"+version != first[i] {
			t.Fatalf("LOAN-%06d alone: %s/%s, in the batch: %s", i, variant, version, first[i])
		}
	}
}

// TestLocalStateSurvivesRestart promotes, restarts with the same cache
// directory and expects the promoted champion and split back.
func TestLocalStateSurvivesRestart(t *testing.T) {
	cache := t.TempDir()
	s, c := start(t, "SERVE_CACHE_DIR="+cache)
	c.mustAdmin("POST", "/admin/promote", `{"version":"1"}`)
	c.mustAdmin("POST", "/admin/promote", `{"alias":"challenger","version":"2"}`)
	c.mustAdmin("PUT", "/admin/traffic", `{"champion":70,"challenger":30}`)
	s.Stop(t)
	_, c = start(t, "SERVE_CACHE_DIR="+cache)
	out := c.mustAdmin("GET", "/admin/models", "")
	d := out["desired"].(map[string]any)
	if d["champion"] != "1" || d["challenger"] != "2" || d["weights"].(map[string]any)["challenger"].(float64) != 30 {
		t.Fatalf("after restart: %v", d)
	}
	c.mustAdmin("POST", "/admin/rollback", "")
	if _, v := c.decide("A-1"); v != shippedChampion && v != "2" {
		t.Fatalf("rollback after restart: %s", v)
	}
	if d := c.mustAdmin("GET", "/admin/models", "")["desired"].(map[string]any); d["champion"] != shippedChampion {
		t.Fatalf("rollback after restart did not restore the shipped champion: %v", d)
	}
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return b.String()
}

func read(t *testing.T, path string) []byte {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}
