package record_test

// Tests of the record in the real server binary: the answer and the record
// agree, kill -9 under load loses no acknowledged decision, and a record
// store that goes away turns decisions into 503s (and back).

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"mlservice/internal/pgtest"
	"mlservice/internal/servetest"
	"mlservice/serve/record"
)

const readToken = "record-test-admin-token"

var client = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 64}}

// applicant i: spread so that some are declined (and get reasons) and some
// approved.
func applicant(id string, i int) map[string]any {
	a := map[string]any{
		"income":         15000 + 9000*(i%11),
		"credit_score":   400 + 41*(i%12),
		"loan_amount":    4000 + 5000*(i%9),
		"years_employed": i % 13,
		"points":         20 + 9*(i%9),
	}
	if id != "" {
		a["application_id"] = id
	}
	return a
}

func do(t testing.TB, method, u, token string, body any) (int, []byte) {
	t.Helper()
	var r io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		r = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, u, r)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, u, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

type answer struct {
	ApplicationID string `json:"application_id"`
	DecisionID    string `json:"decision_id"`
	Approve       bool   `json:"approve"`
	Probability   float32
	Model         struct{ Name, Version, Variant, SHA256 string }
	Reasons       []record.DocumentReason `json:"reasons"`
	RequestID     string                  `json:"request_id"`
}

func records(t testing.TB, base, appID string) []record.Document {
	t.Helper()
	status, body := do(t, "GET", base+"/v1/decisions/"+url.PathEscape(appID), readToken, nil)
	if status == http.StatusNotFound {
		return nil
	}
	if status != http.StatusOK {
		t.Fatalf("GET /v1/decisions/%s = %d: %s", appID, status, body)
	}
	var out struct {
		ApplicationID string            `json:"application_id"`
		Decisions     []record.Document `json:"decisions"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		t.Fatal(err)
	}
	if out.ApplicationID != appID {
		t.Fatalf("looked up %q, answered %q", appID, out.ApplicationID)
	}
	return out.Decisions
}

// export reads every decision of the last hour through the NDJSON export.
func export(t testing.TB, base string) map[string]record.Document {
	t.Helper()
	from := time.Now().Add(-time.Hour).UTC().Format(time.RFC3339)
	to := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	status, body := do(t, "GET", base+"/v1/decisions?from="+from+"&to="+to, readToken, nil)
	if status != http.StatusOK {
		t.Fatalf("export = %d: %s", status, body)
	}
	out := map[string]record.Document{}
	sc := bufio.NewScanner(bytes.NewReader(body))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var d record.Document
		if err := json.Unmarshal(sc.Bytes(), &d); err != nil {
			t.Fatalf("export line %q: %v", sc.Text(), err)
		}
		if d.DecisionID == "" {
			t.Fatalf("export line without a decision: %s", sc.Text())
		}
		if d.Served {
			out[d.ApplicationID] = d
		}
	}
	return out
}

func start(t *testing.T, env ...string) *servetest.Server {
	t.Helper()
	return servetest.Start(t, servetest.Options{Env: append([]string{
		"MLFLOW_TRACKING_URI=", "SERVE_ADMIN_TOKEN=" + readToken}, env...)})
}

func TestAnswerAndRecordAgree(t *testing.T) {
	srv := start(t, "SERVE_DATA_DIR="+t.TempDir())
	var declines int
	for i := range 40 {
		id := fmt.Sprintf("AGREE-%d", i)
		status, body := do(t, "POST", srv.URL+"/v1/predict", "", applicant(id, i))
		if status != 200 {
			t.Fatalf("predict = %d: %s", status, body)
		}
		var a answer
		if err := json.Unmarshal(body, &a); err != nil {
			t.Fatal(err)
		}
		rs := records(t, srv.URL, id)
		if len(rs) != 1 {
			t.Fatalf("%s: %d records, want 1", id, len(rs))
		}
		checkAgree(t, a, rs[0], body)
		// The answer's decision id finds the same record.
		status, byID := do(t, "GET", srv.URL+"/v1/decisions/by-decision-id/"+a.DecisionID, readToken, nil)
		var d record.Document
		if err := json.Unmarshal(byID, &d); status != 200 || err != nil || !reflect.DeepEqual(d, rs[0]) {
			t.Fatalf("GET by-decision-id/%s = %d: %s\nby application id: %+v", a.DecisionID, status, byID, rs[0])
		}
		if !a.Approve {
			declines++
		}
		// Inputs exactly as received.
		var in map[string]any
		if err := json.Unmarshal(rs[0].Inputs, &in); err != nil || in["application_id"] != id {
			t.Fatalf("%s: inputs %s", id, rs[0].Inputs)
		}
	}
	t.Logf("%d of 40 declined", declines)

	// A batch: every item recorded under its own decision id; a missing
	// application id is generated, answered and recorded.
	batch := map[string]any{"applications": []any{applicant("BATCH-1", 1), applicant("", 2), applicant("BATCH-3", 3)}}
	status, body := do(t, "POST", srv.URL+"/v1/predict/batch", "", batch)
	if status != 200 {
		t.Fatalf("batch = %d: %s", status, body)
	}
	var br struct{ Results []answer }
	if err := json.Unmarshal(body, &br); err != nil {
		t.Fatal(err)
	}
	if len(br.Results) != 3 || br.Results[1].ApplicationID == "" {
		t.Fatalf("batch results %s", body)
	}
	for _, a := range br.Results {
		rs := records(t, srv.URL, a.ApplicationID)
		if len(rs) != 1 {
			t.Fatalf("batch item %s: %d records", a.ApplicationID, len(rs))
		}
		checkAgree(t, a, rs[0], body)
		if status, byID := do(t, "GET", srv.URL+"/v1/decisions/by-decision-id/"+a.DecisionID, readToken, nil); status != 200 ||
			!bytes.Contains(byID, []byte(`"decision_id":"`+a.DecisionID+`"`)) {
			t.Fatalf("batch item by decision id = %d: %s", status, byID)
		}
	}
	// An OIP request of several rows: its decision_ids name each row's record
	// in row order, with the probability the answer gave.
	tensors := []any{}
	rows := []map[string]any{applicant("", 1), applicant("", 2), applicant("", 3), applicant("", 4)}
	for _, f := range []string{"income", "credit_score", "loan_amount", "years_employed"} {
		col := []any{}
		for _, r := range rows {
			col = append(col, r[f])
		}
		tensors = append(tensors, map[string]any{"name": f, "shape": []int{len(rows)}, "datatype": "FP32", "data": col})
	}
	status, body = do(t, "POST", srv.URL+"/v2/models/loan-approval/infer", "", map[string]any{"inputs": tensors})
	var infer struct {
		Parameters struct {
			DecisionIDs string `json:"decision_ids"`
		}
		Outputs []struct {
			Name string
			Data []float32
		}
	}
	err := json.Unmarshal(body, &infer)
	ids := strings.Split(infer.Parameters.DecisionIDs, ",")
	if status != 200 || err != nil || len(ids) != len(rows) {
		t.Fatalf("/v2 infer of %d rows = %d: %s", len(rows), status, body)
	}
	var probability []float32
	for _, o := range infer.Outputs {
		if o.Name == "probability" {
			probability = o.Data
		}
	}
	for i, id := range ids {
		status, byID := do(t, "GET", srv.URL+"/v1/decisions/by-decision-id/"+id, readToken, nil)
		var d record.Document
		if err := json.Unmarshal(byID, &d); status != 200 || err != nil || d.DecisionID != id || d.ApplicationID != id ||
			len(probability) != len(rows) || d.Probability != probability[i] {
			t.Fatalf("/v2 row %d, decision %s = %d: %s\nanswer %s", i, id, status, byID, body)
		}
	}

	// A single decision without an id.
	status, body = do(t, "POST", srv.URL+"/v1/predict", "", applicant("", 5))
	var a answer
	_ = json.Unmarshal(body, &a)
	if status != 200 || a.ApplicationID == "" {
		t.Fatalf("no application id: %d %s", status, body)
	}
	if rs := records(t, srv.URL, a.ApplicationID); len(rs) != 1 {
		t.Fatalf("generated id %s: %d records", a.ApplicationID, len(rs))
	}
	// Reads need a token of role admin or audit.
	if status, _ := do(t, "GET", srv.URL+"/v1/decisions/AGREE-1", "", nil); status != 401 {
		t.Errorf("no token = %d, want 401", status)
	}
	if status, _ := do(t, "GET", srv.URL+"/v1/decisions/AGREE-1", "wrong-token-wrong-token", nil); status != 401 {
		t.Errorf("wrong token = %d, want 401", status)
	}
	if status, body := do(t, "GET", srv.URL+"/v1/decisions/"+url.PathEscape("é"), readToken, nil); status != 422 {
		t.Errorf("id outside the contract = %d, want 422: %s", status, body)
	}
	if status, _ := do(t, "GET", srv.URL+"/v1/decisions/never-seen", readToken, nil); status != 404 {
		t.Errorf("unknown id = %d, want 404", status)
	}
}

func checkAgree(t *testing.T, a answer, d record.Document, body []byte) {
	t.Helper()
	if d.DecisionID != a.DecisionID || d.ApplicationID != a.ApplicationID || d.Probability != a.Probability ||
		d.Approve != a.Approve || d.Model.Version != a.Model.Version || d.Model.SHA256 != a.Model.SHA256 ||
		d.Model.Name != a.Model.Name || d.Variant != a.Model.Variant || !d.Served {
		t.Fatalf("answer and record differ:\nanswer %s\nrecord %+v", body, d)
	}
	if len(a.Reasons) == 0 && len(d.Reasons) == 0 {
		return
	}
	if !reflect.DeepEqual(a.Reasons, d.Reasons) {
		t.Fatalf("reasons differ: answer %+v, record %+v", a.Reasons, d.Reasons)
	}
	if d.Time.IsZero() || d.Time.Location() != time.UTC || d.Model.Source == "" || d.RequestID == "" || d.Threshold <= 0 || d.LatencyMS < 0 {
		t.Fatalf("record lacks a field: %+v", d)
	}
}

// load sends decisions from 16 connections until stop is closed and returns
// the decision id each acknowledged (200) application id got.
func load(t *testing.T, base, prefix string, stop <-chan struct{}, acked *atomic.Int64) map[string]string {
	var (
		mu   sync.Mutex
		acks = map[string]string{}
		wg   sync.WaitGroup
		next atomic.Int64
	)
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 16}}
	for range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				i := int(next.Add(1))
				id := fmt.Sprintf("%s-%d", prefix, i)
				raw, _ := json.Marshal(applicant(id, i))
				resp, err := c.Post(base+"/v1/predict", "application/json", bytes.NewReader(raw))
				if err != nil {
					time.Sleep(10 * time.Millisecond)
					continue
				}
				body, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				if resp.StatusCode != 200 {
					continue
				}
				var a answer
				if json.Unmarshal(body, &a) != nil || a.DecisionID == "" {
					continue // a torn body is not an acknowledgement
				}
				mu.Lock()
				acks[id] = a.DecisionID
				mu.Unlock()
				acked.Add(1)
			}
		}()
	}
	<-stop
	wg.Wait()
	return acks
}

// killUnderLoad runs the load, SIGKILLs the server after at least minAcks
// acknowledged decisions, restarts it on the same data and checks that every
// acknowledged application id is in the record with the decision id it was
// answered.
func killUnderLoad(t *testing.T, env ...string) {
	const minAcks = 1500
	srv := start(t, env...)
	stop := make(chan struct{})
	var acked atomic.Int64
	done := make(chan map[string]string)
	go func() { done <- load(t, srv.URL, "KILL", stop, &acked) }()
	deadline := time.Now().Add(60 * time.Second)
	for acked.Load() < minAcks {
		if time.Now().After(deadline) {
			close(stop)
			<-done
			t.Fatalf("only %d decisions acknowledged in 60s", acked.Load())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := syscall.Kill(-srv.Cmd.Process.Pid, syscall.SIGKILL); err != nil { // mid-flight, no drain
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // the load keeps trying against the dead server
	close(stop)
	acks := <-done
	t.Logf("%d decisions acknowledged before kill -9", len(acks))
	if len(acks) < minAcks {
		t.Fatalf("only %d acknowledged", len(acks))
	}

	again := start(t, env...)
	recorded := export(t, again.URL)
	missing := 0
	for id, decisionID := range acks {
		d, ok := recorded[id]
		if !ok || d.DecisionID != decisionID {
			missing++
			if missing <= 5 {
				t.Errorf("%s was answered 200 (decision %s) but the record has %+v", id, decisionID, d.DecisionID)
			}
		}
	}
	if missing > 0 {
		t.Fatalf("%d of %d acknowledged decisions are not in the record after kill -9", missing, len(acks))
	}
	t.Logf("all %d acknowledged decisions are in the record (%d recorded in all)", len(acks), len(recorded))
}

func TestKillUnderLoadSQLite(t *testing.T) {
	killUnderLoad(t, "SERVE_DATA_DIR="+t.TempDir())
}

// With SERVE_DECISIONS_SYNC=normal an answered decision survives a crash of
// the process too (the OS still has its write).
func TestKillUnderLoadSQLiteSyncNormal(t *testing.T) {
	killUnderLoad(t, "SERVE_DATA_DIR="+t.TempDir(), "SERVE_DECISIONS_SYNC=normal")
}

func TestKillUnderLoadPostgres(t *testing.T) {
	pg := pgtest.Start(t)
	killUnderLoad(t, "SERVE_DECISIONS_URL="+pg.CreateDatabase(t, "killtest"))
}

// outage checks a server whose record store goes away (down) and comes back
// (up): decisions are refused with 503 record_unavailable, /ready is 503 and
// says why, a refused batch leaves nothing half-written, and everything is
// back once the store is.
func outage(t *testing.T, srv *servetest.Server, down, up func()) {
	if status, body := do(t, "POST", srv.URL+"/v1/predict", "", applicant("BEFORE", 1)); status != 200 {
		t.Fatalf("predict = %d: %s", status, body)
	}
	down()
	status, body := do(t, "POST", srv.URL+"/v1/predict", "", applicant("DURING-1", 2))
	if status != 503 || !bytes.Contains(body, []byte(`"record_unavailable"`)) {
		t.Fatalf("predict with the record down = %d, want 503 record_unavailable: %s", status, body)
	}
	batch := map[string]any{"applications": []any{applicant("DURING-B1", 1), applicant("DURING-B2", 2), applicant("DURING-B3", 3)}}
	if status, body := do(t, "POST", srv.URL+"/v1/predict/batch", "", batch); status != 503 || !bytes.Contains(body, []byte(`"record_unavailable"`)) {
		t.Fatalf("batch with the record down = %d: %s", status, body)
	}
	status, body = do(t, "GET", srv.URL+"/ready", "", nil)
	if status != 503 || !bytes.Contains(body, []byte("decision record")) {
		t.Fatalf("/ready with the record down = %d, want 503 naming the record: %s", status, body)
	}
	t.Logf("/ready: %s", body)
	up()
	deadline := time.Now().Add(15 * time.Second)
	for {
		status, body = do(t, "GET", srv.URL+"/ready", "", nil)
		if status == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/ready not back 15s after the store: %d %s", status, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if status, body := do(t, "POST", srv.URL+"/v1/predict", "", applicant("AFTER", 3)); status != 200 {
		t.Fatalf("predict after the store came back = %d: %s", status, body)
	}
	for id, want := range map[string]int{"BEFORE": 1, "DURING-1": 0, "DURING-B1": 0, "DURING-B2": 0, "DURING-B3": 0, "AFTER": 1} {
		if got := len(records(t, srv.URL, id)); got != want {
			t.Errorf("%s: %d records, want %d", id, got, want)
		}
	}
	_, metrics := do(t, "GET", srv.URL+"/metrics", "", nil)
	if !bytes.Contains(metrics, []byte("decision_record_write_failures_total")) {
		t.Error("no decision_record_write_failures_total in /metrics")
	}
}

// TestOutageSQLite makes the record's file unwritable under the running
// server the way a full disk does: the server's file-size limit drops to
// one byte (prlimit), so every write to the database and its WAL fails.
func TestOutageSQLite(t *testing.T) {
	srv := start(t, "SERVE_DATA_DIR="+t.TempDir())
	var restore func()
	outage(t, srv, func() { restore = record.FileSizeLimit(t, srv.Cmd.Process.Pid, 1) }, func() { restore() })
}

func TestOutagePostgres(t *testing.T) {
	pg := pgtest.Start(t)
	srv := start(t, "SERVE_DECISIONS_URL="+pg.CreateDatabase(t, "outage"))
	outage(t, srv, pg.Stop, pg.Start)
	if !strings.Contains(srv.Log.String(), "decision record available again") {
		t.Error("no log line for the record coming back")
	}
}

// TestStartWhilePostgresDown: a replica that starts while the record's
// PostgreSQL is unreachable (a rescheduled pod during a database failover, a
// scale-up in an outage) waits for it instead of exiting, and serves once it
// answers; exiting put it into the kubelet's crash-loop backoff, minutes
// behind the database.
func TestStartWhilePostgresDown(t *testing.T) {
	pg := pgtest.Start(t)
	url := pg.CreateDatabase(t, "startdown")
	pg.Stop()
	srv := servetest.Start(t, servetest.Options{NoWait: true, Env: []string{
		"MLFLOW_TRACKING_URI=", "SERVE_ADMIN_TOKEN=" + readToken, "SERVE_DECISIONS_URL=" + url}})
	time.Sleep(3 * time.Second)
	if srv.Exited() {
		t.Fatalf("the server exited while PostgreSQL was down:\n%s", srv.Log.String())
	}
	if !strings.Contains(srv.Log.String(), "waiting for the decision record") {
		t.Errorf("no log line saying it waits for the record:\n%s", srv.Log.String())
	}
	pg.Start()
	if err := srv.WaitReady(30 * time.Second); err != nil {
		t.Fatalf("not ready after PostgreSQL came back: %v\n%s", err, srv.Log.String())
	}
	if status, body := do(t, "POST", srv.URL+"/v1/predict", "", applicant("STARTED-DOWN", 1)); status != 200 {
		t.Fatalf("predict = %d: %s", status, body)
	}
}

// TestShadowOnlyWithoutReasons: a version that cannot give reasons (the
// shipped versions 1 and 2 have no reasons.json) may not be made champion or
// challenger (409 naming why), may be shadow, and its shadow decisions are
// recorded, flagged as not served.
func TestShadowOnlyWithoutReasons(t *testing.T) {
	srv := start(t, "SERVE_DATA_DIR="+t.TempDir(), "SERVE_ALLOW_VERSIONS_WITHOUT_REASONS=false")
	for _, alias := range []string{"challenger", "champion"} {
		status, body := do(t, "POST", srv.URL+"/admin/promote", readToken, map[string]string{"alias": alias, "version": "1"})
		if status != http.StatusConflict || !bytes.Contains(body, []byte("shadow")) || !bytes.Contains(body, []byte("reasons")) {
			t.Fatalf("promote version 1 to %s = %d, want 409 naming why: %s", alias, status, body)
		}
		t.Logf("%s: %s", alias, body)
	}
	if status, body := do(t, "POST", srv.URL+"/admin/promote", readToken, map[string]string{"alias": "shadow", "version": "1"}); status != 200 {
		t.Fatalf("promote version 1 to shadow = %d: %s", status, body)
	}
	status, body := do(t, "POST", srv.URL+"/v1/predict", "", applicant("SHADOWED", 3))
	if status != 200 {
		t.Fatalf("predict = %d: %s", status, body)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		rs := records(t, srv.URL, "SHADOWED")
		var served, shadow int
		for _, d := range rs {
			if d.Served {
				served++
			} else if d.Variant == "shadow" && d.Model.Version == "1" {
				shadow++
			}
		}
		if served == 1 && shadow == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("records of a shadowed application: %+v", rs)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
