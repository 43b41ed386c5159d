// Package admin is the authenticated /admin API through which ops see the
// live model versions, promote a version, set the traffic split, retire the
// challenger or shadow and roll the champion back, for each served model
// (?model=<name>, the first served model by default). Every action writes one
// structured audit line and is counted in admin_actions_total{action,result}.
package admin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/gofiber/fiber/v2/utils"

	"mlservice/registry"
	"mlservice/serve/api"
	"mlservice/serve/auth"
	"mlservice/serve/metrics"
	"mlservice/serve/outcomes"
	"mlservice/serve/rollout"
	"mlservice/serve/routing"
)

// Controller is the part of rollout.Controller the admin API drives. Status
// and Desired are atomic reads that never wait for the controller.
type Controller interface {
	Status() rollout.Status
	Desired() rollout.Desired
	Promote(ctx context.Context, alias, version string) (rollout.Change, error)
	Rollback(ctx context.Context) (rollout.Change, error)
	Retire(ctx context.Context, alias string) (rollout.Change, error)
	SetWeights(ctx context.Context, w routing.Weights) (rollout.Change, error)
}

// Model is one served model as the admin API drives it: its controller and
// its routing table.
type Model struct {
	Name       string
	Controller Controller
	Router     *routing.Router
}

// Config wires the admin API.
type Config struct {
	// Auth checks the callers: every route needs the admin role, and with no
	// principal holding it /admin answers 403 admin_disabled (never open).
	Auth *auth.Authenticator
	// Models are the served models. A route acts on the one its ?model=
	// names, or on the first (the loan model) without one; any other name
	// is 404.
	Models  []Model
	Metrics *metrics.Models
	// Audit receives one line per action.
	Audit *slog.Logger
	// Timeout bounds one action, a model load included (default 2m).
	Timeout time.Duration
	// Outcomes, when set, lets GET /admin/models compare the live versions'
	// agreement with the bank's outcomes (the decision record).
	Outcomes outcomes.Store
}

// Mount adds the /admin routes to app.
func Mount(app fiber.Router, cfg Config) {
	if len(cfg.Models) == 0 {
		panic("admin.Mount: no models")
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 2 * time.Minute
	}
	h := &handlers{cfg: cfg}
	g := app.Group("/admin", cfg.Auth.Require(auth.Admin))
	g.Get("/models", h.models)
	g.Post("/promote", h.promote)
	g.Put("/traffic", h.traffic)
	g.Post("/rollback", h.rollback)
	g.Post("/retire", h.retire)
}

type handlers struct {
	cfg Config
}

// modelParam is the query parameter that names the model a route acts on.
const modelParam = "model"

// model is the served model the request names (?model=), the first by
// default.
func (h *handlers) model(c *fiber.Ctx) (Model, error) {
	name := c.Query(modelParam)
	if name == "" {
		return h.cfg.Models[0], nil
	}
	names := make([]string, len(h.cfg.Models))
	for i, m := range h.cfg.Models {
		if m.Name == name {
			return m, nil
		}
		names[i] = m.Name
	}
	return Model{Name: utils.CopyString(name)}, &api.Error{Status: http.StatusNotFound, Code: api.CodeNotFound,
		Message: fmt.Sprintf("no served model %q (served: %s)", name, strings.Join(names, ", "))}
}

// variantState is one live variant in GET /admin/models.
type variantState struct {
	Variant  string    `json:"variant"`
	Version  string    `json:"version"`
	SHA256   string    `json:"sha256"`
	Source   string    `json:"source"`
	LoadedAt time.Time `json:"loaded_at"`
	Weight   float64   `json:"weight"`
}

func (h *handlers) models(c *fiber.Ctx) error {
	m, err := h.model(c)
	if err != nil {
		return err
	}
	names := make([]string, len(h.cfg.Models))
	for i, m := range h.cfg.Models {
		names[i] = m.Name
	}
	out := fiber.Map{"model": m.Name, "models": names, "status": m.Controller.Status(), "desired": m.Controller.Desired()}
	if t := m.Router.Current(); t != nil {
		var live []variantState
		weights := map[string]float64{}
		for _, l := range t.Live() {
			weights[l.Variant] = l.Weight
		}
		for _, r := range t.Routes() {
			live = append(live, variantState{Variant: r.Variant.String(), Version: r.Version.Number, SHA256: r.Version.SHA256,
				Source: r.Version.Source, LoadedAt: r.Version.LoadedAt, Weight: weights[string(r.Variant)]})
		}
		out["live"] = live
		out["weights"] = t.Weights
		if h.cfg.Outcomes != nil {
			out["outcomes"] = h.outcomes(c.UserContext(), t)
		}
	}
	return c.JSON(out)
}

// outcomesTimeout bounds the record query of GET /admin/models: a slow
// record must not make the live state unreadable.
const outcomesTimeout = 2 * time.Second

// outcomes compares the live versions on the applications with an outcome;
// a record that cannot answer is reported in place, not as a failed read.
func (h *handlers) outcomes(ctx context.Context, t *routing.Table) any {
	ctx, cancel := context.WithTimeout(ctx, outcomesTimeout)
	defer cancel()
	arms, err := h.cfg.Outcomes.Arms(ctx, t.Model)
	if err != nil {
		return fiber.Map{"error": "the decision record cannot be read: outcomes unknown"}
	}
	var live outcomes.Live
	for _, r := range t.Routes() {
		switch r.Variant {
		case registry.Champion:
			live.Champion = r.Version.Number
		case registry.Challenger:
			live.Challenger = r.Version.Number
		case registry.Shadow:
			live.Shadow = r.Version.Number
		}
	}
	return outcomes.Compare(arms, live)
}

type promoteRequest struct {
	Alias   string `json:"alias"`
	Version string `json:"version"`
}

func (h *handlers) promote(c *fiber.Ctx) error {
	m, err := h.model(c)
	var req promoteRequest
	if err == nil {
		err = api.DecodeBody(c, &req)
	}
	if err != nil {
		return h.audit(c, m.Name, "promote", nil, nil, err)
	}
	if req.Version != "" && !validVersion(req.Version) {
		return h.audit(c, m.Name, "promote", []any{"version", req.Version}, nil, &api.Error{Status: http.StatusUnprocessableEntity,
			Code: api.CodeValidationFailed, Message: `invalid body: "version": not a version`,
			Fields: map[string]string{"version": "1 to 64 printable characters, no spaces"}})
	}
	if req.Alias == "" {
		req.Alias = registry.Champion.String()
	}
	return h.run(c, m.Name, "promote", []any{"alias", req.Alias, "version", req.Version}, func(ctx context.Context) (rollout.Change, error) {
		return m.Controller.Promote(ctx, req.Alias, req.Version)
	})
}

// validVersion reports whether v can name a version: MLflow's are numbers,
// the local registry's directory names. Anything else is refused before it
// reaches the registry or is echoed back.
func validVersion(v string) bool {
	if len(v) == 0 || len(v) > 64 {
		return false
	}
	for i := 0; i < len(v); i++ {
		if v[i] < 0x21 || v[i] > 0x7e {
			return false
		}
	}
	return true
}

// auditBytes bounds each value a request chooses in its audit line.
const auditBytes = 512

func bounded(s string) string {
	if len(s) <= auditBytes {
		return s
	}
	return s[:auditBytes] + "…"
}

func (h *handlers) traffic(c *fiber.Ctx) error {
	m, err := h.model(c)
	var w routing.Weights
	if err == nil {
		err = api.DecodeBody(c, &w)
	}
	if err != nil {
		return h.audit(c, m.Name, "traffic", nil, nil, err)
	}
	return h.run(c, m.Name, "traffic", []any{"weights", w}, func(ctx context.Context) (rollout.Change, error) {
		return m.Controller.SetWeights(ctx, w)
	})
}

type retireRequest struct {
	Alias string `json:"alias"`
}

func (h *handlers) retire(c *fiber.Ctx) error {
	m, err := h.model(c)
	var req retireRequest
	if err == nil {
		err = api.DecodeBody(c, &req)
	}
	if err != nil {
		return h.audit(c, m.Name, "retire", nil, nil, err)
	}
	return h.run(c, m.Name, "retire", []any{"alias", req.Alias}, func(ctx context.Context) (rollout.Change, error) {
		return m.Controller.Retire(ctx, req.Alias)
	})
}

func (h *handlers) rollback(c *fiber.Ctx) error {
	m, err := h.model(c)
	if err == nil && len(c.Body()) > 0 {
		var empty struct{}
		err = api.DecodeBody(c, &empty)
	}
	if err != nil {
		return h.audit(c, m.Name, "rollback", nil, nil, err)
	}
	return h.run(c, m.Name, "rollback", nil, func(ctx context.Context) (rollout.Change, error) {
		return m.Controller.Rollback(ctx)
	})
}

// run performs one action on the model with the action timeout and answers
// with the change; params are the action's parameters for the audit line.
func (h *handlers) run(c *fiber.Ctx, model, action string, params []any, do func(context.Context) (rollout.Change, error)) error {
	ctx, cancel := context.WithTimeout(c.UserContext(), h.cfg.Timeout)
	defer cancel()
	ch, err := do(ctx)
	if err := h.audit(c, model, action, params, &ch, err); err != nil {
		return err
	}
	out := fiber.Map{"action": action, "model": model, "result": "success", "before": ch.Before, "after": ch.After}
	if ch.Warning != "" {
		out["warning"] = ch.Warning // after is what the registry asks for; this is what does not serve it
	}
	return c.JSON(out)
}

// audit writes the audit line, counts the action and maps its error. The
// line names the principal, the server's request id (and the client's, as
// client_request_id), the client address, the model and the action's
// parameters, on success and on failure alike, and what the sync after a
// change that stands could not do (warning).
func (h *handlers) audit(c *fiber.Ctx, model, action string, params []any, ch *rollout.Change, err error) error {
	result := "success"
	if err != nil {
		result = "failure"
	}
	attrs := []any{"audit", true, "principal", auth.Name(c), "remote", h.cfg.Auth.Remote(c), "action", action, "result", result,
		"request_id", auth.RequestID(c), "model", model}
	if id := auth.ClientRequestID(c); id != "" {
		attrs = append(attrs, "client_request_id", id)
	}
	for i, p := range params {
		if s, ok := p.(string); ok && i%2 == 1 {
			p = bounded(s)
		}
		attrs = append(attrs, p)
	}
	if params == nil && ch == nil && len(c.Body()) > 0 {
		// The body did not decode: log what was sent, bounded.
		attrs = append(attrs, "body", bounded(string(c.Body()[:min(len(c.Body()), auditBytes+1)])))
	}
	if ch != nil && ch.Before != (rollout.Desired{}) {
		attrs = append(attrs, "before", ch.Before, "after", ch.After)
	}
	if ch != nil && ch.Warning != "" {
		attrs = append(attrs, "warning", ch.Warning)
	}
	if err != nil {
		attrs = append(attrs, "error", bounded(err.Error()))
	}
	h.cfg.Audit.Info("admin action", attrs...)
	h.cfg.Metrics.AdminAction(action, err == nil)
	if err == nil {
		return nil
	}
	return toAPIError(err)
}

func toAPIError(err error) error {
	var verify *rollout.VerifyError
	var apiErr *api.Error
	switch {
	case errors.As(err, &apiErr):
		return apiErr
	case errors.Is(err, rollout.ErrInvalid), errors.Is(err, rollout.ErrUnknownVersion):
		return &api.Error{Status: http.StatusUnprocessableEntity, Code: api.CodeValidationFailed, Message: err.Error()}
	case errors.As(err, &verify), errors.Is(err, rollout.ErrNoHistory), errors.Is(err, rollout.ErrBadTraffic):
		return &api.Error{Status: http.StatusConflict, Code: api.CodeConflict, Message: err.Error()}
	case errors.Is(err, registry.ErrDenied):
		return &api.Error{Status: http.StatusForbidden, Code: api.CodeForbidden,
			Message: "the registry refused the server's credentials; nothing was changed (in MLflow mode /admin writes with SERVE_MLFLOW_WRITE_USERNAME)"}
	case errors.Is(err, rollout.ErrReadOnly):
		return &api.Error{Status: http.StatusForbidden, Code: api.CodeForbidden, Message: err.Error()}
	case errors.Is(err, registry.ErrUnavailable):
		return &api.Error{Status: http.StatusServiceUnavailable, Code: api.CodeNotReady,
			Message: "the registry is unavailable or too slow; nothing was changed: " + err.Error()}
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, context.Canceled):
		return &api.Error{Status: http.StatusServiceUnavailable, Code: api.CodeNotReady, Message: "the action timed out; nothing was changed"}
	}
	return err
}
