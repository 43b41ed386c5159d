package admin

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"

	"mlservice/registry"
	"mlservice/serve/api"
	"mlservice/serve/auth"
	"mlservice/serve/metrics"
	"mlservice/serve/rollout"
	"mlservice/serve/routing"
)

const testToken = "handler-test-token-0123456789"

// stuckController is a controller whose actions wait until release is
// closed (a load that hangs) or fail with err.
type stuckController struct {
	release  chan struct{}
	err      error
	calls    chan string
	champion string         // Desired's champion; "2" when empty
	change   rollout.Change // what an action answers
}

func (s *stuckController) Status() rollout.Status {
	return rollout.Status{Ready: true, Source: "mlflow"}
}
func (s *stuckController) Desired() rollout.Desired {
	champion := s.champion
	if champion == "" {
		champion = "2"
	}
	return rollout.Desired{Champion: champion, Weights: routing.ChampionOnly()}
}
func (s *stuckController) wait(ctx context.Context, call string) (rollout.Change, error) {
	s.calls <- call
	select {
	case <-s.release:
	case <-ctx.Done():
		return rollout.Change{}, ctx.Err()
	}
	return s.change, s.err
}
func (s *stuckController) Promote(ctx context.Context, alias, version string) (rollout.Change, error) {
	return s.wait(ctx, "promote "+alias+" "+version)
}
func (s *stuckController) Rollback(ctx context.Context) (rollout.Change, error) {
	return s.wait(ctx, "rollback")
}
func (s *stuckController) Retire(ctx context.Context, alias string) (rollout.Change, error) {
	return s.wait(ctx, "retire "+alias)
}
func (s *stuckController) SetWeights(ctx context.Context, w routing.Weights) (rollout.Change, error) {
	return s.wait(ctx, "traffic")
}

// otherModel is the fixture's second served model.
const otherModel = "credit-line-scorer"

type fixture struct {
	app   *fiber.App
	ctrl  *stuckController // the loan model's, the default
	other *stuckController // otherModel's
	audit *bytes.Buffer
}

func newFixture(t *testing.T, timeout time.Duration) *fixture {
	t.Helper()
	f := &fixture{ctrl: &stuckController{release: make(chan struct{}), calls: make(chan string, 10)},
		other: &stuckController{release: make(chan struct{}), calls: make(chan string, 10), champion: "1"}, audit: &bytes.Buffer{}}
	tokens, err := auth.New(nil, testToken)
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	log := slog.New(slog.NewJSONHandler(f.audit, nil))
	f.app = fiber.New(fiber.Config{ErrorHandler: api.ErrorHandler(log)})
	Mount(f.app, Config{Auth: auth.NewAuthenticator(auth.Config{Tokens: tokens, Registerer: reg, Audit: log}),
		Models: []Model{{Name: "loan-approval", Controller: f.ctrl, Router: &routing.Router{}},
			{Name: otherModel, Controller: f.other, Router: &routing.Router{}}},
		Metrics: metrics.New(reg), Audit: log, Timeout: timeout})
	return f
}

func (f *fixture) do(t *testing.T, method, path, contentType, body string, headers ...string) (int, map[string]any) {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.Header.Set("Authorization", "bearer "+testToken) // the scheme is case-insensitive
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := f.app.Test(req, 10_000)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	var out map[string]any
	_ = json.Unmarshal(raw, &out)
	return resp.StatusCode, out
}

// Issue 13 item 2, issue 12 item 8: GET /admin/models answers at once while
// an action waits on a load.
func TestModelsAnswersWhileAnActionWaits(t *testing.T) {
	f := newFixture(t, 5*time.Second)
	done := make(chan int)
	go func() {
		status, _ := f.do(t, "POST", "/admin/promote", "application/json", `{"version":"3"}`)
		done <- status
	}()
	<-f.ctrl.calls
	start := time.Now()
	status, out := f.do(t, "GET", "/admin/models", "", "")
	if took := time.Since(start); status != 200 || took > 500*time.Millisecond {
		t.Fatalf("GET /admin/models during a stalled action: %d after %v", status, took)
	}
	if out["desired"].(map[string]any)["champion"] != "2" {
		t.Fatalf("models: %v", out)
	}
	close(f.ctrl.release)
	if status := <-done; status != 200 {
		t.Fatalf("promote: %d", status)
	}
}

// Issue 12 item 8: an action that runs out of time is a 503, not a 500.
func TestTimeoutIs503(t *testing.T) {
	f := newFixture(t, 100*time.Millisecond)
	status, out := f.do(t, "POST", "/admin/rollback", "", "")
	if status != 503 || out["error"].(map[string]any)["code"] != api.CodeNotReady {
		t.Fatalf("timed-out action: %d %v", status, out)
	}
	for _, err := range []error{registry.ErrUnavailable, context.DeadlineExceeded} {
		var e *api.Error
		if !errors.As(toAPIError(err), &e) || e.Status != 503 {
			t.Errorf("%v maps to %v", err, toAPIError(err))
		}
	}
}

// Issue 12 item 15: exactly one JSON value, sent as application/json.
func TestStrictBodies(t *testing.T) {
	f := newFixture(t, time.Second)
	close(f.ctrl.release)
	tests := []struct {
		name, contentType, body string
		status                  int
	}{
		{"trailing garbage", "application/json", `{"version":"1"} garbage`, 400},
		{"two values", "application/json", `{"version":"1"}{"version":"2"}`, 400},
		{"trailing bracket", "application/json", `{"version":"1"}]`, 400},
		{"jsonp", "application/jsonp", `{"version":"1"}`, 415},
		{"json-seq", "application/json-seq", `{"version":"1"}`, 415},
		{"no type", "", `{"version":"1"}`, 415},
		{"charset", "application/json; charset=utf-8", `{"version":"1"}`, 200},
		{"trailing whitespace", "application/json", "{\"version\":\"1\"}\n  \n", 200},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if status, out := f.do(t, "POST", "/admin/promote", tc.contentType, tc.body); status != tc.status {
				t.Fatalf("%d %v, want %d", status, out, tc.status)
			}
		})
	}
}

// Issue 12 item 14: a failed action's audit line has its parameters, the
// principal, the server's request id and the client's as a separate field.
func TestFailedActionAuditLine(t *testing.T) {
	f := newFixture(t, time.Second)
	f.ctrl.err = &rollout.VerifyError{Err: errors.New("serving_check: case 3")}
	close(f.ctrl.release)
	status, _ := f.do(t, "POST", "/admin/promote", "application/json", `{"alias":"challenger","version":"7"}`, "X-Request-ID", "ops-laptop-1")
	if status != 409 {
		t.Fatalf("status %d", status)
	}
	var line map[string]any
	for _, l := range strings.Split(f.audit.String(), "\n") {
		if strings.Contains(l, `"msg":"admin action"`) {
			_ = json.Unmarshal([]byte(l), &line)
		}
	}
	if line == nil || line["result"] != "failure" || line["alias"] != "challenger" || line["version"] != "7" ||
		line["principal"] != "admin" || line["client_request_id"] != "ops-laptop-1" ||
		line["request_id"] == "ops-laptop-1" || line["request_id"] == "" || line["error"] == nil {
		t.Fatalf("audit line %v in\n%s", line, f.audit.String())
	}
	// A body that does not decode is audited with what was sent.
	f.audit.Reset()
	f.do(t, "POST", "/admin/promote", "application/json", `{"version":`)
	if !strings.Contains(f.audit.String(), `"body":"{\"version\":"`) {
		t.Fatalf("undecodable body not audited: %s", f.audit.String())
	}
}

// An action whose change stands but whose sync after it could not load
// every variant says so, in the answer and in the audit line: its after is
// what the registry asks for, not what serves.
func TestActionWarningIsAnsweredAndAudited(t *testing.T) {
	f := newFixture(t, time.Second)
	const warning = "challenger version 2: the version failed verification"
	before := rollout.Desired{Champion: "3", Challenger: "2", Weights: routing.Weights{Champion: 50, Challenger: 50}}
	after := before
	after.Shadow = "4"
	f.ctrl.change = rollout.Change{Before: before, After: after, Warning: warning}
	close(f.ctrl.release)
	status, out := f.do(t, "POST", "/admin/promote", "application/json", `{"alias":"shadow","version":"4"}`)
	if status != 200 || out["warning"] != warning {
		t.Fatalf("%d %v, want 200 with the warning %q", status, out, warning)
	}
	if !strings.Contains(f.audit.String(), `"warning":"`+warning+`"`) {
		t.Fatalf("the audit line has no warning:\n%s", f.audit.String())
	}
}

// A traffic split damaged outside /admin is a conflict with the registry
// that PUT /admin/traffic repairs, not an internal error.
func TestDamagedSplitIs409(t *testing.T) {
	f := newFixture(t, time.Second)
	f.ctrl.err = fmt.Errorf("%w: tag serve.traffic: routing: weights must be 0-100 and sum to 100; set the split first", rollout.ErrBadTraffic)
	close(f.ctrl.release)
	if status, out := f.do(t, "POST", "/admin/rollback", "", ""); status != 409 {
		t.Fatalf("%d %v, want 409", status, out)
	}
}

// What a request chooses is bounded in its answer and its audit line: a
// version of megabytes is not a version, and it is not logged in full.
func TestHugeVersionIsBoundedInTheAnswerAndTheAuditLine(t *testing.T) {
	f := newFixture(t, time.Second)
	close(f.ctrl.release)
	f.ctrl.err = fmt.Errorf("%w: loan-approval has no version %q", rollout.ErrUnknownVersion, strings.Repeat("x", 100_000))
	status, out := f.do(t, "POST", "/admin/promote", "application/json", `{"version":"`+strings.Repeat("x", 100_000)+`"}`)
	answer, _ := json.Marshal(out)
	if status != 422 || len(answer) > 2048 {
		t.Errorf("%d, an answer of %d bytes", status, len(answer))
	}
	if n := f.audit.Len(); n > 4096 {
		t.Errorf("an audit line of %d bytes", n)
	}
}

// Each served model has its own /admin: ?model= names it, the first is the
// default, and an unknown name is 404 (audited, nothing called).
func TestActionsGoToTheNamedModel(t *testing.T) {
	f := newFixture(t, time.Second)
	close(f.ctrl.release)
	close(f.other.release)
	for _, tc := range []struct {
		method, path, body string
		ctrl               *stuckController
		call, model        string
	}{
		{"POST", "/admin/promote", `{"version":"3"}`, f.ctrl, "promote champion 3", "loan-approval"},
		{"POST", "/admin/promote?model=loan-approval", `{"version":"3"}`, f.ctrl, "promote champion 3", "loan-approval"},
		{"POST", "/admin/promote?model=" + otherModel, `{"alias":"challenger","version":"2"}`, f.other, "promote challenger 2", otherModel},
		{"POST", "/admin/rollback?model=" + otherModel, "", f.other, "rollback", otherModel},
		{"POST", "/admin/retire?model=" + otherModel, `{"alias":"shadow"}`, f.other, "retire shadow", otherModel},
		{"PUT", "/admin/traffic?model=" + otherModel, `{"champion":90,"challenger":10}`, f.other, "traffic", otherModel},
	} {
		f.audit.Reset()
		contentType := ""
		if tc.body != "" {
			contentType = "application/json"
		}
		status, out := f.do(t, tc.method, tc.path, contentType, tc.body)
		if status != 200 || out["model"] != tc.model {
			t.Fatalf("%s %s: %d %v", tc.method, tc.path, status, out)
		}
		select {
		case call := <-tc.ctrl.calls:
			if call != tc.call {
				t.Fatalf("%s %s: the controller got %q, want %q", tc.method, tc.path, call, tc.call)
			}
		default:
			t.Fatalf("%s %s: the %s controller was not called", tc.method, tc.path, tc.model)
		}
		if !strings.Contains(f.audit.String(), `"model":"`+tc.model+`"`) {
			t.Fatalf("%s %s: audit line without the model: %s", tc.method, tc.path, f.audit.String())
		}
	}
	if len(f.ctrl.calls)+len(f.other.calls) != 0 {
		t.Fatalf("a controller was called twice")
	}

	// Reads: each model's own state, and the list of served models.
	for _, tc := range []struct{ path, model, champion string }{
		{"/admin/models", "loan-approval", "2"}, {"/admin/models?model=" + otherModel, otherModel, "1"},
	} {
		status, out := f.do(t, "GET", tc.path, "", "")
		if status != 200 || out["model"] != tc.model || out["desired"].(map[string]any)["champion"] != tc.champion ||
			len(out["models"].([]any)) != 2 {
			t.Fatalf("GET %s: %d %v", tc.path, status, out)
		}
	}

	// An unknown model: 404 naming the served ones, audited as a failure.
	f.audit.Reset()
	status, out := f.do(t, "POST", "/admin/promote?model=nope", "application/json", `{"version":"1"}`)
	msg, _ := out["error"].(map[string]any)["message"].(string)
	if status != 404 || out["error"].(map[string]any)["code"] != api.CodeNotFound || !strings.Contains(msg, otherModel) {
		t.Fatalf("unknown model: %d %v", status, out)
	}
	if !strings.Contains(f.audit.String(), `"model":"nope"`) || !strings.Contains(f.audit.String(), `"result":"failure"`) {
		t.Fatalf("unknown model not audited: %s", f.audit.String())
	}
	if status, _ := f.do(t, "GET", "/admin/models?model=nope", "", ""); status != 404 {
		t.Fatalf("GET unknown model: %d", status)
	}
	if len(f.ctrl.calls)+len(f.other.calls) != 0 {
		t.Fatalf("a controller was called for an unknown model")
	}
}
