// Package webdriver drives Debian's headless Chromium through chromedriver's
// W3C WebDriver HTTP API, for end-to-end tests of the loan officer's form
// as an officer would use it. It is a test helper: every call fails the
// test on error, and everything it starts is stopped when the test ends.
package webdriver

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Browser is one Chromium session.
type Browser struct {
	t       testing.TB
	base    string // chromedriver's URL + /session/<id>
	http    *http.Client
	timeout time.Duration
}

// Paths of Debian's packages chromium and chromium-driver.
const (
	chromiumPath     = "/usr/bin/chromium"
	chromedriverPath = "/usr/bin/chromedriver"
)

// Available reports whether Chromium and chromedriver are installed.
func Available() bool {
	for _, p := range []string{chromiumPath, chromedriverPath} {
		if _, err := os.Stat(p); err != nil {
			return false
		}
	}
	return true
}

// Start runs chromedriver on a free loopback port and opens a headless
// Chromium session with a fresh profile.
func Start(t testing.TB) *Browser {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	ln.Close()
	cmd := exec.Command(chromedriverPath, fmt.Sprintf("--port=%d", port), "--allowed-ips=127.0.0.1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var log bytes.Buffer
	cmd.Stdout, cmd.Stderr = &log, &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// chromedriver and the Chromium it started share the group.
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		done := make(chan struct{})
		go func() { _ = cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	})
	driver := fmt.Sprintf("http://127.0.0.1:%d", port)
	b := &Browser{t: t, http: &http.Client{Timeout: 60 * time.Second}, timeout: 20 * time.Second}
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := b.http.Get(driver + "/status")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("chromedriver did not start: %v\n%s", err, log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	caps := map[string]any{"capabilities": map[string]any{"alwaysMatch": map[string]any{
		"browserName": "chrome",
		"goog:chromeOptions": map[string]any{
			"binary": chromiumPath,
			"args": []string{"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
				"--disable-background-networking", "--disable-component-update", "--disable-sync",
				"--disable-dev-shm-usage", "--window-size=900,1000", "--user-data-dir=" + t.TempDir()},
		},
	}}}
	var session struct {
		SessionID string `json:"sessionId"`
	}
	b.base = driver
	b.call(http.MethodPost, "/session", caps, &session)
	b.base = driver + "/session/" + session.SessionID
	t.Cleanup(func() { b.call(http.MethodDelete, "", nil, nil) })
	return b
}

// Open loads url and waits for the page to load.
func (b *Browser) Open(url string) {
	b.t.Helper()
	b.call(http.MethodPost, "/url", map[string]string{"url": url}, nil)
}

// Reload reloads the current page, as the officer would.
func (b *Browser) Reload() {
	b.t.Helper()
	b.call(http.MethodPost, "/refresh", map[string]any{}, nil)
}

// URL is the current page's address.
func (b *Browser) URL() string {
	b.t.Helper()
	var u string
	b.call(http.MethodGet, "/url", nil, &u)
	return u
}

// Fill clears the input the CSS selector names and types text into it.
func (b *Browser) Fill(css, text string) {
	b.t.Helper()
	id := b.find(css)
	b.call(http.MethodPost, "/element/"+id+"/clear", map[string]any{}, nil)
	if text != "" {
		b.call(http.MethodPost, "/element/"+id+"/value", map[string]string{"text": text}, nil)
	}
}

// Click clicks the element, which submits a form or follows a link, and
// waits for the next page: WebDriver's click may return before the old page
// is gone, and reading it then would see the old page's text.
func (b *Browser) Click(css string) {
	b.t.Helper()
	b.script(`window.__leaving = true; return true;`)
	b.call(http.MethodPost, "/element/"+b.find(css)+"/click", map[string]any{}, nil)
	b.WaitFor("the next page after clicking "+css, func() bool {
		return b.script(`return window.__leaving !== true && document.readyState === "complete";`)
	})
}

// script runs JavaScript in the page and returns its boolean result.
func (b *Browser) script(js string) bool {
	b.t.Helper()
	var ok bool
	b.call(http.MethodPost, "/execute/sync", map[string]any{"script": js, "args": []any{}}, &ok)
	return ok
}

// Text returns the element's visible text, or "" when there is none.
func (b *Browser) Text(css string) string {
	b.t.Helper()
	id, ok := b.tryFind(css)
	if !ok {
		return ""
	}
	var s string
	b.call(http.MethodGet, "/element/"+id+"/text", nil, &s)
	return s
}

// Value returns an input's current value.
func (b *Browser) Value(css string) string {
	b.t.Helper()
	var s string
	b.call(http.MethodGet, "/element/"+b.find(css)+"/property/value", nil, &s)
	return s
}

// LabelFor returns the text of the <label> of the input with this id.
func (b *Browser) LabelFor(id string) string {
	b.t.Helper()
	return b.Text(`label[for="` + id + `"]`)
}

// Screenshot saves the visible page as a PNG file.
func (b *Browser) Screenshot(path string) {
	b.t.Helper()
	var data string
	b.call(http.MethodGet, "/screenshot", nil, &data)
	png, err := base64.StdEncoding.DecodeString(data)
	if err != nil {
		b.t.Fatal(err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

func (b *Browser) find(css string) string {
	b.t.Helper()
	id, ok := b.tryFind(css)
	if !ok {
		b.t.Fatalf("no element %q on %s", css, b.URL())
	}
	return id
}

func (b *Browser) tryFind(css string) (string, bool) {
	b.t.Helper()
	var found []map[string]string
	b.call(http.MethodPost, "/elements", map[string]string{"using": "css selector", "value": css}, &found)
	if len(found) == 0 {
		return "", false
	}
	for _, id := range found[0] { // the key is the W3C element identifier
		return id, true
	}
	return "", false
}

// call makes one WebDriver request and decodes its "value" into out.
func (b *Browser) call(method, path string, in, out any) {
	b.t.Helper()
	var body io.Reader
	if in != nil {
		raw, err := json.Marshal(in)
		if err != nil {
			b.t.Fatal(err)
		}
		body = bytes.NewReader(raw)
	}
	req, err := http.NewRequest(method, b.base+path, body)
	if err != nil {
		b.t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := b.http.Do(req)
	if err != nil {
		b.t.Fatalf("webdriver %s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var env struct {
		Value json.RawMessage `json:"value"`
	}
	if err := json.Unmarshal(raw, &env); err != nil {
		b.t.Fatalf("webdriver %s %s: %v: %s", method, path, err, raw)
	}
	if resp.StatusCode != http.StatusOK {
		b.t.Fatalf("webdriver %s %s: %d %s", method, path, resp.StatusCode, strings.TrimSpace(string(raw)))
	}
	if out != nil {
		if err := json.Unmarshal(env.Value, out); err != nil {
			b.t.Fatalf("webdriver %s %s: %v: %s", method, path, err, raw)
		}
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
