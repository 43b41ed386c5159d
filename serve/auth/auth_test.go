package auth

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"mlservice/serve/api"
)

const adminToken = "the-admin-token-0123456789"

func sum(token string) string {
	s := sha256.Sum256([]byte(token))
	return hex.EncodeToString(s[:])
}

type fixture struct {
	app   *fiber.App
	audit *bytes.Buffer
	auth  *Authenticator
	reg   *prometheus.Registry
	now   time.Time
}

func newFixture(t *testing.T, tokens *Tokens, trusted string) *fixture {
	t.Helper()
	f := &fixture{audit: &bytes.Buffer{}, reg: prometheus.NewRegistry(), now: time.Unix(1_700_000_000, 0)}
	proxies, err := ParseTrustedProxies(trusted)
	if err != nil {
		t.Fatal(err)
	}
	f.auth = NewAuthenticator(Config{Tokens: tokens, TrustedProxies: proxies, Registerer: f.reg,
		Audit: slog.New(slog.NewJSONHandler(f.audit, nil)), FailureBurst: 3, FailureRefill: time.Second,
		Now: func() time.Time { return f.now }})
	f.app = fiber.New(fiber.Config{ErrorHandler: api.ErrorHandler(slog.New(slog.NewTextHandler(io.Discard, nil)))})
	who := func(c *fiber.Ctx) error {
		return c.JSON(fiber.Map{"name": Name(c), "request_id": RequestID(c), "client": ClientRequestID(c), "remote": f.auth.Remote(c)})
	}
	f.app.Get("/admin", f.auth.Require(Admin), who)
	f.app.Get("/decisions", f.auth.Require(Admin, Audit), who)
	return f
}

func (f *fixture) get(t *testing.T, path string, headers ...string) (int, map[string]any) {
	t.Helper()
	req := httptest.NewRequest("GET", path, nil)
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := f.app.Test(req)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	raw, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(raw, &out)
	if resp.StatusCode == 429 && resp.Header.Get("Retry-After") == "" {
		t.Errorf("429 without Retry-After")
	}
	return resp.StatusCode, out
}

func testTokens(t *testing.T) *Tokens {
	t.Helper()
	yml := "- name: alice\n  sha256: " + sum("alice-token-0123456789") + "\n  roles: [admin]\n" +
		"- name: bob@bank.example\n  sha256: " + strings.ToUpper(sum("bob-token-0123456789")) + "\n  roles: [audit]\n"
	path := filepath.Join(t.TempDir(), "tokens.yaml")
	if err := os.WriteFile(path, []byte(yml), 0o600); err != nil {
		t.Fatal(err)
	}
	tokens, err := Load(path, adminToken)
	if err != nil {
		t.Fatal(err)
	}
	return tokens
}

func TestRequireRolesAndPrincipals(t *testing.T) {
	f := newFixture(t, testTokens(t), "")
	tests := []struct {
		name, path, auth string
		status           int
		principal        string
	}{
		{"admin token", "/admin", "Bearer " + adminToken, 200, "admin"},
		{"lower-case scheme", "/admin", "bearer " + adminToken, 200, "admin"},
		{"upper-case scheme", "/admin", "BEARER " + adminToken, 200, "admin"},
		{"person with admin", "/admin", "Bearer alice-token-0123456789", 200, "alice"},
		{"audit may not admin", "/admin", "Bearer bob-token-0123456789", 403, ""},
		{"audit may read", "/decisions", "Bearer bob-token-0123456789", 200, "bob@bank.example"},
		{"admin may read", "/decisions", "Bearer alice-token-0123456789", 200, "alice"},
		{"no header", "/admin", "", 401, ""},
		{"basic scheme", "/admin", "Basic " + adminToken, 401, ""},
		{"wrong token", "/decisions", "Bearer alice-token-012345678", 401, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f.now = f.now.Add(time.Hour) // a fresh failure budget for every case
			status, out := f.get(t, tc.path, "Authorization", tc.auth)
			if status != tc.status {
				t.Fatalf("status %d, want %d: %v", status, tc.status, out)
			}
			if status == 200 && out["name"] != tc.principal {
				t.Fatalf("principal %v, want %s", out["name"], tc.principal)
			}
		})
	}
	if got := testutil.ToFloat64(f.auth.failures.WithLabelValues("forbidden")); got != 1 {
		t.Errorf("forbidden failures = %v, want 1", got)
	}
	if !strings.Contains(f.audit.String(), `"principal":"bob@bank.example"`) {
		t.Errorf("the forbidden attempt does not name bob: %s", f.audit.String())
	}
}

func TestNoTokenWithTheRoleDisablesTheRoute(t *testing.T) {
	f := newFixture(t, &Tokens{}, "")
	status, out := f.get(t, "/admin", "Authorization", "Bearer anything-at-all-here")
	if status != 403 || out["error"].(map[string]any)["code"] != api.CodeAdminDisabled {
		t.Fatalf("%d %v", status, out)
	}
}

// Issue 12 item 14: wrong tokens are audited, counted and slowed.
func TestWrongTokensAreAuditedCountedAndThrottled(t *testing.T) {
	f := newFixture(t, testTokens(t), "")
	for i := range 3 {
		if status, _ := f.get(t, "/admin", "Authorization", "Bearer wrong-token-number-"+string(rune('a'+i))); status != 401 {
			t.Fatalf("attempt %d: %d, want 401", i, status)
		}
	}
	// The budget is spent: even the right token waits.
	if status, _ := f.get(t, "/admin", "Authorization", "Bearer "+adminToken); status != 429 {
		t.Fatalf("fourth attempt: %d, want 429", status)
	}
	if got := testutil.ToFloat64(f.auth.failures.WithLabelValues("invalid")); got != 3 {
		t.Errorf("invalid failures = %v, want 3", got)
	}
	if got := testutil.ToFloat64(f.auth.failures.WithLabelValues("throttled")); got != 1 {
		t.Errorf("throttled = %v, want 1", got)
	}
	if n := strings.Count(f.audit.String(), `"msg":"authentication refused"`); n != 4 {
		t.Errorf("%d audit lines, want 4:\n%s", n, f.audit.String())
	}
	f.now = f.now.Add(1100 * time.Millisecond) // one failure refilled
	if status, out := f.get(t, "/admin", "Authorization", "Bearer "+adminToken); status != 200 {
		t.Fatalf("after the refill: %d %v", status, out)
	}
}

// Issue 12 item 14: the request id is the server's; X-Forwarded-For counts
// only from a trusted proxy.
func TestRequestIDAndRemote(t *testing.T) {
	f := newFixture(t, testTokens(t), "")
	_, out := f.get(t, "/admin", "Authorization", "Bearer "+adminToken, "X-Request-ID", "client-chosen", "X-Forwarded-For", "203.0.113.9")
	if out["request_id"] == "client-chosen" || len(out["request_id"].(string)) != 24 || out["client"] != "client-chosen" {
		t.Errorf("ids: %v", out)
	}
	if out["remote"] != "0.0.0.0" { // app.Test's peer; the header is not believed
		t.Errorf("remote from an untrusted peer = %v", out["remote"])
	}

	trusted, _ := ParseTrustedProxies("10.0.0.0/8, 192.0.2.1")
	for _, tc := range []struct{ peer, xff, want string }{
		{"10.1.2.3", "203.0.113.9", "203.0.113.9"},
		{"10.1.2.3", "198.51.100.7, 203.0.113.9, 192.0.2.1", "203.0.113.9"},
		{"10.1.2.3", "", "10.1.2.3"},
		{"10.1.2.3", "not-an-ip", "10.1.2.3"},
		{"198.51.100.1", "203.0.113.9", "198.51.100.1"},
	} {
		if got := remoteAddr(tc.peer, tc.xff, trusted); got != tc.want {
			t.Errorf("remoteAddr(%s, %q) = %s, want %s", tc.peer, tc.xff, got, tc.want)
		}
	}
}

// HAProxy's option forwardfor adds its own X-Forwarded-For line after any
// the client sent; the client's line must not be the one believed, or a
// client names any address it likes and escapes the wrong-token throttle.
func TestRemoteReadsEveryForwardedForLine(t *testing.T) {
	f := newFixture(t, testTokens(t), "0.0.0.0") // app.Test's peer is the trusted proxy
	req := httptest.NewRequest("GET", "/admin", nil)
	req.Header.Set("Authorization", "Bearer "+adminToken)
	req.Header.Add("X-Forwarded-For", "198.51.100.77") // the client's own
	req.Header.Add("X-Forwarded-For", "203.0.113.5")   // the proxy's: the client it saw
	resp, err := f.app.Test(req)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		t.Fatal(err)
	}
	if out["remote"] != "203.0.113.5" {
		t.Errorf("remote = %v, want 203.0.113.5 (the proxy's line, not the client's)", out["remote"])
	}
}

func TestTokensFileErrors(t *testing.T) {
	good := sum("x")
	for name, tc := range map[string]struct {
		file, want string
	}{
		"token instead of sum": {"- {name: a, sha256: secret-token, roles: [admin]}", "64 hex digits"},
		"unknown role":         {"- {name: a, sha256: " + good + ", roles: [root]}", "unknown role"},
		"no roles":             {"- {name: a, sha256: " + good + "}", "roles must"},
		"duplicate name":       {"- {name: a, sha256: " + good + ", roles: [admin]}\n- {name: a, sha256: " + sum("y") + ", roles: [audit]}", "twice"},
		"shared token":         {"- {name: a, sha256: " + good + ", roles: [admin]}\n- {name: b, sha256: " + good + ", roles: [audit]}", "same token"},
		"admin name taken":     {"- {name: admin, sha256: " + good + ", roles: [audit]}", "twice"},
		"unknown field":        {"- {name: a, token: x, sha256: " + good + ", roles: [admin]}", "token"},
		"bad name":             {"- {name: 'a b', sha256: " + good + ", roles: [admin]}", "name"},
	} {
		t.Run(name, func(t *testing.T) {
			entries, err := Parse([]byte(tc.file))
			if err == nil {
				_, err = New(entries, adminToken)
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "secret-token") {
				t.Fatalf("the error prints the token: %v", err)
			}
		})
	}
	// JSON is YAML; an empty file is no entries.
	if entries, err := Parse([]byte(`[{"name":"carol","sha256":"` + good + `","roles":["audit"]}]`)); err != nil || len(entries) != 1 {
		t.Fatalf("JSON file: %v %v", entries, err)
	}
	if entries, err := Parse(nil); err != nil || len(entries) != 0 {
		t.Fatalf("empty file: %v %v", entries, err)
	}
}

// A person taken out of the tokens file loses access without a restart
// (offboarding: the Secret is updated in place, the pods keep running); a
// file that no longer parses keeps the set that did, and says so.
func TestTokensFileChangesApplyWithoutARestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tokens.yaml")
	write := func(yml string) {
		if err := os.WriteFile(path, []byte(yml), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	alice := "- name: alice\n  sha256: " + sum("alice-token-0123456789") + "\n  roles: [admin]\n"
	bob := "- name: bob\n  sha256: " + sum("bob-token-0123456789") + "\n  roles: [audit]\n"
	write(alice + bob)
	tokens, err := Load(path, "")
	if err != nil {
		t.Fatal(err)
	}
	f := newFixture(t, tokens, "")
	var log bytes.Buffer
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		f.auth.Watch(ctx, path, "", 10*time.Millisecond, slog.New(slog.NewJSONHandler(&log, nil)))
	}()
	t.Cleanup(func() { cancel(); <-done })
	if status, _ := f.get(t, "/decisions", "Authorization", "Bearer bob-token-0123456789"); status != 200 {
		t.Fatalf("bob before: %d", status)
	}
	until := func(what string, ok func() bool) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); !ok(); time.Sleep(10 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: not within 5s; log:\n%s", what, log.String())
			}
		}
	}
	write(alice)
	until("bob's token refused once he is out of the file", func() bool {
		status, _ := f.get(t, "/decisions", "Authorization", "Bearer bob-token-0123456789")
		return status == 401
	})
	write("- name: alice\n  sha256: not-a-sum\n  roles: [admin]\n")
	until("the damaged file reported", func() bool { return strings.Contains(log.String(), "tokens file") })
	if status, _ := f.get(t, "/admin", "Authorization", "Bearer alice-token-0123456789"); status != 200 {
		t.Fatalf("a damaged file took alice's access: %d", status)
	}
}
