package outcomes

import (
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"

	"mlservice/serve/api"
)

// fakeStore is the record as outcomes see it: decisions by application.
type fakeStore struct {
	mu        sync.Mutex
	decisions map[string][]Joined
	outcomes  map[string]bool
	down      bool
}

func (f *fakeStore) PutOutcome(_ context.Context, o Outcome) ([]Joined, bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return nil, false, io.ErrUnexpectedEOF
	}
	d, ok := f.decisions[o.ApplicationID]
	if !ok {
		return nil, false, ErrUnknownApplication
	}
	_, had := f.outcomes[o.ApplicationID]
	f.outcomes[o.ApplicationID] = o.Approved
	return d, !had, nil
}

func (f *fakeStore) Arms(context.Context, string) ([]Arm, error) { return nil, nil }

func newApp(t *testing.T, store Store, reg prometheus.Registerer) *fiber.App {
	t.Helper()
	app := fiber.New(fiber.Config{ErrorHandler: api.ErrorHandler(nil)})
	h := &Handler{Store: store, Metrics: NewMetrics(reg)}
	h.Mount(app, func(c *fiber.Ctx) error { return c.Next() })
	return app
}

func post(t *testing.T, app *fiber.App, body string) (int, string) {
	t.Helper()
	req := httptest.NewRequest(http.MethodPost, "/v1/outcomes", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := app.Test(req, -1)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func counter(t *testing.T, reg *prometheus.Registry, labels map[string]string) float64 {
	t.Helper()
	mfs, _ := reg.Gather()
	total := 0.0
	for _, mf := range mfs {
		if mf.GetName() != "model_outcomes_total" {
			continue
		}
	next:
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if want, ok := labels[l.GetName()]; ok && want != l.GetValue() {
					continue next
				}
			}
			total += m.GetCounter().GetValue()
		}
	}
	return total
}

func TestOutcomesCountedPerVersionOnce(t *testing.T) {
	store := &fakeStore{outcomes: map[string]bool{}, decisions: map[string][]Joined{
		"A-1": {{Model: "loan-approval", Version: "3", Variant: "champion", Served: true, Approve: true},
			{Model: "loan-approval", Version: "4", Variant: "shadow", Approve: false}},
		"A-2": {{Model: "loan-approval", Version: "5", Variant: "challenger", Served: true, Approve: false}},
	}}
	reg := prometheus.NewRegistry()
	app := newApp(t, store, reg)

	if code, body := post(t, app, `{"application_id":"A-1","approved":true}`); code != 200 || !strings.Contains(body, `"decisions":2`) {
		t.Fatalf("first outcome: %d %s", code, body)
	}
	// The bank changes its mind: the latest wins in the record, the count stays one.
	if code, body := post(t, app, `{"application_id":"A-1","approved":false}`); code != 200 {
		t.Fatalf("repeated outcome: %d %s", code, body)
	}
	if store.outcomes["A-1"] != false {
		t.Error("the latest outcome must win")
	}
	if got := counter(t, reg, map[string]string{"version": "3", "agree": "true"}); got != 1 {
		t.Errorf("champion v3 agreeing = %g, want 1 (counted once, at the first outcome)", got)
	}
	if got := counter(t, reg, map[string]string{"version": "4", "variant": "shadow", "agree": "false"}); got != 1 {
		t.Errorf("shadow v4 disagreeing = %g, want 1", got)
	}
	if got := counter(t, reg, nil); got != 2 {
		t.Errorf("all outcomes counted = %g, want 2", got)
	}

	code, body := post(t, app, `{"outcomes":[{"application_id":"A-2","approved":false},{"application_id":"nobody","approved":true},{"application_id":"A-3"}]}`)
	if code != 200 || !strings.Contains(body, `"recorded":1`) || !strings.Contains(body, `"rejected":2`) ||
		!strings.Contains(body, `"code":"not_found"`) || !strings.Contains(body, `"approved":"is required`) {
		t.Fatalf("batch: %d %s", code, body)
	}
	if got := counter(t, reg, map[string]string{"version": "5", "variant": "challenger", "agree": "true"}); got != 1 {
		t.Errorf("challenger v5 agreeing = %g, want 1", got)
	}
}

func TestOutcomesRefuseBadInput(t *testing.T) {
	store := &fakeStore{outcomes: map[string]bool{}, decisions: map[string][]Joined{"A-1": {{Model: "m", Version: "1", Variant: "champion", Served: true}}}}
	app := newApp(t, store, prometheus.NewRegistry())
	for name, tc := range map[string]struct {
		body string
		code int
		want string
	}{
		"unknown application": {`{"application_id":"A-9","approved":true}`, 404, `"not_found"`},
		"not json":            {`{"application_id":`, 400, `"malformed_json"`},
		"trailing garbage":    {`{"application_id":"A-1","approved":true}}`, 400, `"malformed_json"`},
		"wrong type":          {`{"application_id":"A-1","approved":"yes"}`, 422, `"validation_failed"`},
		"unknown field":       {`{"application_id":"A-1","approved":true,"note":"x"}`, 422, `"validation_failed"`},
		"missing approved":    {`{"application_id":"A-1"}`, 422, `"approved":"is required`},
		"bad id":              {`{"application_id":"A-1\u0000; DROP","approved":true}`, 422, `"application_id"`},
		"a key twice":         {`{"application_id":"A-1","approved":true,"approved":false}`, 422, `"approved":"duplicate field"`},
		"a key in other case": {`{"application_id":"A-1","Approved":false}`, 422, `"Approved":"unknown field"`},
		"unknown field named": {`{"application_id":"A-1","approved":true,"colour":1}`, 422, `"colour":"unknown field"`},
		"wrong type named":    {`{"application_id":"A-1","approved":"no"}`, 422, `"approved":"must be true or false"`},
		"one item a key twice": {`{"outcomes":[{"application_id":"A-1","approved":true},{"application_id":"A-1","approved":true,"approved":false}]}`,
			200, `"rejected":1`},
		"empty batch":     {`{"outcomes":[]}`, 422, `"outcomes"`},
		"batch not array": {`{"outcomes":{}}`, 422, `"outcomes"`},
		"too large":       {`{"outcomes":[` + strings.Repeat(`{"application_id":"A-1","approved":true},`, 60000) + `{}]}`, 413, `"body_too_large"`},
	} {
		t.Run(name, func(t *testing.T) {
			code, body := post(t, app, tc.body)
			if code != tc.code || !strings.Contains(body, tc.want) {
				t.Fatalf("got %d %s, want %d with %s", code, body, tc.code, tc.want)
			}
		})
	}
	store.down = true
	if code, body := post(t, app, `{"application_id":"A-1","approved":true}`); code != 503 || !strings.Contains(body, "record_unavailable") {
		t.Fatalf("store down: %d %s, want 503 record_unavailable", code, body)
	}
}

// Outcomes change what the record reports: sent as anything but JSON they
// are refused (415), as /admin's and the legal hold's bodies are.
func TestOutcomesMustBeJSON(t *testing.T) {
	store := &fakeStore{outcomes: map[string]bool{}, decisions: map[string][]Joined{"A-1": {{Model: "m", Version: "1", Variant: "champion", Served: true}}}}
	app := newApp(t, store, prometheus.NewRegistry())
	req := httptest.NewRequest(http.MethodPost, "/v1/outcomes", strings.NewReader(`{"application_id":"A-1","approved":false}`))
	req.Header.Set("Content-Type", "text/plain")
	resp, err := app.Test(req, -1)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusUnsupportedMediaType || len(store.outcomes) != 0 {
		t.Fatalf("text/plain = %d, %d outcomes recorded", resp.StatusCode, len(store.outcomes))
	}
}
