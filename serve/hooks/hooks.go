// Package hooks receives MLflow webhooks at POST /hooks/mlflow, so an alias
// moved in the registry is served within a second instead of at the next
// poll. A delivery only triggers a reconciliation: the registry stays the
// truth, so a forged or replayed webhook could at worst cause an extra sync,
// and even that is refused without a valid signature.
package hooks

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"

	"mlservice/serve/api"
)

// The headers MLflow 3 sends with each delivery.
const (
	HeaderSignature  = "X-MLflow-Signature"
	HeaderTimestamp  = "X-MLflow-Timestamp"
	HeaderDeliveryID = "X-MLflow-Delivery-Id"
)

// Config wires the receiver.
type Config struct {
	// Secret is the webhook's HMAC secret; empty disables the route.
	Secret string
	// Trigger asks for a reconciliation without waiting for it.
	Trigger func()
	Log     *slog.Logger
	// Window is how far a delivery's timestamp may be from now (default 5m).
	Window time.Duration
	// Now is the clock (tests pass their own).
	Now func() time.Time
}

// Mount adds POST /hooks/mlflow when a secret is configured.
func Mount(r fiber.Router, cfg Config) {
	if cfg.Secret == "" {
		return
	}
	if cfg.Window == 0 {
		cfg.Window = 5 * time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	rc := &receiver{cfg: cfg, seen: map[string]time.Time{}}
	r.Post("/hooks/mlflow", rc.receive)
}

type receiver struct {
	cfg  Config
	mu   sync.Mutex
	seen map[string]time.Time // delivery id → when it was accepted
}

// maxSeen bounds the de-duplication memory.
const maxSeen = 10000

func unauthorized(msg string) error {
	return &api.Error{Status: http.StatusUnauthorized, Code: api.CodeUnauthorized, Message: msg}
}

func (rc *receiver) receive(c *fiber.Ctx) error {
	id := string(c.Request().Header.Peek(HeaderDeliveryID))
	ts := string(c.Request().Header.Peek(HeaderTimestamp))
	sig := string(c.Request().Header.Peek(HeaderSignature))
	if id == "" || len(id) > 128 || ts == "" || sig == "" {
		return unauthorized("missing MLflow webhook headers")
	}
	if !rc.validSignature(id, ts, c.Body(), sig) {
		rc.cfg.Log.Warn("webhook rejected: bad signature", "remote", c.IP(), "delivery_id", id)
		return unauthorized("invalid webhook signature")
	}
	sent, err := strconv.ParseInt(ts, 10, 64)
	now := rc.cfg.Now()
	if err != nil || now.Sub(time.Unix(sent, 0)).Abs() > rc.cfg.Window {
		rc.cfg.Log.Warn("webhook rejected: timestamp outside the window", "remote", c.IP(), "delivery_id", id, "timestamp", ts)
		return unauthorized("webhook timestamp outside the accepted window")
	}
	if !rc.firstDelivery(id, now) {
		return c.JSON(fiber.Map{"status": "duplicate", "delivery_id": id})
	}
	var event struct{ Entity, Action string }
	_ = json.Unmarshal(c.Body(), &event) // for the log only
	rc.cfg.Log.Info("webhook accepted: syncing with the registry", "delivery_id", id, "entity", event.Entity, "action", event.Action)
	rc.cfg.Trigger()
	return c.Status(http.StatusAccepted).JSON(fiber.Map{"status": "accepted", "delivery_id": id})
}

// validSignature checks "v1,<base64 HMAC-SHA256 of id.timestamp.body>".
func (rc *receiver) validSignature(id, ts string, body []byte, header string) bool {
	b64, ok := strings.CutPrefix(header, "v1,")
	if !ok {
		return false
	}
	got, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		return false
	}
	mac := hmac.New(sha256.New, []byte(rc.cfg.Secret))
	mac.Write([]byte(id))
	mac.Write([]byte{'.'})
	mac.Write([]byte(ts))
	mac.Write([]byte{'.'})
	mac.Write(body)
	return hmac.Equal(got, mac.Sum(nil))
}

// firstDelivery records id and reports whether it is new. Ids older than two
// windows are forgotten: their timestamps would be rejected anyway.
func (rc *receiver) firstDelivery(id string, now time.Time) bool {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if _, dup := rc.seen[id]; dup {
		return false
	}
	if len(rc.seen) >= maxSeen {
		for k, at := range rc.seen {
			if now.Sub(at) > 2*rc.cfg.Window {
				delete(rc.seen, k)
			}
		}
	}
	if len(rc.seen) >= maxSeen {
		return false // flooded with valid deliveries: the poll still converges
	}
	rc.seen[id] = now
	return true
}
