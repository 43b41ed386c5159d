package api_test

import (
	"context"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"mlservice/internal/servetest"
)

// TestDocsTryItOut opens /docs of the real server in Chromium (headless,
// Debian's package; make test installs it), expands POST /v1/predict, presses
// "Try it out" and "Execute" with the contract's example, and reads the
// decision Swagger UI shows.
func TestDocsTryItOut(t *testing.T) {
	chromium := chromiumPath(t)
	srv := servetest.Start(t, servetest.Options{})

	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromium),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1200, 1000),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	bctx, cancelTab := chromedp.NewContext(actx)
	defer func() {
		_ = chromedp.Cancel(bctx)
		cancelTab()
	}()

	const op = "#operations-decisions-predict"
	// The first action starts the browser, without a deadline (one would
	// stop the whole browser when it passed).
	if err := chromedp.Do(bctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	ctx, cancel := context.WithTimeout(bctx, 90*time.Second)
	defer cancel()
	step := func(what string, actions ...chromedp.Action[chromedp.Void]) {
		t.Helper()
		if err := chromedp.Do(ctx, actions...); err != nil {
			t.Fatalf("Swagger UI: %s: %v", what, err)
		}
	}
	text := func(css string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(css)))
		if err != nil {
			t.Fatalf("Swagger UI: text of %s: %v", css, err)
		}
		return s
	}
	step("open /docs", chromedp.Navigate(srv.URL+"/docs"), chromedp.WaitVisible(chromedp.CSS(op)))
	title := text(".information-container .title")
	for _, path := range []string{"/v2/models/{model_name}/infer", "/admin/promote", "/v1/decisions/{application_id}", "/v1/outcomes"} {
		shown, err := chromedp.Run(ctx, chromedp.Evaluate[bool](
			`[...document.querySelectorAll(".opblock-summary-path")].some(e => e.textContent.replace(/\u200b/g, "") === "`+path+`")`))
		if err != nil || !shown {
			t.Errorf("/docs does not list %s (%v)", path, err)
		}
	}
	step("expand POST /v1/predict", chromedp.Click(chromedp.CSS(op+" .opblock-summary-control")),
		chromedp.WaitVisible(chromedp.CSS(op+" .try-out__btn")))
	step("Try it out", chromedp.Click(chromedp.CSS(op+" .try-out__btn")), chromedp.WaitVisible(chromedp.CSS(op+" .execute")))
	step("Execute", chromedp.Click(chromedp.CSS(op+" .execute")),
		chromedp.WaitVisible(chromedp.CSS(op+" .live-responses-table tbody .response-col_status")))
	status := text(op + " .live-responses-table tbody .response-col_status")
	body := text(op + " .live-responses-table tbody .response-col_description")

	// And the Open Inference Protocol's infer, with its example tensors.
	const infer = "#operations-open_inference_protocol-oipInfer"
	step("expand POST /v2/models/{model_name}/infer", chromedp.Click(chromedp.CSS(infer+" .opblock-summary-control")),
		chromedp.WaitVisible(chromedp.CSS(infer+" .try-out__btn")))
	step("Try it out (v2)", chromedp.Click(chromedp.CSS(infer+" .try-out__btn")), chromedp.WaitVisible(chromedp.CSS(infer+" .execute")))
	step("Execute (v2)", chromedp.Click(chromedp.CSS(infer+" .execute")),
		chromedp.WaitVisible(chromedp.CSS(infer+" .live-responses-table tbody .response-col_status")))
	v2Status := text(infer + " .live-responses-table tbody .response-col_status")
	v2Body := text(infer + " .live-responses-table tbody .response-col_description")
	if strings.TrimSpace(v2Status) != "200" || !strings.Contains(v2Body, `"model_version"`) || !strings.Contains(v2Body, `"probability"`) {
		t.Errorf("Try it out on /v2 infer answered %q: %s", v2Status, v2Body)
	}
	if !strings.Contains(title, "ML Service") {
		t.Errorf("title %q", title)
	}
	if strings.TrimSpace(status) != "200" || !strings.Contains(body, `"approve"`) || !strings.Contains(body, `"probability"`) ||
		!strings.Contains(body, `"application_id": "A-1001"`) {
		t.Fatalf("Try it out answered %q: %s", status, body)
	}
}

// chromiumPath finds Debian's chromium (make test installs it).
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{os.Getenv("CHROMIUM"), "chromium", "chromium-browser"} {
		if name == "" {
			continue
		}
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("no chromium on PATH: make test installs it (legacy-test-deps)")
	return ""
}
