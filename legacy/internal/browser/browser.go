// Package browser drives Debian's headless Chromium over the DevTools
// protocol (github.com/chromedp/chromedp; no chromedriver), for end-to-end
// tests of the loan officer's form as an officer would use it. It is a test
// helper: every call fails the test on error, and the browser it starts is
// stopped when the test ends.
package browser

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// chromiumPath is where Debian's package chromium puts the browser.
const chromiumPath = "/usr/bin/chromium"

// Browser is one Chromium with one tab.
type Browser struct {
	t       testing.TB
	ctx     context.Context // the tab's context; a step gets a deadline below it
	timeout time.Duration
	log     *bytes.Buffer // Chromium's own output, shown when it fails to start
}

// Available reports whether Chromium is installed.
func Available() bool {
	_, err := os.Stat(chromiumPath)
	return err == nil
}

// Start runs a headless Chromium with a fresh profile, with the flags that
// keep it off the network (this machine's network is closed: without them it
// tries Google's hosts at every start).
func Start(t testing.TB) *Browser {
	t.Helper()
	var log bytes.Buffer
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(chromiumPath),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(900, 1000),
		chromedp.CombinedOutput(&log),
	}
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelTab := chromedp.NewContext(actx)
	t.Cleanup(func() {
		// Closes the browser gracefully, then kills it; waits for the process.
		_ = chromedp.Cancel(ctx)
		cancelTab()
		cancelAlloc()
	})
	b := &Browser{t: t, ctx: ctx, timeout: 20 * time.Second, log: &log}
	// The first Run starts the browser; it must not carry a deadline, which
	// would stop the whole browser when it passes.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v\n%s", err, log.String())
	}
	return b
}

// do runs steps within the browser's timeout.
func (b *Browser) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	run(b, what, chromedp.Steps(steps...))
}

// run runs one action within the browser's timeout and returns its value.
func run[T any](b *Browser, what string, a chromedp.Action[T]) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, b.timeout)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		b.t.Fatalf("browser: %s: %v", what, err)
	}
	return v
}

// eval runs JavaScript in the page and returns its value.
func eval[T any](b *Browser, js string) T {
	b.t.Helper()
	return run(b, "evaluate "+js, chromedp.Evaluate[T](js))
}

// Open loads url and waits for the page to load.
func (b *Browser) Open(url string) {
	b.t.Helper()
	b.do("open "+url, chromedp.Navigate(url))
}

// Reload reloads the current page, as the officer would.
func (b *Browser) Reload() {
	b.t.Helper()
	b.do("reload", chromedp.Reload())
}

// URL is the current page's address.
func (b *Browser) URL() string {
	b.t.Helper()
	return eval[string](b, `document.location.toString()`)
}

// exists reports whether the page has an element the CSS selector names,
// without waiting for one to appear.
func (b *Browser) exists(css string) bool {
	b.t.Helper()
	q, _ := json.Marshal(css) // a JSON string is a JavaScript string literal
	return eval[bool](b, `document.querySelector(`+string(q)+`) !== null`)
}

// Fill clears the input the CSS selector names and types text into it.
func (b *Browser) Fill(css, text string) {
	b.t.Helper()
	b.must(css)
	steps := []chromedp.Action[chromedp.Void]{chromedp.Clear(chromedp.CSS(css))}
	if text != "" {
		steps = append(steps, chromedp.SendKeys(chromedp.CSS(css), text))
	}
	b.do("fill "+css, steps...)
}

// Click clicks the element, which submits a form or follows a link, and
// waits for the next page: the click returns before the old page is gone,
// and reading it then would see the old page's text.
func (b *Browser) Click(css string) {
	b.t.Helper()
	b.must(css)
	eval[bool](b, `window.__leaving = true`)
	b.do("click "+css, chromedp.Click(chromedp.CSS(css)))
	b.WaitFor("the next page after clicking "+css, func() bool {
		return eval[bool](b, `window.__leaving !== true && document.readyState === "complete"`)
	})
}

// Text returns the element's visible text, or "" when there is none.
func (b *Browser) Text(css string) string {
	b.t.Helper()
	if !b.exists(css) {
		return ""
	}
	return run(b, "text of "+css, chromedp.Text(chromedp.CSS(css)))
}

// Value returns an input's current value.
func (b *Browser) Value(css string) string {
	b.t.Helper()
	b.must(css)
	return run(b, "value of "+css, chromedp.Value(chromedp.CSS(css)))
}

// LabelFor returns the text of the <label> of the input with this id.
func (b *Browser) LabelFor(id string) string {
	b.t.Helper()
	return b.Text(`label[for="` + id + `"]`)
}

// Screenshot saves the visible page as a PNG file.
func (b *Browser) Screenshot(path string) {
	b.t.Helper()
	png := run(b, "screenshot", chromedp.CaptureScreenshot())
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// must fails the test at once when the page has no such element, rather
// than waiting for one to appear.
func (b *Browser) must(css string) {
	b.t.Helper()
	if !b.exists(css) {
		b.t.Fatalf("no element %q on %s", css, b.URL())
	}
}

// WaitFor polls cond until it holds or the browser's timeout passes.
func (b *Browser) WaitFor(what string, cond func() bool) {
	b.t.Helper()
	deadline := time.Now().Add(b.timeout)
	for !cond() {
		if time.Now().After(deadline) {
			b.t.Fatalf("timed out waiting for %s (page %s)", what, b.URL())
		}
		time.Sleep(100 * time.Millisecond)
	}
}
