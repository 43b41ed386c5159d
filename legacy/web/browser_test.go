package web_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"mlservice/internal/retry"
	"mlservice/internal/servetest"
	"mlservice/legacy/client"
	"mlservice/legacy/internal/browser"
	"mlservice/legacy/internal/legacytest"
	"mlservice/legacy/queue"
	"mlservice/legacy/web"
)

// form runs the loan officer's form in-process against the service at api,
// with its Retrier polling fast, until the test ends.
type form struct {
	URL   string
	Dir   string
	Queue *queue.Queue
}

func startForm(t *testing.T, api string) *form { return startFormAt(t, api, t.TempDir()) }

func startFormAt(t *testing.T, api, dir string) *form {
	t.Helper()
	q, err := queue.Open(dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	decider := &client.Client{BaseURL: api, HTTP: &http.Client{Timeout: 2 * time.Second}}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := web.New(web.Config{Queue: q, Decider: decider, Log: log, RefreshSeconds: 60})
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(ts.Close)
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan struct{})
	r := &queue.Retrier{Queue: q, Decider: decider, Log: log,
		Retry: retry.Policy{Initial: 100 * time.Millisecond, Max: 400 * time.Millisecond}, Interval: 100 * time.Millisecond}
	go func() { _ = r.Run(ctx); close(stopped) }()
	t.Cleanup(func() { cancel(); <-stopped })
	return &form{URL: ts.URL, Dir: dir, Queue: q}
}

func startBrowser(t *testing.T) *browser.Browser {
	t.Helper()
	if !browser.Available() {
		t.Fatal("chromium is not installed: run `make legacy-test-deps` (make test does)")
	}
	return browser.Start(t)
}

type figures map[string]string

var goodApplication = figures{"income": "50000", "credit_score": "700", "loan_amount": "20000", "years_employed": "5", "points": "60"}

func fillForm(b *browser.Browser, f figures) {
	for _, name := range []string{"application_id", "income", "credit_score", "loan_amount", "years_employed", "points"} {
		b.Fill("#"+name, f[name])
	}
}

func with(f figures, k, v string) figures {
	out := figures{}
	for a, b := range f {
		out[a] = b
	}
	out[k] = v
	return out
}

// decided waits for the application page to show a decision and returns it.
func decided(b *browser.Browser) string {
	var got string
	b.WaitFor("a decision", func() bool {
		got = b.Text("#decision")
		return got == "Approved" || got == "Declined"
	})
	return got
}

func TestFormDecides(t *testing.T) {
	svc := servetest.Start(t, servetest.Options{})
	f := startForm(t, svc.URL)
	b := startBrowser(t)
	art := legacytest.ArtifactDir(t)
	api := &client.Client{BaseURL: svc.URL, HTTP: &http.Client{Timeout: 5 * time.Second}}

	b.Open(f.URL)
	for id, label := range map[string]string{"application_id": "Reference", "income": "Annual income", "credit_score": "Credit score",
		"loan_amount": "Loan amount", "years_employed": "Years employed", "points": "Points"} {
		if got := b.LabelFor(id); !strings.HasPrefix(got, label) {
			t.Errorf("label for %s = %q, want it to start with %q", id, got, label)
		}
	}
	fillForm(b, with(goodApplication, "application_id", "T-1001"))
	b.Screenshot(filepath.Join(art, "form-filled.png"))
	b.Click("#submit")
	got := decided(b)

	want, err := api.Decide(context.Background(), application("T-1001", 50000, 700, 20000, 5, 60))
	if err != nil {
		t.Fatal(err)
	}
	if wantText := map[bool]string{true: "Approved", false: "Declined"}[want.Approve]; got != wantText {
		t.Errorf("decision %q, the service says %q", got, wantText)
	}
	if ref := b.Text("#reference"); ref != "T-1001" {
		t.Errorf("reference %q", ref)
	}
	if model := b.Text("#model"); !strings.Contains(model, "version "+want.Model.Version) || !strings.Contains(model, want.Model.Name) {
		t.Errorf("model %q, want %s version %s", model, want.Model.Name, want.Model.Version)
	}
	if id := b.Text("#decision-id"); id == "" {
		t.Error("the page shows no decision id")
	}
	b.Screenshot(filepath.Join(art, "form-decision.png"))
	page, err := url.Parse(b.URL()) // the page's address holds the application's key
	if err != nil {
		t.Fatal(err)
	}

	t.Run("generated reference", func(t *testing.T) {
		b.Open(f.URL)
		fillForm(b, goodApplication)
		b.Click("#submit")
		decided(b)
		if ref := b.Text("#reference"); !strings.HasPrefix(ref, "WEB-") {
			t.Errorf("generated reference %q", ref)
		}
	})

	t.Run("decision survives a restart", func(t *testing.T) {
		again := startFormAt(t, svc.URL, f.Dir) // a new process over the same queue
		b.Open(again.URL + page.RequestURI())
		if got2 := b.Text("#decision"); got2 != got {
			t.Errorf("after a restart the page says %q, want %q", got2, got)
		}
	})
}

func TestFormShowsServiceFieldMessages(t *testing.T) {
	svc := servetest.Start(t, servetest.Options{})
	f := startForm(t, svc.URL)
	b := startBrowser(t)
	api := &client.Client{BaseURL: svc.URL, HTTP: &http.Client{Timeout: 5 * time.Second}}

	// The service's own message for a too-low credit score, word for word.
	_, err := api.Decide(context.Background(), application("T-2001", 50000, 100, 20000, 5, 60))
	refusal := client.Refusal(err)
	if refusal == nil || refusal.Fields["credit_score"] == "" {
		t.Fatalf("expected a 422 naming credit_score, got %v", err)
	}

	b.Open(f.URL)
	fillForm(b, with(with(goodApplication, "credit_score", "100"), "application_id", "T-2001"))
	b.Fill("#income", "fifty thousand")
	b.Click("#submit")
	if got := b.Text("#income-error"); !strings.Contains(got, "must be a number") {
		t.Errorf("income message %q", got)
	}
	// Text that cannot be sent is caught first; fix it and the service speaks.
	b.Fill("#income", "50000")
	b.Click("#submit")
	if got := b.Text("#credit_score-error"); got != refusal.Fields["credit_score"] {
		t.Errorf("credit score message %q, the service says %q", got, refusal.Fields["credit_score"])
	}
	if got := b.Value("#credit_score"); got != "100" {
		t.Errorf("the officer's input was not kept: %q", got)
	}
	b.Fill("#points", "")
	b.Click("#submit")
	if got := b.Text("#points-error"); got != "is required" {
		t.Errorf("empty points message %q", got)
	}
	b.Screenshot(filepath.Join(legacytest.ArtifactDir(t), "form-invalid.png"))

	b.Fill("#credit_score", "700")
	b.Fill("#points", "60")
	b.Click("#submit")
	decided(b)
	if ref := b.Text("#reference"); ref != "T-2001" {
		t.Errorf("corrected application has reference %q", ref)
	}
}

func TestFormKeepsApplicationWhileServiceIsDown(t *testing.T) {
	apiAddr := servetest.FreeAddr(t) // nothing listens here yet
	f := startForm(t, "http://"+apiAddr)
	b := startBrowser(t)
	art := legacytest.ArtifactDir(t)

	b.Open(f.URL)
	fillForm(b, with(goodApplication, "application_id", "T-3001"))
	b.Click("#submit")
	if got := b.Text("#queued"); !strings.Contains(got, "is kept and will be decided") {
		t.Fatalf("queued message %q", got)
	}
	if got := b.Text("#reference"); got != "T-3001" {
		t.Errorf("reference %q", got)
	}
	b.Screenshot(filepath.Join(art, "form-queued.png"))
	waiting, err := f.Queue.Waiting()
	if err != nil || len(waiting) != 1 {
		t.Fatalf("queue holds %d applications (%v), want 1", len(waiting), err)
	}

	// The service comes up on the address the form was given.
	svc := servetest.Start(t, servetest.Options{Env: []string{"SERVE_ADDR=" + apiAddr}, NoWait: true})
	svc.URL = "http://" + apiAddr
	if err := svc.WaitReady(30 * time.Second); err != nil {
		t.Fatalf("service: %v\n%s", err, svc.Log.String())
	}
	b.WaitFor("the decision after the service returned", func() bool {
		b.Reload()
		got := b.Text("#decision")
		return got == "Approved" || got == "Declined"
	})
	if got := b.Text("#model"); !strings.Contains(got, "version") {
		t.Errorf("model %q", got)
	}
	b.Screenshot(filepath.Join(art, "form-decided-after-outage.png"))
	if waiting, _ := f.Queue.Waiting(); len(waiting) != 0 {
		t.Errorf("%d applications still queued", len(waiting))
	}
}

func application(id string, income, score, amount, years, points float64) client.Application {
	return client.Application{ApplicationID: id, Income: &income, CreditScore: &score, LoanAmount: &amount,
		YearsEmployed: &years, Points: &points}
}

// TestFormShowsReasonsAndWhatCannotBeDecided: in the browser, a decline's
// reasons in the service's order and words, its decision id; an application
// the service cannot decide says why; a page's address without its key
// shows nothing.
func TestFormShowsReasonsAndWhatCannotBeDecided(t *testing.T) {
	declines := httptest.NewServer(fixedService{200, `{"decision_id":"0193a1b2-7c3d-7e4f-8a5b-6c7d8e9f0a1b","approve":false,"probability":0.18,
		"model":{"name":"loan-approval","version":"3","variant":"champion","sha256":"ab12"},
		"reasons":[{"code":"LTI","feature":"loan_amount","text":"Loan is 40% of income or more (yours 40%)"},
		           {"code":"CS","feature":"credit_score","text":"Credit score below 620 (yours 580)"},
		           {"code":"YE","feature":"years_employed","text":"Less than 2 years in employment (yours 1)"}],"request_id":"r"}`})
	t.Cleanup(declines.Close)
	f := startForm(t, declines.URL)
	b := startBrowser(t)
	art := legacytest.ArtifactDir(t)

	b.Open(f.URL)
	fillForm(b, with(goodApplication, "application_id", "T-4001"))
	b.Click("#submit")
	if got := decided(b); got != "Declined" {
		t.Fatalf("decision %q", got)
	}
	if got := b.Text("#decision-id"); got != "0193a1b2-7c3d-7e4f-8a5b-6c7d8e9f0a1b" {
		t.Errorf("decision id %q", got)
	}
	for i, want := range []string{"Loan is 40% of income or more (yours 40%)", "Credit score below 620 (yours 580)", "Less than 2 years in employment (yours 1)"} {
		if got := b.Text(fmt.Sprintf("#reasons li:nth-child(%d)", i+1)); !strings.HasPrefix(got, want) {
			t.Errorf("reason %d: %q, want %q", i+1, got, want)
		}
	}
	b.Screenshot(filepath.Join(art, "form-declined-reasons.png"))
	page, _ := url.Parse(b.URL())
	b.Open(f.URL + page.Path) // the reference without the key
	if got := b.Text("h1"); got != "Application not found" || b.Text("#decision") != "" {
		t.Errorf("without the key the page shows %q / %q", got, b.Text("#decision"))
	}

	undecidable := httptest.NewServer(fixedService{422, `{"error":{"code":"undecidable","message":"the model gave no finite score for this application; it cannot be decided automatically"},"request_id":"r"}`})
	t.Cleanup(undecidable.Close)
	g := startForm(t, undecidable.URL)
	b.Open(g.URL)
	fillForm(b, with(goodApplication, "application_id", "T-4002"))
	b.Click("#submit")
	if got := b.Text("#decision"); got != "Not decided" {
		t.Errorf("decision %q", got)
	}
	if got := b.Text("#failure"); !strings.Contains(got, "undecidable") || !strings.Contains(got, "no finite score") {
		t.Errorf("failure %q", got)
	}
	b.Screenshot(filepath.Join(art, "form-undecidable.png"))
}

// TestFormShowsTheServiceReasons: against the real server, a declined
// application's page lists the reasons the service gave, word for word and
// in its order, with the decision id.
func TestFormShowsTheServiceReasons(t *testing.T) {
	svc := servetest.Start(t, servetest.Options{})
	api := &client.Client{BaseURL: svc.URL, HTTP: &http.Client{Timeout: 5 * time.Second}}
	weak := figures{"application_id": "T-5001", "income": "18000", "credit_score": "420", "loan_amount": "60000", "years_employed": "0", "points": "10"}
	want, err := api.Decide(context.Background(), application("T-5001-check", 18000, 420, 60000, 0, 10))
	if err != nil {
		t.Fatal(err)
	}
	if want.Approve || len(want.Reasons) == 0 {
		t.Fatalf("the service's champion (version %s) gave approve=%v with %d reasons; a decline with reasons was expected",
			want.Model.Version, want.Approve, len(want.Reasons))
	}
	f := startForm(t, svc.URL)
	b := startBrowser(t)
	b.Open(f.URL)
	fillForm(b, weak)
	b.Click("#submit")
	if got := decided(b); got != "Declined" {
		t.Fatalf("decision %q", got)
	}
	if b.Text("#decision-id") == "" {
		t.Error("no decision id")
	}
	for i, r := range want.Reasons {
		if got := b.Text(fmt.Sprintf("#reasons li:nth-child(%d)", i+1)); !strings.HasPrefix(got, r.Text) || !strings.Contains(got, "code "+r.Code) {
			t.Errorf("reason %d: %q, the service says %q (%s)", i+1, got, r.Text, r.Code)
		}
	}
	if got := b.Text(fmt.Sprintf("#reasons li:nth-child(%d)", len(want.Reasons)+1)); got != "" {
		t.Errorf("more reasons on the page than the service gave: %q", got)
	}
	b.Screenshot(filepath.Join(legacytest.ArtifactDir(t), "form-declined-service-reasons.png"))
}
