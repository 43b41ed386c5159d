package record

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/url"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/gofiber/fiber/v2"

	"mlservice/serve/api"
)

// RoutesConfig wires the read routes of the record.
type RoutesConfig struct {
	Store Store
	// Read lets a request through with a token of role admin or audit
	// (auth.Require(auth.Admin, auth.Audit)); Admin only with role admin.
	Read, Admin fiber.Handler
	// Principal names the authenticated caller for audit lines (auth.Name).
	Principal func(c *fiber.Ctx) string
	// Remote is the caller's address for audit lines, as auth sees it
	// (Authenticator.Remote: the client a trusted proxy forwards for, not
	// the proxy); default the peer.
	Remote func(c *fiber.Ctx) string
	// Audit receives one line per read, export and legal-hold change.
	Audit *slog.Logger
	// ExportTimeout bounds one export (default 30 minutes).
	ExportTimeout time.Duration
	// Now is the clock for legal holds (default time.Now).
	Now func() time.Time
}

// Mount adds the record's routes:
//
//	GET    /v1/decisions/{application_id}             every decision about an application, newest first
//	GET    /v1/decisions/by-decision-id/{decision_id} the one decision an answer's decision_id names
//	GET    /v1/decisions?from=…&to=…                  export: NDJSON, one decision a line, oldest first
//	PUT    /v1/decisions/{application_id}/legal-hold  put the application's decisions under legal hold (admin)
//	DELETE /v1/decisions/{application_id}/legal-hold  lift the hold (admin)
//	GET    /v1/legal-holds                            the applications under legal hold
func Mount(r fiber.Router, cfg RoutesConfig) {
	if cfg.Audit == nil {
		cfg.Audit = slog.Default()
	}
	if cfg.Principal == nil {
		cfg.Principal = func(*fiber.Ctx) string { return "" }
	}
	if cfg.Remote == nil {
		cfg.Remote = func(c *fiber.Ctx) string { return c.IP() }
	}
	if cfg.ExportTimeout <= 0 {
		cfg.ExportTimeout = 30 * time.Minute
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	h := &routes{cfg: cfg, exports: make(chan struct{}, maxExports)}
	r.Get("/v1/decisions", cfg.Read, h.export)
	r.Get("/v1/decisions/:application_id", cfg.Read, h.byApplication)
	r.Get("/v1/decisions/by-decision-id/:decision_id", cfg.Read, h.byDecision)
	r.Put("/v1/decisions/:application_id/legal-hold", cfg.Admin, h.hold(true))
	r.Delete("/v1/decisions/:application_id/legal-hold", cfg.Admin, h.hold(false))
	r.Get("/v1/legal-holds", cfg.Read, h.holds)
}

type routes struct {
	cfg     RoutesConfig
	exports chan struct{} // a token per export streaming
}

// maxExports bounds the exports streaming at once, on either backend: each
// holds a reader for as long as its client takes, and half the readers stay
// for lookups. One more is refused at once (503 overloaded, Retry-After)
// rather than queued: a read has no deadline, and an export job retries
// where a queued one would hang.
const maxExports = readers / 2

// exportRetry is the Retry-After of a refused export, in seconds.
const exportRetry = "10"

// applicationID reads and checks the path's application id: the contract's
// 1-64 printable ASCII characters, else 422 (never a query).
func applicationID(c *fiber.Ctx) (string, error) {
	raw := c.Params("application_id")
	id, err := url.PathUnescape(raw)
	if err != nil || !ValidApplicationID(id) {
		return "", &api.Error{Status: http.StatusUnprocessableEntity, Code: api.CodeValidationFailed,
			Message: "the application id is not one the contract allows",
			Fields:  map[string]string{"application_id": "must be 1 to 64 printable ASCII characters (percent-encode them in the path)"}}
	}
	return id, nil
}

// ValidApplicationID reports whether id has the contract's form: 1 to 64
// printable ASCII characters.
func ValidApplicationID(id string) bool {
	if len(id) == 0 || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] < 0x20 || id[i] > 0x7e {
			return false
		}
	}
	return true
}

// caller is who asked, for every line logged about a request: the
// principal, their address and the request id.
func (h *routes) caller(c *fiber.Ctx, attrs ...any) []any {
	return append([]any{"principal", h.cfg.Principal(c), "remote", h.cfg.Remote(c),
		"request_id", c.GetRespHeader(fiber.HeaderXRequestID)}, attrs...)
}

func (h *routes) audit(c *fiber.Ctx, action string, attrs ...any) {
	h.cfg.Audit.Info("decision record "+action, append([]any{"audit", true, "action", action}, h.caller(c, attrs...)...)...)
}

func (h *routes) byApplication(c *fiber.Ctx) error {
	id, err := applicationID(c)
	if err != nil {
		return err
	}
	b := make([]byte, 0, 1024)
	b = append(b, `{"application_id":`...)
	b = appendString(b, id)
	b = append(b, `,"decisions":[`...)
	n := 0
	err = h.cfg.Store.ByApplication(c.UserContext(), id, func(doc []byte) error {
		if n > 0 {
			b = append(b, ',')
		}
		b = append(b, doc...)
		n++
		return nil
	})
	if err != nil {
		return h.unavailable(c, err)
	}
	h.audit(c, "read", "application_id", id, "decisions", n)
	if n == 0 {
		return &api.Error{Status: http.StatusNotFound, Code: api.CodeNotFound,
			Message: "no decision is recorded for this application id"}
	}
	b = append(b, "]}"...)
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	return c.Send(b)
}

func (h *routes) byDecision(c *fiber.Ctx) error {
	raw, err := url.PathUnescape(c.Params("decision_id"))
	if err != nil {
		raw = ""
	}
	id, doc, err := ByDecisionID(c.UserContext(), h.cfg.Store, raw)
	switch {
	case errors.Is(err, ErrNotDecisionID):
		return &api.Error{Status: http.StatusUnprocessableEntity, Code: api.CodeValidationFailed,
			Message: "the decision id is not one an answer gives",
			Fields:  map[string]string{"decision_id": "must be a UUID version 7 such as 019ade6c-7b3a-7c2e-8f00-3a1b2c3d4e5f"}}
	case err != nil:
		return h.unavailable(c, err)
	}
	h.audit(c, "read", "decision_id", id, "found", doc != nil)
	if doc == nil {
		return &api.Error{Status: http.StatusNotFound, Code: api.CodeNotFound,
			Message: "no decision with this id is recorded (or retention has purged it)"}
	}
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	return c.Send(doc)
}

// unavailable logs why the record could not be read or written and answers
// 503 without the detail.
func (h *routes) unavailable(c *fiber.Ctx, err error) error {
	h.cfg.Audit.Warn("decision record unavailable", h.caller(c, "method", c.Method(), "path", c.Path(), "error", err)...)
	return unavailable(err)
}

func unavailable(error) error {
	return &api.Error{Status: http.StatusServiceUnavailable, Code: api.CodeRecordUnavailable,
		Message: "the decision record is unavailable; retry later"}
}

func timeParam(c *fiber.Ctx, name string) (time.Time, error) {
	v := c.Query(name)
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil {
		msg := "must be an RFC 3339 time such as 2026-01-31T00:00:00Z"
		if v == "" {
			msg = "is required: " + msg
		}
		return t, &api.Error{Status: http.StatusUnprocessableEntity, Code: api.CodeValidationFailed,
			Message: "the export needs a time range", Fields: map[string]string{name: msg}}
	}
	return t, nil
}

func (h *routes) export(c *fiber.Ctx) error {
	from, err := timeParam(c, "from")
	if err != nil {
		return err
	}
	to, err := timeParam(c, "to")
	if err != nil {
		return err
	}
	if !from.Before(to) {
		return &api.Error{Status: http.StatusUnprocessableEntity, Code: api.CodeValidationFailed,
			Message: "the export needs a time range", Fields: map[string]string{"to": "must be after from"}}
	}
	select {
	case h.exports <- struct{}{}:
	default:
		h.cfg.Audit.Warn("decision record export refused: too many at once", h.caller(c, "exports", maxExports)...)
		c.Set(fiber.HeaderRetryAfter, exportRetry)
		return &api.Error{Status: http.StatusServiceUnavailable, Code: api.CodeOverloaded,
			Message: "too many exports at once; retry after the Retry-After seconds"}
	}
	store, timeout, log := h.cfg.Store, h.cfg.ExportTimeout, h.cfg.Audit
	reqID, who := c.GetRespHeader(fiber.HeaderXRequestID), h.cfg.Principal(c)
	// The stream writer runs at once, in its own goroutine, and its output
	// is sent once the handler returns: the handler waits for the store's
	// first answer (a row, or the end) and only then commits to a 200, so
	// a store that cannot be read is a 503 like any other read's.
	answered := make(chan error, 1)
	c.Context().SetBodyStreamWriter(func(w *bufio.Writer) {
		defer func() { <-h.exports }()
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		n := 0
		err := store.Export(ctx, from, to, func(doc []byte) error {
			if n == 0 {
				answered <- nil
			}
			w.Write(doc)
			w.WriteByte('\n')
			n++
			if w.Buffered() > 64<<10 {
				return w.Flush() // a client that went away stops the export
			}
			return nil
		})
		if n == 0 {
			answered <- err
			if err != nil {
				return // the handler answers 503
			}
		}
		if err != nil {
			// The status is sent; the last line says the export is incomplete.
			line, _ := json.Marshal(map[string]any{"error": map[string]string{"code": api.CodeRecordUnavailable,
				"message": "the export stopped before its end; retry it"}, "request_id": reqID})
			w.Write(line)
			w.WriteByte('\n')
			log.Warn("decision record export stopped", "principal", who, "request_id", reqID, "exported", n, "error", err)
		}
		_ = w.Flush()
	})
	if err := <-answered; err != nil {
		return h.unavailable(c, err)
	}
	h.audit(c, "export", "from", from.UTC().Format(time.RFC3339Nano), "to", to.UTC().Format(time.RFC3339Nano))
	c.Set(fiber.HeaderContentType, "application/x-ndjson")
	return nil
}

func (h *routes) hold(on bool) fiber.Handler {
	return func(c *fiber.Ctx) error {
		id, err := applicationID(c)
		if err != nil {
			return err
		}
		var body struct {
			Reason string `json:"reason"`
		}
		if on {
			if err := api.DecodeBody(c, &body); err != nil {
				return err
			}
			// The contract's maxLength: characters (code points), not bytes.
			if body.Reason == "" || utf8.RuneCountInString(body.Reason) > 1000 || !isText(body.Reason) {
				return &api.Error{Status: http.StatusUnprocessableEntity, Code: api.CodeValidationFailed,
					Message: `send {"reason": "..."}: why the records are held (a case or matter reference)`,
					Fields:  map[string]string{"reason": "required, at most 1000 characters, no control characters but tabs and line breaks"}}
			}
		}
		who := h.cfg.Principal(c)
		if err := h.cfg.Store.SetHold(c.UserContext(), id, who, body.Reason, on, h.cfg.Now().UTC()); err != nil {
			var held *HeldError
			if errors.As(err, &held) {
				h.audit(c, "legal hold refused", "application_id", id, "reason", body.Reason, "held_by", held.Hold.SetBy)
				return &api.Error{Status: http.StatusConflict, Code: api.CodeConflict, Message: held.Error()}
			}
			return h.unavailable(c, err)
		}
		action := "legal hold set"
		if !on {
			action = "legal hold lifted"
		}
		h.audit(c, action, "application_id", id, "reason", body.Reason)
		return c.JSON(fiber.Map{"application_id": id, "legal_hold": on})
	}
}

// isText reports whether a reason is text: no control character but tabs
// and line breaks. A NUL is one PostgreSQL cannot store (it answered 503,
// as if the record were down), an escape sequence one a terminal would
// act on when someone reads the holds or the audit trail.
func isText(s string) bool {
	for _, r := range s {
		if unicode.IsControl(r) && r != '\t' && r != '\n' && r != '\r' {
			return false
		}
	}
	return true
}

func (h *routes) holds(c *fiber.Ctx) error {
	hs, err := h.cfg.Store.Holds(c.UserContext())
	if err != nil {
		return h.unavailable(c, err)
	}
	h.audit(c, "legal holds read", "holds", len(hs))
	if hs == nil {
		hs = []Hold{}
	}
	return c.JSON(fiber.Map{"legal_holds": hs})
}
