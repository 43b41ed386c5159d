package hooks

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"io"
	"log/slog"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"

	"mlservice/serve/api"
)

const secret = "whsec-for-tests"

func sign(secret, id, ts, body string) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte(id + "." + ts + "." + body))
	return "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
}

type delivery struct {
	id, ts, sig, body string
}

func newApp(t *testing.T, now time.Time) (*fiber.App, *atomic.Int64) {
	var triggers atomic.Int64
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	app := fiber.New(fiber.Config{ErrorHandler: api.ErrorHandler(log)})
	Mount(app, Config{Secret: secret, Trigger: func() { triggers.Add(1) }, Now: func() time.Time { return now }, Log: log})
	return app, &triggers
}

func send(t *testing.T, app *fiber.App, d delivery) int {
	t.Helper()
	req := httptest.NewRequest("POST", "/hooks/mlflow", strings.NewReader(d.body))
	req.Header.Set("Content-Type", "application/json")
	if d.id != "" {
		req.Header.Set(HeaderDeliveryID, d.id)
	}
	if d.ts != "" {
		req.Header.Set(HeaderTimestamp, d.ts)
	}
	if d.sig != "" {
		req.Header.Set(HeaderSignature, d.sig)
	}
	resp, err := app.Test(req, -1)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode
}

func TestWebhookVerification(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	ts := strconv.FormatInt(now.Unix(), 10)
	body := `{"entity":"model_version_alias","action":"created","data":{"name":"loan-approval","alias":"champion","version":"3"}}`
	tests := []struct {
		name    string
		d       delivery
		status  int
		trigger bool
	}{
		{"valid", delivery{"d-1", ts, sign(secret, "d-1", ts, body), body}, 202, true},
		{"replayed delivery id", delivery{"d-1", ts, sign(secret, "d-1", ts, body), body}, 200, false},
		{"wrong secret", delivery{"d-2", ts, sign("other", "d-2", ts, body), body}, 401, false},
		{"body altered", delivery{"d-3", ts, sign(secret, "d-3", ts, body), body + " "}, 401, false},
		{"id altered", delivery{"d-4", ts, sign(secret, "d-x", ts, body), body}, 401, false},
		{"no version prefix", delivery{"d-5", ts, strings.TrimPrefix(sign(secret, "d-5", ts, body), "v1,"), body}, 401, false},
		{"not base64", delivery{"d-6", ts, "v1,%%%", body}, 401, false},
		{"missing signature", delivery{"d-7", ts, "", body}, 401, false},
		{"missing id", delivery{"", ts, sign(secret, "", ts, body), body}, 401, false},
		{"too old", func() delivery {
			old := strconv.FormatInt(now.Add(-6*time.Minute).Unix(), 10)
			return delivery{"d-8", old, sign(secret, "d-8", old, body), body}
		}(), 401, false},
		{"from the future", func() delivery {
			future := strconv.FormatInt(now.Add(6*time.Minute).Unix(), 10)
			return delivery{"d-9", future, sign(secret, "d-9", future, body), body}
		}(), 401, false},
		{"timestamp not a number", delivery{"d-10", "soon", sign(secret, "d-10", "soon", body), body}, 401, false},
		{"within the window", func() delivery {
			recent := strconv.FormatInt(now.Add(-4*time.Minute).Unix(), 10)
			return delivery{"d-11", recent, sign(secret, "d-11", recent, body), body}
		}(), 202, true},
	}
	app, triggers := newApp(t, now)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := triggers.Load()
			if got := send(t, app, tc.d); got != tc.status {
				t.Fatalf("status %d, want %d", got, tc.status)
			}
			if fired := triggers.Load() > before; fired != tc.trigger {
				t.Fatalf("triggered a sync: %v, want %v", fired, tc.trigger)
			}
		})
	}
}

func TestDisabledWithoutSecret(t *testing.T) {
	app := fiber.New()
	Mount(app, Config{Trigger: func() { t.Fatal("triggered") }})
	if code := send(t, app, delivery{"d", "1", "v1,AAAA", "{}"}); code != 404 {
		t.Fatalf("with no secret the route must not exist: %d", code)
	}
}

func FuzzWebhook(f *testing.F) {
	now := time.Unix(1_800_000_000, 0)
	ts := strconv.FormatInt(now.Unix(), 10)
	f.Add("d-1", ts, sign(secret, "d-1", ts, "{}"), "{}")
	f.Add("", "", "", "")
	f.Add("x", "-99999999999999999999", "v1,", "\x00")
	app, _ := newApp(&testing.T{}, now)
	f.Fuzz(func(t *testing.T, id, ts, sig, body string) {
		req := httptest.NewRequest("POST", "/hooks/mlflow", strings.NewReader(body))
		for k, v := range map[string]string{HeaderDeliveryID: id, HeaderTimestamp: ts, HeaderSignature: sig} {
			if v != "" && !strings.ContainsAny(v, "\r\n\x00") {
				req.Header.Set(k, v)
			}
		}
		resp, err := app.Test(req, -1)
		if err != nil {
			return // the fuzzer wrote a header net/http cannot send
		}
		valid := sig == sign(secret, id, ts, body)
		if resp.StatusCode >= 500 || (!valid && resp.StatusCode < 400) {
			t.Fatalf("status %d for id=%q ts=%q sig=%q", resp.StatusCode, id, ts, sig)
		}
	})
}
