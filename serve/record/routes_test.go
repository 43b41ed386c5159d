package record

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/santhosh-tekuri/jsonschema/v6"

	"mlservice/internal/schematest"
	"mlservice/internal/servetest"
	"mlservice/serve/api"
	"mlservice/serve/decision"
)

// schema compiles one of the record's published schemas (with the record
// schema they refer to).
func schema(t *testing.T, name string) *jsonschema.Schema {
	t.Helper()
	c := jsonschema.NewCompiler()
	for _, f := range []string{"decision-record.schema.json", "decision-list.schema.json"} {
		raw, err := os.ReadFile(filepath.Join(servetest.ModuleRoot(), "schemas", f))
		if err != nil {
			t.Fatal(err)
		}
		doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
		if err != nil {
			t.Fatal(err)
		}
		if err := c.AddResource("https://mlservice.local/schemas/"+f, doc); err != nil {
			t.Fatal(err)
		}
	}
	s, err := c.Compile("https://mlservice.local/schemas/" + name)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func validate(t *testing.T, s *jsonschema.Schema, body []byte) {
	t.Helper()
	inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		t.Fatalf("not JSON: %v\n%s", err, body)
	}
	if err := s.Validate(inst); err != nil {
		t.Fatalf("does not match its schema: %v\n%s", err, body)
	}
}

// fakeAuth stands in for serve/auth: token "reader" has audit, "boss" admin.
func fakeAuth(roles ...string) fiber.Handler {
	return func(c *fiber.Ctx) error {
		tok := strings.TrimPrefix(c.Get("Authorization"), "Bearer ")
		for _, r := range roles {
			if (tok == "reader" && r == "audit") || (tok == "boss" && r == "admin") {
				c.Locals("who", tok)
				return c.Next()
			}
		}
		return &api.Error{Status: http.StatusUnauthorized, Code: api.CodeUnauthorized, Message: "token"}
	}
}

func routesApp(t *testing.T) (*fiber.App, *Recorder, *bytes.Buffer) {
	return routesAppOn(t, func(s Store) Store { return s })
}

// routesAppOn is routesApp with the routes on what wrap makes of the store.
func routesAppOn(t *testing.T, wrap func(Store) Store) (*fiber.App, *Recorder, *bytes.Buffer) {
	store, err := OpenSQLite(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	rec := New(store, Config{})
	t.Cleanup(func() { rec.Close() })
	var audit bytes.Buffer
	app := fiber.New(fiber.Config{ErrorHandler: api.ErrorHandler(slog.Default())})
	Mount(app, RoutesConfig{Store: wrap(store), Read: fakeAuth("admin", "audit"), Admin: fakeAuth("admin"),
		Principal: func(c *fiber.Ctx) string { s, _ := c.Locals("who").(string); return s },
		Audit:     slog.New(slog.NewJSONHandler(&audit, nil))})
	return app, rec, &audit
}

func get(t *testing.T, app *fiber.App, method, path, token, body string) (int, []byte, http.Header) {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := app.Test(req, 10000)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b, resp.Header
}

func TestRoutes(t *testing.T) {
	app, rec, audit := routesApp(t)
	t0 := time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)
	ds := []decision.Decision{sample("A-1", t0, true), sample("A-1", t0.Add(time.Second), true),
		sample("A-1", t0.Add(time.Second), false), sample("A/ 2", t0.Add(2*time.Second), true)}
	if err := rec.Record(context.Background(), ds); err != nil {
		t.Fatal(err)
	}
	list, one := schema(t, "decision-list.schema.json"), schema(t, "decision-record.schema.json")

	status, body, _ := get(t, app, "GET", "/v1/decisions/A-1", "reader", "")
	if status != 200 {
		t.Fatalf("GET /v1/decisions/A-1 = %d: %s", status, body)
	}
	validate(t, list, body)
	var got struct {
		ApplicationID string     `json:"application_id"`
		Decisions     []Document `json:"decisions"`
	}
	if err := json.Unmarshal(body, &got); err != nil {
		t.Fatal(err)
	}
	if got.ApplicationID != "A-1" || len(got.Decisions) != 3 || got.Decisions[2].DecisionID != ds[0].ID {
		t.Fatalf("got %+v", got)
	}
	if !strings.Contains(audit.String(), `"principal":"reader"`) {
		t.Fatalf("no audit line naming the reader: %s", audit.String())
	}

	// An id with characters a path needs encoded.
	if status, body, _ := get(t, app, "GET", "/v1/decisions/A%2F%202", "boss", ""); status != 200 || !bytes.Contains(body, []byte(`"application_id":"A/ 2"`)) {
		t.Fatalf("GET an encoded id = %d: %s", status, body)
	}
	for _, path := range []string{"/v1/decisions/" + strings.Repeat("x", 65), "/v1/decisions/A%00", "/v1/decisions/%C3%A9t%C3%A9", "/v1/decisions/a%09b"} {
		if status, body, _ := get(t, app, "GET", path, "reader", ""); status != 422 || !bytes.Contains(body, []byte("validation_failed")) {
			t.Errorf("GET %s = %d, want 422: %s", path, status, body)
		}
	}
	if status, body, _ := get(t, app, "GET", "/v1/decisions/nobody", "reader", ""); status != 404 {
		t.Errorf("unknown id = %d, want 404: %s", status, body)
	}
	if status, _, _ := get(t, app, "GET", "/v1/decisions/A-1", "", ""); status != 401 {
		t.Errorf("no token = %d, want 401", status)
	}

	// Export: NDJSON, oldest first, [from, to).
	status, body, hdr := get(t, app, "GET", "/v1/decisions?from=2026-11-30T09:00:00.5Z&to=2026-11-30T10:00:00Z", "reader", "")
	if status != 200 || hdr.Get("Content-Type") != "application/x-ndjson" {
		t.Fatalf("export = %d %s: %s", status, hdr.Get("Content-Type"), body)
	}
	sc := bufio.NewScanner(bytes.NewReader(body))
	var ids []string
	for sc.Scan() {
		validate(t, one, sc.Bytes())
		var d Document
		_ = json.Unmarshal(sc.Bytes(), &d)
		ids = append(ids, d.DecisionID)
	}
	if len(ids) != 3 || ids[2] != ds[3].ID {
		t.Fatalf("export %v", ids)
	}
	for _, q := range []string{"", "?from=2026-11-30T09:00:00Z", "?from=yesterday&to=2026-11-30T09:00:00Z", "?from=2026-11-30T10:00:00Z&to=2026-11-30T09:00:00Z"} {
		if status, body, _ := get(t, app, "GET", "/v1/decisions"+q, "reader", ""); status != 422 {
			t.Errorf("export %q = %d, want 422: %s", q, status, body)
		}
	}

	// Legal hold: admin only, with a reason; listed.
	if status, _, _ := get(t, app, "PUT", "/v1/decisions/A-1/legal-hold", "reader", `{"reason":"case 17"}`); status != 401 {
		t.Errorf("hold by an auditor = %d, want refused", status)
	}
	if status, body, _ := get(t, app, "PUT", "/v1/decisions/A-1/legal-hold", "boss", `{}`); status != 422 {
		t.Errorf("hold without a reason = %d: %s", status, body)
	}
	for body, want := range map[string]int{`{"reason":`: 400, `{"reason":"x","reason":"y"}`: 422, `{"reason":"x","extra":1}`: 422, `{"reason":7}`: 422} {
		if status, got, _ := get(t, app, "PUT", "/v1/decisions/A-1/legal-hold", "boss", body); status != want {
			t.Fatalf("legal hold with %s: %d %s, want %d", body, status, got, want)
		}
	}
	if status, body, _ := get(t, app, "PUT", "/v1/decisions/A-1/legal-hold", "boss", `{"reason":"case 17"}`); status != 200 {
		t.Fatalf("hold = %d: %s", status, body)
	}
	// A retry changes nothing; a second matter's hold does not replace the first's.
	if status, body, _ := get(t, app, "PUT", "/v1/decisions/A-1/legal-hold", "boss", `{"reason":"case 17"}`); status != 200 {
		t.Fatalf("the same hold again = %d: %s", status, body)
	}
	if status, body, _ := get(t, app, "PUT", "/v1/decisions/A-1/legal-hold", "boss", `{"reason":"exam 2027"}`); status != 409 ||
		!bytes.Contains(body, []byte(`already under legal hold, set by boss`)) || !bytes.Contains(body, []byte(`case 17`)) {
		t.Fatalf("a hold for another reason = %d: %s, want 409 naming the first", status, body)
	}
	status, body, _ = get(t, app, "GET", "/v1/legal-holds", "reader", "")
	if status != 200 || !bytes.Contains(body, []byte(`"application_id":"A-1"`)) || !bytes.Contains(body, []byte(`"set_by":"boss"`)) ||
		!bytes.Contains(body, []byte(`"reason":"case 17"`)) {
		t.Fatalf("holds = %d: %s", status, body)
	}
	if status, body, _ := get(t, app, "DELETE", "/v1/decisions/A-1/legal-hold", "boss", ""); status != 200 {
		t.Fatalf("lift = %d: %s", status, body)
	}
	if !strings.Contains(audit.String(), "legal hold lifted") {
		t.Fatalf("no audit line for the lifted hold: %s", audit.String())
	}
}

func TestByDecisionID(t *testing.T) {
	app, rec, audit := routesApp(t)
	ds := recordWithIDs(t, rec)
	one := schema(t, "decision-record.schema.json")
	for _, d := range ds {
		for _, id := range []string{d.ID, strings.ToUpper(d.ID)} {
			status, body, _ := get(t, app, "GET", "/v1/decisions/by-decision-id/"+id, "reader", "")
			if status != 200 {
				t.Fatalf("GET by-decision-id/%s = %d: %s", id, status, body)
			}
			validate(t, one, body)
			want := AppendDocument(nil, &d)
			if !bytes.Equal(body, want) {
				t.Fatalf("by decision id:\n%s\nwant\n%s", body, want)
			}
		}
	}
	if !strings.Contains(audit.String(), `"decision_id":"`+ds[0].ID+`"`) || strings.Contains(audit.String(), strings.ToUpper(ds[0].ID)) {
		t.Fatalf("no audit line naming the decision id as the record holds it: %s", audit.String())
	}
	unseen := make([]string, 1)
	decision.NewIDs(unseen, time.Now())
	if status, body, _ := get(t, app, "GET", "/v1/decisions/by-decision-id/"+unseen[0], "reader", ""); status != 404 {
		t.Errorf("an id never given = %d, want 404: %s", status, body)
	}
	for _, id := range []string{"nobody", "6ba7b810-9dad-41d1-80b4-00c04fd430c8", // version 4
		strings.ReplaceAll(ds[0].ID, "-", ""), "{" + ds[0].ID + "}", "urn:uuid:" + ds[0].ID, ds[0].ID + "0"} {
		if status, body, _ := get(t, app, "GET", "/v1/decisions/by-decision-id/"+url.PathEscape(id), "reader", ""); status != 422 {
			t.Errorf("GET by-decision-id/%s = %d, want 422: %s", id, status, body)
		}
	}
	if status, _, _ := get(t, app, "GET", "/v1/decisions/by-decision-id/"+ds[0].ID, "", ""); status != 401 {
		t.Errorf("no token = %d, want 401", status)
	}
}

// recordWithIDs records decisions as the path makes them, ids from NewIDs
// at the decisions' time: two calls (one with a shadow decision), and
// single predictions the SQLite loader merges into one group.
func recordWithIDs(t *testing.T, rec *Recorder) []decision.Decision {
	t.Helper()
	var ds []decision.Decision
	for call := range 4 {
		n := 3
		if call > 1 {
			n = 1
		}
		ids := make([]string, n)
		now := time.Now().UTC()
		decision.NewIDs(ids, now)
		part := make([]decision.Decision, n)
		for i := range part {
			part[i] = sample(fmt.Sprintf("ID-%d-%d", call, i), now, call != 1 || i != 2)
			part[i].ID = ids[i]
		}
		if call == 0 { // a /v2 row's application id is a decision id: the field decides
			part[0].ApplicationID = ids[1]
		}
		if err := rec.Record(context.Background(), part); err != nil {
			t.Fatal(err)
		}
		ds = append(ds, part...)
		time.Sleep(3 * time.Millisecond)
	}
	return ds
}

// slowClients is a store whose exports stream to clients that read
// nothing until read is closed: each holds its reader meanwhile.
type slowClients struct {
	Store
	read      chan struct{}
	streaming atomic.Int64
}

func (s *slowClients) Export(ctx context.Context, from, to time.Time, fn func([]byte) error) error {
	return s.Store.Export(ctx, from, to, func(doc []byte) error {
		if err := fn(doc); err != nil {
			return err
		}
		s.streaming.Add(1)
		<-s.read
		return nil
	})
}

// TestExportsLeaveLookupsAReader: exports streaming to slow clients are
// bounded below the readers, so lookups still get one; an export past the
// bound is refused at once, to be retried.
func TestExportsLeaveLookupsAReader(t *testing.T) {
	slow := &slowClients{read: make(chan struct{})}
	app, rec, audit := routesAppOn(t, func(s Store) Store { slow.Store = s; return slow })
	// Decisions far enough apart that the first is sent while the export
	// still reads, holding its reader.
	t0 := time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)
	for i := range 2 {
		if err := rec.Record(context.Background(), []decision.Decision{sample("E-1", t0.Add(time.Duration(i)*time.Second), true)}); err != nil {
			t.Fatal(err)
		}
	}
	const exports = readers
	statuses := make(chan int, exports)
	var wg sync.WaitGroup
	finish := sync.OnceFunc(func() { close(slow.read); wg.Wait() })
	defer finish()
	for range exports {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req := httptest.NewRequest("GET", "/v1/decisions?from=2026-11-30T00:00:00Z&to=2026-12-01T00:00:00Z", nil)
			req.Header.Set("Authorization", "Bearer reader")
			resp, err := app.Test(req, -1)
			if err != nil {
				statuses <- 0
				return
			}
			if resp.StatusCode == 503 && (resp.Header.Get("Retry-After") == "" || !strings.Contains(readAll(resp.Body), api.CodeOverloaded)) {
				t.Errorf("an export past the bound: 503 without Retry-After or code %s", api.CodeOverloaded)
			}
			resp.Body.Close()
			statuses <- resp.StatusCode
		}()
	}
	for deadline := time.Now().Add(5 * time.Second); slow.streaming.Load() < min(exports, maxExports); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d exports streaming, want %d", slow.streaming.Load(), maxExports)
		}
	}
	time.Sleep(200 * time.Millisecond) // the rest take what they can
	req := httptest.NewRequest("GET", "/v1/decisions/E-1", nil)
	req.Header.Set("Authorization", "Bearer reader")
	resp, err := app.Test(req, 3000)
	if err != nil {
		t.Fatalf("a lookup with %d exports streaming: %v", slow.streaming.Load(), err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("a lookup with %d exports streaming: %d", slow.streaming.Load(), resp.StatusCode)
	}
	for range exports - maxExports {
		select {
		case status := <-statuses:
			if status != 503 {
				t.Fatalf("an export past the bound: %d, want 503", status)
			}
		case <-time.After(time.Second):
			t.Fatal("an export past the bound was not refused at once")
		}
	}
	finish()
	if lines := auditLines(t, audit, "decision record export refused: too many at once"); len(lines) != exports-maxExports || lines[0]["principal"] != "reader" {
		t.Errorf("refused exports: log lines %v, want %d naming the principal", lines, exports-maxExports)
	}
}

func readAll(r io.Reader) string {
	b, _ := io.ReadAll(r)
	return string(b)
}

// brokenExports is a store whose exports fail after sending `after`
// documents, as a store that goes down does.
type brokenExports struct {
	Store
	after int
}

func (s brokenExports) Export(ctx context.Context, from, to time.Time, fn func([]byte) error) error {
	n := 0
	err := s.Store.Export(ctx, from, to, func(doc []byte) error {
		if n == s.after {
			return errStoreDown
		}
		n++
		return fn(doc)
	})
	if err == nil && n == s.after {
		err = errStoreDown
	}
	return err
}

var errStoreDown = errors.New("the store is down")

// TestExportWithTheStoreDown: an export the store fails before any row is
// a 503 record_unavailable like any read, not a 200 with an error line;
// one that fails later ends with the error line.
func TestExportWithTheStoreDown(t *testing.T) {
	for _, after := range []int{0, 1} {
		app, rec, _ := routesAppOn(t, func(s Store) Store { return brokenExports{s, after} })
		t0 := time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)
		if err := rec.Record(context.Background(), []decision.Decision{sample("B-1", t0, true), sample("B-2", t0, true)}); err != nil {
			t.Fatal(err)
		}
		status, body, hdr := get(t, app, "GET", "/v1/decisions?from=2026-11-30T00:00:00Z&to=2026-12-01T00:00:00Z", "reader", "")
		lines := bytes.Split(bytes.TrimSpace(body), []byte("\n"))
		switch {
		case after == 0 && (status != 503 || !bytes.Contains(body, []byte(`"code":"record_unavailable"`)) || hdr.Get("Content-Type") != "application/json"):
			t.Errorf("export with the store down: %d %s: %s, want 503 record_unavailable", status, hdr.Get("Content-Type"), body)
		case after == 1 && (status != 200 || len(lines) != 2 || !bytes.Contains(lines[1], []byte(`"error"`))):
			t.Errorf("export with the store down after a row: %d: %s, want 200 and an error line", status, body)
		}
		// The error line is in the contract, so a generated client reads it.
		if err := schematest.OpenAPI(t).ValidateAnswer(schematest.Operation{Method: "GET", Path: "/v1/decisions"}, status, hdr, body); err != nil {
			t.Errorf("export with the store down after %d rows: %v", after, err)
		}
	}
}

// auditLines are the audit log's lines with message msg.
func auditLines(t *testing.T, audit *bytes.Buffer, msg string) []map[string]any {
	t.Helper()
	var out []map[string]any
	sc := bufio.NewScanner(bytes.NewReader(audit.Bytes()))
	for sc.Scan() {
		var line map[string]any
		if err := json.Unmarshal(sc.Bytes(), &line); err != nil {
			t.Fatalf("audit line %q: %v", sc.Text(), err)
		}
		if line["msg"] == msg {
			out = append(out, line)
		}
	}
	return out
}

// TestEveryReadNamesThePrincipal: listing the legal holds is an audit line,
// and a read the record fails (503) or refuses is logged naming who asked.
func TestEveryReadNamesThePrincipal(t *testing.T) {
	app, _, audit := routesAppOn(t, func(s Store) Store { return brokenExports{s, 0} })
	if status, body, _ := get(t, app, "GET", "/v1/legal-holds", "reader", ""); status != 200 {
		t.Fatalf("GET /v1/legal-holds = %d: %s", status, body)
	}
	if lines := auditLines(t, audit, "decision record legal holds read"); len(lines) != 1 || lines[0]["principal"] != "reader" || lines[0]["audit"] != true {
		t.Errorf("listing the legal holds: audit lines %v, want one naming the reader", lines)
	}
	ids := make([]string, 1)
	decision.NewIDs(ids, time.Now())
	for _, path := range []string{"/v1/decisions?from=2026-11-30T00:00:00Z&to=2026-12-01T00:00:00Z", "/v1/decisions/by-decision-id/" + ids[0]} {
		audit.Reset()
		if status, body, _ := get(t, app, "GET", path, "boss", ""); status != 503 {
			t.Fatalf("GET %s with the store down = %d: %s", path, status, body)
		}
		if lines := auditLines(t, audit, "decision record unavailable"); len(lines) != 1 || lines[0]["principal"] != "boss" {
			t.Errorf("GET %s with the store down: log lines %v, want one naming the principal", path, lines)
		}
	}
}

// TestLegalHoldReasonIsCountedInCharacters: the contract's maxLength 1000
// is characters, not bytes.
func TestLegalHoldReasonIsCountedInCharacters(t *testing.T) {
	app, rec, _ := routesApp(t)
	if err := rec.Record(context.Background(), []decision.Decision{sample("R-1", time.Now(), true)}); err != nil {
		t.Fatal(err)
	}
	for reason, want := range map[string]int{strings.Repeat("é", 600): 200, strings.Repeat("é", 1000): 200, strings.Repeat("é", 1001): 422} {
		body, _ := json.Marshal(map[string]string{"reason": reason})
		if status, got, _ := get(t, app, "PUT", "/v1/decisions/R-1/legal-hold", "boss", string(body)); status != want {
			t.Errorf("a reason of %d characters (%d bytes): %d %s, want %d", len([]rune(reason)), len(reason), status, got, want)
		}
		// Lifted, so the next reason is a hold of its own, not a second matter's.
		if status, got, _ := get(t, app, "DELETE", "/v1/decisions/R-1/legal-hold", "boss", ""); status != 200 {
			t.Fatalf("lift: %d %s", status, got)
		}
	}
}

// A reason is text for the audit trail: a control character (a NUL, which
// PostgreSQL cannot store and answered 503 record_unavailable for, or a
// terminal escape) is the request's fault, 422 on either backend; tabs and
// line breaks are text.
func TestLegalHoldReasonWithAControlCharacterIs422(t *testing.T) {
	app, _, audit := routesApp(t)
	for reason, want := range map[string]int{"case 2026-17\x00": 422, "case \x1b[2J2026-17": 422, "case \u009b2026-17": 422,
		"case 2026-17\r\n\tsee the file": 200} {
		body, _ := json.Marshal(map[string]string{"reason": reason})
		if status, got, _ := get(t, app, "PUT", "/v1/decisions/R-1/legal-hold", "boss", string(body)); status != want {
			t.Errorf("reason %q: %d %s, want %d", reason, status, got, want)
		}
	}
	if n := strings.Count(audit.String(), `"legal hold set"`); n != 1 {
		t.Errorf("%d holds audited as set, want 1:\n%s", n, audit.String())
	}
}
