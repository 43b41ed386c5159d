package admin_test

import (
	"bufio"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
)

// TestOutcomesCompareChampionAndChallenger drives issue 16's loop against the
// real binary: decisions split 50/50, the bank's outcomes posted in one
// batch, then GET /admin/models compares the arms on those outcomes and
// /metrics counts each version's agreement once per application.
func TestOutcomesCompareChampionAndChallenger(t *testing.T) {
	s, c := start(t, "SERVE_ALLOW_VERSIONS_WITHOUT_REASONS=true")
	champion := c.mustAdmin("GET", "/admin/models", "")["live"].([]any)[0].(map[string]any)["version"].(string)
	c.mustAdmin("POST", "/admin/promote", `{"alias":"challenger","version":"1"}`)
	c.mustAdmin("PUT", "/admin/traffic", `{"champion":50,"challenger":50}`)

	type decided struct {
		variant string
		approve bool
	}
	byID := map[string]decided{}
	var items []string
	want := map[string][2]int{} // variant → {outcomes, agreeing}
	for i := range 200 {
		id := fmt.Sprintf("O-%d", i)
		status, out, _ := c.call("POST", "/v1/predict", "", fmt.Sprintf(
			`{"application_id":%q,"income":%d,"credit_score":%d,"loan_amount":20000,"years_employed":5,"points":60}`,
			id, 30000+500*i, 500+i))
		if status != 200 {
			t.Fatalf("predict: %d %v", status, out)
		}
		d := decided{out["model"].(map[string]any)["variant"].(string), out["approve"].(bool)}
		byID[id] = d
		// The bank agrees with every champion decision and with every
		// other challenger decision.
		approved := d.approve
		if d.variant == "challenger" && i%2 == 0 {
			approved = !d.approve
		}
		w := want[d.variant]
		w[0]++
		if approved == d.approve {
			w[1]++
		}
		want[d.variant] = w
		items = append(items, fmt.Sprintf(`{"application_id":%q,"approved":%t}`, id, approved))
	}
	if want["champion"][0] < 60 || want["challenger"][0] < 60 {
		t.Fatalf("split 50/50 gave %v", want)
	}
	status, out, _ := c.call("POST", "/v1/outcomes", "Bearer "+token, `{"outcomes":[`+strings.Join(items, ",")+`]}`)
	if status != 200 || out["recorded"] != float64(200) {
		t.Fatalf("POST /v1/outcomes: %d %v", status, out)
	}

	cmp := c.mustAdmin("GET", "/admin/models", "")["outcomes"].(map[string]any)
	versions := cmp["versions"].([]any)
	for _, v := range versions {
		v := v.(map[string]any)
		w := want[v["variant"].(string)]
		if v["outcomes"] != float64(w[0]) || v["agreeing"] != float64(w[1]) {
			t.Errorf("%s v%s: %v outcomes, %v agreeing; want %d, %d", v["variant"], v["version"], v["outcomes"], v["agreeing"], w[0], w[1])
		}
	}
	vs := cmp["versus_champion"].([]any)[0].(map[string]any)
	if vs["variant"] != "challenger" || vs["significant"] != true ||
		vs["verdict"] != "agrees with the bank significantly less often than the champion" {
		t.Errorf("challenger vs champion: %v", vs)
	}

	// Counted once per application, per version, at the first outcome.
	if got := outcomeCount(t, s.URL, champion, "champion", "true"); got != want["champion"][1] {
		t.Errorf("model_outcomes_total champion agree=true: %d, want %d", got, want["champion"][1])
	}
	if got := outcomeCount(t, s.URL, "1", "challenger", "false"); got != want["challenger"][0]-want["challenger"][1] {
		t.Errorf("model_outcomes_total challenger agree=false: %d, want %d", got, want["challenger"][0]-want["challenger"][1])
	}
	// A repeated outcome: the latest wins in the comparison, the count stays.
	var first string
	for id, d := range byID {
		if d.variant == "champion" {
			first = id
			break
		}
	}
	if status, out, _ := c.call("POST", "/v1/outcomes", "Bearer "+token,
		fmt.Sprintf(`{"application_id":%q,"approved":%t}`, first, !byID[first].approve)); status != 200 {
		t.Fatalf("repeated outcome: %d %v", status, out)
	}
	if got := outcomeCount(t, s.URL, champion, "champion", "true"); got != want["champion"][1] {
		t.Errorf("after a repeated outcome model_outcomes_total moved to %d, want %d", got, want["champion"][1])
	}
	v := c.mustAdmin("GET", "/admin/models", "")["outcomes"].(map[string]any)["versions"].([]any)[0].(map[string]any)
	if v["agreeing"] != float64(want["champion"][1]-1) {
		t.Errorf("after the bank changed its verdict the champion agrees on %v, want %d (latest wins)", v["agreeing"], want["champion"][1]-1)
	}

	if status, out, _ := c.call("POST", "/v1/outcomes", "Bearer "+token, `{"application_id":"never-decided","approved":true}`); status != 404 {
		t.Errorf("outcome for an unknown application: %d %v, want 404", status, out)
	}
	if status, _, _ := c.call("POST", "/v1/outcomes", "", `{"application_id":"O-1","approved":true}`); status != 401 {
		t.Errorf("outcome without a token: %d, want 401", status)
	}
}

// outcomeCount reads model_outcomes_total for one version, variant and agree.
func outcomeCount(t *testing.T, base, version, variant, agree string) int {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	total := 0
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "model_outcomes_total{") ||
			!strings.Contains(line, `version="`+version+`"`) || !strings.Contains(line, `variant="`+variant+`"`) ||
			!strings.Contains(line, `agree="`+agree+`"`) {
			continue
		}
		n, err := strconv.ParseFloat(line[strings.LastIndexByte(line, ' ')+1:], 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", line, err)
		}
		total += int(n)
	}
	return total
}
