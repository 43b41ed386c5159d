package outcomes

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"

	"mlservice/schemas"
	"mlservice/serve/api"
)

// Outcome is the bank's final verdict on one application.
type Outcome struct {
	ApplicationID string
	Approved      bool
	ReceivedAt    time.Time // UTC
	// By names who posted it (the token's principal), for the record.
	By string
}

// Joined is a decision the record holds for the application an outcome is about.
type Joined struct {
	Model, Version, Variant string
	Served                  bool
	Approve                 bool
}

// Arm is one model version's standing against the outcomes: of the
// applications it decided that have an outcome, how many it decided as the
// bank did.
type Arm struct {
	Model, Version, Variant string
	Outcomes, Agreeing      int
}

// ErrUnknownApplication means the record holds no decision for the application.
var ErrUnknownApplication = errors.New("outcomes: no decision recorded for this application")

// Store is the part of the decision record outcomes need; serve/record
// implements it on SQLite and PostgreSQL.
type Store interface {
	// PutOutcome stores the verdict (a later one replaces an earlier one) and
	// returns the decisions it joins, and whether the application had no
	// outcome before. ErrUnknownApplication when the record has no decision.
	PutOutcome(ctx context.Context, o Outcome) (joined []Joined, first bool, err error)
	// Arms counts, per model version and variant, the latest decision of each
	// application with an outcome against that outcome.
	Arms(ctx context.Context, model string) ([]Arm, error)
}

// Metrics counts outcomes per version.
type Metrics struct {
	outcomes *prometheus.CounterVec
}

// NewMetrics registers model_outcomes_total with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	m := &Metrics{outcomes: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "model_outcomes_total",
		Help: "Applications with a final outcome, by the model version that decided them and whether it agreed; each application counts once, at its first outcome.",
	}, []string{"model", "version", "variant", "agree"})}
	reg.MustRegister(m.outcomes)
	return m
}

func (m *Metrics) count(joined []Joined, approved bool) {
	for _, j := range joined {
		m.outcomes.WithLabelValues(j.Model, j.Version, j.Variant, strconv.FormatBool(j.Approve == approved)).Inc()
	}
}

// MaxBatch is the most outcomes one request may carry: a day's applications.
const MaxBatch = schemas.MaxBatch

// maxBody bounds a request before it is read: MaxBatch outcomes with the
// longest references fit with room to spare.
const maxBody = 2 << 20

// Handler serves POST /v1/outcomes.
type Handler struct {
	Store   Store
	Metrics *Metrics
	// Principal names the caller for the record ("" when unknown).
	Principal func(c *fiber.Ctx) string
	Now       func() time.Time
	Timeout   time.Duration
}

// Mount adds POST /v1/outcomes behind guard (the bearer-token check).
func (h *Handler) Mount(r fiber.Router, guard fiber.Handler) {
	r.Post("/v1/outcomes", guard, h.post)
}

type outcomeBody struct {
	ApplicationID *string `json:"application_id"`
	Approved      *bool   `json:"approved"`
}

type result struct {
	Index         int        `json:"index"`
	ApplicationID string     `json:"application_id,omitempty"`
	Status        string     `json:"status"` // recorded | rejected
	Decisions     int        `json:"decisions,omitempty"`
	Error         *itemError `json:"error,omitempty"`
}

type itemError struct {
	Code    string            `json:"code"`
	Message string            `json:"message"`
	Fields  map[string]string `json:"fields,omitempty"`
}

func (h *Handler) post(c *fiber.Ctx) error {
	if err := api.RequireJSON(c); err != nil {
		return err
	}
	body := c.Body()
	if len(body) > maxBody {
		return &api.Error{Status: http.StatusRequestEntityTooLarge, Code: api.CodeBodyTooLarge,
			Message: fmt.Sprintf("at most %d bytes (%d outcomes)", maxBody, MaxBatch)}
	}
	var top map[string]json.RawMessage
	if err := api.DecodeEnvelope(body, &top); err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(c.UserContext(), h.timeout())
	defer cancel()
	by := ""
	if h.Principal != nil {
		by = h.Principal(c)
	}
	if raw, batch := top["outcomes"]; batch {
		if len(top) != 1 {
			return fieldError("outcomes", "a batch has only the field outcomes")
		}
		var items []json.RawMessage
		if err := api.DecodeEnvelope(raw, &items); err != nil {
			return fieldError("outcomes", "must be an array of outcomes")
		}
		if len(items) == 0 || len(items) > MaxBatch {
			return fieldError("outcomes", fmt.Sprintf("must hold 1 to %d outcomes", MaxBatch))
		}
		results := make([]result, len(items))
		recorded := 0
		for i, raw := range items {
			results[i] = h.one(ctx, i, raw, by)
			if results[i].Status == "recorded" {
				recorded++
			}
		}
		return c.JSON(fiber.Map{"results": results, "recorded": recorded, "rejected": len(items) - recorded})
	}
	r := h.one(ctx, 0, body, by)
	if r.Error != nil {
		return &api.Error{Status: statusOf(r.Error.Code), Code: r.Error.Code, Message: r.Error.Message, Fields: r.Error.Fields}
	}
	return c.JSON(fiber.Map{"application_id": r.ApplicationID, "status": r.Status, "decisions": r.Decisions})
}

// one records a single outcome; every failure becomes the item's error.
func (h *Handler) one(ctx context.Context, i int, raw json.RawMessage, by string) result {
	var b outcomeBody
	if err := api.DecodeStrict(raw, &b); err != nil {
		var named *api.Error
		if errors.As(err, &named) && len(named.Fields) > 0 {
			return rejected(i, "", named.Code, "the outcome has invalid fields", named.Fields)
		}
		return rejected(i, "", api.CodeValidationFailed, "an outcome is an object with application_id and approved", nil)
	}
	fields := map[string]string{}
	if b.ApplicationID == nil {
		fields["application_id"] = "is required"
	} else if err := schemas.ValidateApplicationID(*b.ApplicationID); err != nil {
		fields["application_id"] = err.Error()
	}
	if b.Approved == nil {
		fields["approved"] = "is required (true or false)"
	}
	id := ""
	if b.ApplicationID != nil && fields["application_id"] == "" {
		id = *b.ApplicationID
	}
	if len(fields) > 0 {
		return rejected(i, id, api.CodeValidationFailed, "the outcome has invalid fields", fields)
	}
	o := Outcome{ApplicationID: id, Approved: *b.Approved, ReceivedAt: h.now().UTC(), By: by}
	joined, first, err := h.Store.PutOutcome(ctx, o)
	switch {
	case errors.Is(err, ErrUnknownApplication):
		return rejected(i, id, api.CodeNotFound, "no decision is recorded for this application", nil)
	case err != nil:
		return rejected(i, id, CodeRecordUnavailable, "the decision record cannot be reached; send the outcome again", nil)
	}
	if first && h.Metrics != nil {
		h.Metrics.count(joined, o.Approved)
	}
	return result{Index: i, ApplicationID: id, Status: "recorded", Decisions: len(joined)}
}

// CodeRecordUnavailable is the error code when the record store is down.
const CodeRecordUnavailable = "record_unavailable"

func statusOf(code string) int {
	switch code {
	case api.CodeNotFound:
		return http.StatusNotFound
	case CodeRecordUnavailable:
		return http.StatusServiceUnavailable
	}
	return http.StatusUnprocessableEntity
}

func rejected(i int, id, code, msg string, fields map[string]string) result {
	return result{Index: i, ApplicationID: id, Status: "rejected", Error: &itemError{Code: code, Message: msg, Fields: fields}}
}

func fieldError(field, problem string) error {
	return &api.Error{Status: http.StatusUnprocessableEntity, Code: api.CodeValidationFailed,
		Message: "the request has invalid fields", Fields: map[string]string{field: problem}}
}

func (h *Handler) now() time.Time {
	if h.Now != nil {
		return h.Now()
	}
	return time.Now()
}

func (h *Handler) timeout() time.Duration {
	if h.Timeout > 0 {
		return h.Timeout
	}
	return 10 * time.Second
}
