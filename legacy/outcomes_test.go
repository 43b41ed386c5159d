package main

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"mlservice/internal/servetest"
	"mlservice/legacy/internal/legacytest"
)

// TestOutcomesAgainstTheServer decides applications with the batch binary,
// then posts their outcomes with `legacy outcomes` to the real server's
// POST /v1/outcomes: each is recorded against its decision, an unknown
// application is rejected, a rerun posts nothing twice, a wrong token
// makes the job fail (exit 1).
func TestOutcomesAgainstTheServer(t *testing.T) {
	bin := legacyBinary(t)
	const token = "legacy-outcomes-test-token-0123456789"
	svc := servetest.Start(t, servetest.Options{Env: []string{"SERVE_ADMIN_TOKEN=" + token, "SERVE_DATA_DIR=" + t.TempDir()}})
	dir := t.TempDir()
	export, outcomes := filepath.Join(dir, "export.csv"), filepath.Join(dir, "outcomes.csv")
	var e, o strings.Builder
	e.WriteString("application_id,name,income,credit_score,loan_amount,years_employed,points\n")
	o.WriteString("application_id,approved\n")
	for i := range 20 {
		fmt.Fprintf(&e, "OUT-%d,Applicant %d,%d,%d,20000,5,60\n", i, i, 30000+2000*i, 450+20*i)
		fmt.Fprintf(&o, "OUT-%d,%v\n", i, i%3 != 0)
	}
	o.WriteString("NEVER-DECIDED,true\n")
	os.WriteFile(export, []byte(e.String()), 0o644)
	os.WriteFile(outcomes, []byte(o.String()), 0o644)

	cmd, stderr := startBatch(t, bin, "-in", export, "-out", filepath.Join(dir, "decisions.csv"), "-api", svc.URL)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("batch: %v\n%s", err, stderr)
	}

	posted := filepath.Join(dir, "posted.csv")
	run := func(tok string) (int, string) {
		t.Helper()
		cmd, stderr := startCmd(t, bin, []string{"LEGACY_API_TOKEN=" + tok}, "outcomes", "-in", outcomes, "-out", posted, "-api", svc.URL)
		return exitCodeOf(cmd.Wait()), stderr.String()
	}
	if code, log := run("not-the-token-at-all-000000"); code != exitFailed || !strings.Contains(log, "refused the token") {
		t.Fatalf("wrong token: exit %d\n%s", code, log)
	}
	code, log := run(token)
	if code != exitRejected {
		t.Fatalf("exit %d, want %d (one unknown application)\n%s", code, exitRejected, log)
	}
	rows := legacytest.Rows(t, posted)
	if len(rows) != 20 {
		t.Fatalf("%d outcomes posted, want 20\n%s", len(rows), log)
	}
	for _, r := range rows {
		if r[3] != "1" {
			t.Errorf("%s joined %s decisions, want 1", r[1], r[3])
		}
	}
	rejects := legacytest.Rows(t, filepath.Join(dir, "posted.rejects.csv"))
	if len(rejects) != 1 || rejects[0][1] != "NEVER-DECIDED" || !strings.Contains(rejects[0][3], "no decision") {
		t.Fatalf("rejects %q", rejects)
	}
	if code, log := run(token); code != exitRejected || !strings.Contains(log, "0 posted now, 20 posted before") {
		t.Errorf("rerun: exit %d\n%s", code, log)
	}

	// The server counted each application once, against the version that decided it.
	resp, err := http.Get(svc.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var total float64
	for _, line := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(line, "model_outcomes_total{") {
			var v float64
			fmt.Sscanf(line[strings.LastIndexByte(line, ' ')+1:], "%g", &v)
			total += v
		}
	}
	if total != 20 {
		t.Errorf("model_outcomes_total sums to %v, want 20", total)
	}
}
