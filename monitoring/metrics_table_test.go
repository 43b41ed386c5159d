package monitoring

import (
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"mlservice/internal/servetest"
)

// standardPrefixes are the families of client_golang's Go runtime and
// process collectors. The README names them in a sentence, not in rows: they
// change with the Go version, not with the server.
var standardPrefixes = []string{"go_", "process_"}

// metricsTableHeader is the header of every table in the README's Metrics
// section; a table with other columns would be misread, so it is refused.
const metricsTableHeader = "| metric | type | labels | meaning |"

// documentedMetric is one row of the README's metrics tables.
type documentedMetric struct {
	typ    string   // counter, gauge, histogram, as in # TYPE
	labels []string // sorted
}

var backticked = regexp.MustCompile("`([a-zA-Z_:][a-zA-Z0-9_:]*)`")

// readmeMetrics parses the tables of the "## Metrics" section of
// monitoring/README.md into rows by metric name.
func readmeMetrics(t *testing.T) map[string]documentedMetric {
	t.Helper()
	b, err := os.ReadFile(readmePath)
	if err != nil {
		t.Fatal(err)
	}
	section, ok := readmeSection(string(b), "## Metrics")
	if !ok {
		t.Fatalf("%s has no ## Metrics section", readmePath)
	}
	rows := map[string]documentedMetric{}
	for line := range strings.Lines(section) {
		line = strings.TrimSpace(line)
		switch {
		case !strings.HasPrefix(line, "|"), line == metricsTableHeader, strings.HasPrefix(line, "|---"):
			continue
		case strings.HasPrefix(line, "| metric"):
			t.Errorf("%s: metrics table header %q, want %q", readmePath, line, metricsTableHeader)
			continue
		}
		cells := strings.SplitN(line, "|", 5) // "", metric, type, labels, meaning…
		if len(cells) < 5 {
			t.Errorf("%s: metrics row with fewer than 4 cells: %s", readmePath, line)
			continue
		}
		name := backticked.FindStringSubmatch(cells[1])
		if name == nil {
			t.Errorf("%s: metrics row without a `metric` name: %s", readmePath, line)
			continue
		}
		if _, dup := rows[name[1]]; dup {
			t.Errorf("%s: %s has two rows", readmePath, name[1])
		}
		var labels []string
		for _, m := range backticked.FindAllStringSubmatch(cells[3], -1) {
			labels = append(labels, m[1])
		}
		if labels == nil && strings.TrimSpace(cells[3]) != "—" {
			t.Errorf("%s: %s: labels %q: write each as `name`, or — for none", readmePath, name[1], cells[3])
		}
		slices.Sort(labels)
		rows[name[1]] = documentedMetric{typ: strings.TrimSpace(cells[2]), labels: labels}
	}
	if len(rows) == 0 {
		t.Fatalf("%s: no rows in the ## Metrics tables", readmePath)
	}
	return rows
}

// readmeSection returns the text under heading ("## Metrics") up to the
// next heading of its level.
func readmeSection(readme, heading string) (string, bool) {
	_, section, ok := strings.Cut(readme, "\n"+heading+"\n")
	section, _, _ = strings.Cut(section, "\n## ")
	return section, ok
}

// scrapeMetrics reads the server's /metrics into families by name.
func scrapeMetrics(t *testing.T, c *http.Client, base string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := c.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics = %d", resp.StatusCode)
	}
	parser := expfmt.NewTextParser(model.LegacyValidation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	return families
}

// labelNames returns the sorted label names of a family's series; le and
// quantile are part of a histogram or summary, not labels.
func labelNames(f *dto.MetricFamily) []string {
	var names []string
	for _, m := range f.GetMetric() {
		for _, l := range m.GetLabel() {
			if !slices.Contains(names, l.GetName()) {
				names = append(names, l.GetName())
			}
		}
	}
	slices.Sort(names)
	return names
}

// exerciseEveryFamily makes the server create the families it creates only
// on first use: decisions (single, batch and shadow), a champion change, a
// failed load, outcomes and a refused token.
func exerciseEveryFamily(t *testing.T, c *http.Client, base, token string) {
	t.Helper()
	putShadowLive(t, c, base, token)
	promote(t, c, base, token, "champion", "4")
	driveTraffic(t, c, base, "metrics-table", 6)
	failPromotion(t, c, base, token)
	postOutcomes(t, c, base, token, []string{"metrics-table"}, 6)
	if status, body := call(t, c, http.MethodGet, base+"/admin/models", "", "not-the-admin-token", nil); status != http.StatusUnauthorized {
		t.Fatalf("GET /admin/models with a wrong token = %d, want 401: %s", status, body)
	}
}

// TestMetricsTable keeps the README's metrics tables, the operators'
// reference, equal to what a live server exports: every family is a row,
// every row is exported, with the same type and labels.
func TestMetricsTable(t *testing.T) {
	documented := readmeMetrics(t)
	const adminToken = "metrics-table-test-admin-token"
	srv := servetest.Start(t, servetest.Options{Env: []string{
		"MLFLOW_TRACKING_URI=", // local mode, the SQLite decision record
		"SERVE_ARTIFACTS_DIR=" + artifactsWithBrokenVersion(t),
		"SERVE_ADMIN_TOKEN=" + adminToken,
	}})
	c := &http.Client{Timeout: 5 * time.Second}
	exerciseEveryFamily(t, c, srv.URL, adminToken)

	// A few series follow their request by a moment (the shadow decides in
	// the background): wait for the documented families, then compare once.
	var exported map[string]*dto.MetricFamily
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		exported = scrapeMetrics(t, c, srv.URL)
		missing := false
		for name := range documented {
			missing = missing || exported[name] == nil
		}
		if !missing || time.Now().After(deadline) {
			break
		}
	}

	for name, f := range exported {
		if slices.ContainsFunc(standardPrefixes, func(p string) bool { return strings.HasPrefix(name, p) }) {
			continue
		}
		row, ok := documented[name]
		if !ok {
			t.Errorf("%s (%s, labels %v) is exported but has no row in %s's metrics tables",
				name, strings.ToLower(f.GetType().String()), labelNames(f), readmePath)
			continue
		}
		if typ := strings.ToLower(f.GetType().String()); row.typ != typ {
			t.Errorf("%s: %s says type %s, the server exports a %s", name, readmePath, row.typ, typ)
		}
		if labels := labelNames(f); !slices.Equal(row.labels, labels) {
			t.Errorf("%s: %s says labels %v, the server exports %v", name, readmePath, row.labels, labels)
		}
	}
	for name := range documented {
		if exported[name] == nil {
			t.Errorf("%s has a row in %s's metrics tables but the server does not export it", name, readmePath)
		}
	}
	if t.Failed() {
		t.Logf("server log (tail):\n%s", tail(srv.Log.String(), 3000))
	}
}
