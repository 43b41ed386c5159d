// Package oip serves the Open Inference Protocol (the "KServe v2" REST API
// that Triton, KServe and MLServer speak) under /v2, so that a platform team's
// tritonclient or KServe client can call ML Service as it calls any other
// model server. /v1/predict stays the legacy system's contract; both reach
// the same decision path.
//
// Every non-200 answer under /v2 is {"error": "<message>"}: 400 for input the
// contract refuses, 404 for an unknown model or version, 503 while not ready.
// Infer takes JSON tensors (flat or nested data) and the binary tensor data
// extension (Inference-Header-Content-Length, binary_data_size,
// binary_data_output) for inputs and outputs.
package oip

import (
	"context"
	"errors"
	"log/slog"
	"net/http"
	"slices"
	"strconv"
	"sync"

	"github.com/gofiber/fiber/v2"

	"mlservice/schemas"
	"mlservice/serve/models"
	"mlservice/serve/routing"
)

// Platform is the model platform /v2 reports: ONNX models run by ONNX Runtime.
const Platform = "onnx_onnxv1"

// Extensions are the protocol extensions the server supports.
var Extensions = []string{"binary_tensor_data"}

// ApplicationIDParameter is the request parameter that carries the
// applicant's reference: the routing key, as application_id is on /v1/predict.
const ApplicationIDParameter = "application_id"

// Request is one infer call, decoded and validated, for the decision path.
type Request struct {
	// RequestID is the server's request id (X-Request-ID).
	RequestID string
	// ApplicationID routes the request as /v1/predict routes one (a stable
	// hash); empty: weighted random. It names the application of a one-row
	// request.
	ApplicationID string
	// Version pins a live version; empty routes the request.
	Version string
	// Applications are the rows, each validated against the contract.
	Applications []schemas.Application
	// Inputs holds each row's application as a JSON object, for the record.
	Inputs [][]byte
	// Features are the fields the rows were read with (the addressed
	// version's), and Outputs the outputs the client asked for (nil: the
	// version's own). Only a version that reads no other field and has
	// every one of those outputs may answer.
	Features []schemas.Feature
	Outputs  []string
}

// fits reports whether v can answer the request: see Features and Outputs.
func (r *Request) fits(v *models.Version) bool {
	for _, f := range v.Features {
		if !slices.Contains(r.Features, f) {
			return false
		}
	}
	if len(r.Outputs) == 0 {
		return true
	}
	_, outs := Describe(v)
	for _, name := range r.Outputs {
		if !hasTensor(outs, name) {
			return false
		}
	}
	return true
}

// Result is what the decision path decided for a Request: one entry per row,
// all by one model version.
type Result struct {
	Model, Version string
	Variant        routing.Variant
	Probability    []float32
	Approve        []bool
	// Contributions maps a contrib_<characteristic> output name to one value
	// per row; nil when the version has none.
	Contributions map[string][]float32
	// DecisionIDs name each row's decision in the record, in row order; the
	// response carries them as parameters (decision_id for one row;
	// decision_ids, comma-separated, for several), so every answered row
	// can be read back.
	DecisionIDs []string
	// ApplicationID is a one-row request's application id (the decision id
	// when the client sent none); empty for several rows, which are each
	// recorded under their own decision id.
	ApplicationID string
}

// Decider decides a Request: it picks the version (routing, or the pinned
// one), scores, observes and records. It must be safe for concurrent use.
type Decider interface {
	Decide(ctx context.Context, req *Request) (*Result, error)
}

var (
	// ErrUnknownVersion means the pinned version is not live (never was, or
	// retired): 404.
	ErrUnknownVersion = errors.New("version is not live")
	// ErrShadowOnly means the pinned version is live only as the shadow,
	// whose decisions are never served: 404.
	ErrShadowOnly = errors.New("version is live only as the shadow")
	// ErrNotReady means the model has no live champion yet: 503.
	ErrNotReady = errors.New("model is not ready")
)

// Model is one served model.
type Model struct {
	Name   string
	Router *routing.Router
	// Ready reports whether the model can decide, and why not.
	Ready func() (bool, string)
	// Decider is the decision path for this model.
	Decider Decider
}

// Config configures the /v2 routes.
type Config struct {
	// ServerName and ServerVersion are what GET /v2 reports.
	ServerName, ServerVersion string
	// Models are the served models; the first is the default one.
	Models []Model
	// Draining reports a graceful shutdown in progress: /v2/health/ready is 503.
	Draining func() bool
	// BodyLimit caps an infer body (default schemas.MaxBatchBytes, the
	// server's limit for any body, which refuses a larger one first).
	BodyLimit int
	Log       *slog.Logger
}

// Handler serves /v2. It is safe for concurrent use.
type Handler struct {
	cfg     Config
	models  map[string]*Model
	parsers schemas.ParserPool // request bodies up to 1 MiB: a pooled parser keeps the largest it parsed
	scratch sync.Pool          // *inferScratch
}

// Mount adds the /v2 routes to r.
func Mount(r fiber.Router, cfg Config) *Handler {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.BodyLimit <= 0 {
		cfg.BodyLimit = schemas.MaxBatchBytes
	}
	if cfg.ServerName == "" {
		cfg.ServerName = "mlservice"
	}
	if cfg.ServerVersion == "" {
		cfg.ServerVersion = "dev"
	}
	if cfg.Draining == nil {
		cfg.Draining = func() bool { return false }
	}
	h := &Handler{cfg: cfg, models: map[string]*Model{}, parsers: schemas.ParserPool{Max: 1 << 20}}
	for i := range cfg.Models {
		h.models[cfg.Models[i].Name] = &cfg.Models[i]
	}
	v2 := r.Group("/v2", h.errors)
	v2.Get("", h.serverMetadata)
	v2.Get("/health/live", h.live)
	v2.Get("/health/ready", h.serverReady)
	for _, prefix := range []string{"/models/:model", "/models/:model/versions/:version"} {
		v2.Get(prefix, h.modelMetadata)
		v2.Get(prefix+"/ready", h.modelReady)
		v2.Post(prefix+"/infer", h.infer)
	}
	// A path that matches no route comes back from c.Next() in h.errors as
	// Fiber's 404 or 405, and takes the protocol's shape there.
	return h
}

// Error is a /v2 error: its HTTP status and message.
type Error struct {
	Status  int
	Message string
}

func (e *Error) Error() string { return e.Message }

func badRequest(msg string) *Error { return &Error{Status: http.StatusBadRequest, Message: msg} }

// errors turns every error under /v2 into {"error": "..."}; unknown errors
// become a 500 with no internals and are logged.
func (h *Handler) errors(c *fiber.Ctx) error {
	err := c.Next()
	if err == nil {
		return nil
	}
	return h.writeError(c, err)
}

func (h *Handler) writeError(c *fiber.Ctx, err error) error {
	status, msg := http.StatusInternalServerError, "internal error"
	var (
		e        *Error
		fiberErr *fiber.Error
	)
	switch {
	case errors.As(err, &e):
		status, msg = e.Status, e.Message
	case errors.As(err, &fiberErr):
		status = fiberErr.Code
		switch status {
		case http.StatusNotFound:
			msg = "no such route: " + c.Method() + " " + c.Path()
		case http.StatusMethodNotAllowed:
			msg = "method not allowed on this route"
		case http.StatusRequestEntityTooLarge:
			msg = "the request body is too large"
		default:
			if status >= 500 {
				status, msg = http.StatusInternalServerError, "internal error"
			} else {
				msg = fiberErr.Message
			}
		}
	}
	if status == http.StatusInternalServerError {
		h.cfg.Log.Error("request failed", "method", c.Method(), "path", c.Path(), "error", err)
	}
	return WriteError(c, status, msg)
}

// WriteError writes {"error": msg} with status: the protocol's error shape.
func WriteError(c *fiber.Ctx, status int, msg string) error {
	b := make([]byte, 0, len(msg)+16)
	b = append(b, `{"error":`...)
	b = appendString(b, msg)
	b = append(b, '}')
	c.Status(status)
	c.Response().Header.Del(headerInferenceHeaderContentLength)
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	return c.Send(b)
}

// IsPath reports whether path is under /v2, for the server's error handler:
// errors raised before a handler runs (a body over the limit) must also take
// the protocol's shape there.
func IsPath(path []byte) bool {
	return len(path) >= 3 && string(path[:3]) == "/v2" && (len(path) == 3 || path[3] == '/')
}

func (h *Handler) live(c *fiber.Ctx) error {
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	return c.SendString(`{"live":true}`)
}

func (h *Handler) serverReady(c *fiber.Ctx) error {
	if h.cfg.Draining() {
		return &Error{Status: http.StatusServiceUnavailable, Message: "shutting down"}
	}
	for i := range h.cfg.Models {
		m := &h.cfg.Models[i]
		if ok, why := ready(m); !ok {
			return &Error{Status: http.StatusServiceUnavailable, Message: "model " + m.Name + " is not ready: " + why}
		}
	}
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	return c.SendString(`{"ready":true}`)
}

func (h *Handler) serverMetadata(c *fiber.Ctx) error {
	b := append([]byte(nil), `{"name":`...)
	b = appendString(b, h.cfg.ServerName)
	b = append(b, `,"version":`...)
	b = appendString(b, h.cfg.ServerVersion)
	b = append(b, `,"extensions":[`...)
	for i, e := range Extensions {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, e)
	}
	b = append(b, "]}"...)
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	return c.Send(b)
}

// model looks up the path's model; the name is copied (Fiber reuses buffers).
func (h *Handler) model(c *fiber.Ctx) (*Model, error) {
	name := c.Params("model")
	m, ok := h.models[name]
	if !ok {
		return nil, &Error{Status: http.StatusNotFound, Message: "unknown model " + quote(name)}
	}
	return m, nil
}

// liveVersion finds the path's version (or the champion) in the live table.
func (h *Handler) liveVersion(c *fiber.Ctx, m *Model) (*routing.Table, *routing.Route, error) {
	t := m.Router.Current()
	version := c.Params("version")
	if t == nil {
		if version != "" {
			return nil, nil, &Error{Status: http.StatusNotFound, Message: "model " + quote(m.Name) + " has no live version " + quote(version)}
		}
		return nil, nil, notReady(m, "no champion loaded")
	}
	if version == "" {
		return t, t.Champion, nil
	}
	for _, r := range t.Routes() {
		if r.Version.Number == version {
			return t, r, nil
		}
	}
	return nil, nil, &Error{Status: http.StatusNotFound, Message: "model " + quote(m.Name) + " has no live version " + quote(version)}
}

// ready is m.Ready, with the reason a model that is not ready gives when
// its Ready names none.
func ready(m *Model) (bool, string) {
	ok, why := m.Ready()
	if !ok && why == "" {
		why = "no champion loaded"
	}
	return ok, why
}

// notReady is the 503 of a model that cannot decide, and why.
func notReady(m *Model, why string) *Error {
	return &Error{Status: http.StatusServiceUnavailable, Message: "model " + quote(m.Name) + " is not ready: " + why}
}

// hasTensor reports whether ts has one named name.
func hasTensor(ts []models.TensorInfo, name string) bool {
	return slices.ContainsFunc(ts, func(ti models.TensorInfo) bool { return ti.Name == name })
}

// shadowOnly is the answer to a request pinned to the shadow version: it is
// loaded and described, but what it decides is never served.
func shadowOnly(m *Model, version string) *Error {
	return &Error{Status: http.StatusNotFound, Message: "version " + quote(version) + " of model " + quote(m.Name) +
		" is live only as the shadow: its decisions are recorded, never served"}
}

// modelReady is 200 when the model (or the pinned version) can decide:
// the model is ready (its record is writable too) and the version serves.
func (h *Handler) modelReady(c *fiber.Ctx) error {
	m, err := h.model(c)
	if err != nil {
		return err
	}
	_, route, err := h.liveVersion(c, m)
	if err != nil {
		return err
	}
	if route.Variant == routing.Shadow {
		return shadowOnly(m, route.Version.Number)
	}
	if ok, why := ready(m); !ok {
		return notReady(m, why)
	}
	b := append([]byte(nil), `{"name":`...)
	b = appendString(b, m.Name)
	b = append(b, `,"ready":true}`...)
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	return c.Send(b)
}

func (h *Handler) modelMetadata(c *fiber.Ctx) error {
	m, err := h.model(c)
	if err != nil {
		return err
	}
	t, route, err := h.liveVersion(c, m)
	if err != nil {
		return err
	}
	inputs, outputs := Describe(route.Version)
	b := append([]byte(nil), `{"name":`...)
	b = appendString(b, m.Name)
	b = append(b, `,"versions":[`...)
	for i, r := range t.Routes() {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, r.Version.Number)
	}
	b = append(b, `],"platform":`...)
	b = appendString(b, Platform)
	b = append(b, `,"inputs":`...)
	b = appendTensorInfos(b, inputs)
	b = append(b, `,"outputs":`...)
	b = appendTensorInfos(b, outputs)
	b = append(b, '}')
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	return c.Send(b)
}

// Output names /infer returns.
const (
	LabelOutput       = "label"
	ProbabilityOutput = "probability"
	ContribPrefix     = "contrib_"
)

// Describe returns the version's input and the outputs /infer returns, from
// its ONNX Runtime session: the input's real name, type and shape; label,
// probability (always [N], the approval probability, whatever shape the graph
// gives it) and every contrib_* output the graph has.
func Describe(v *models.Version) (inputs, outputs []models.TensorInfo) {
	in, out, ok := v.Tensors()
	if ok && len(in) == 1 {
		inputs = in
	} else {
		inputs = []models.TensorInfo{{Name: "features", DataType: "FP32", Shape: []int64{-1, int64(len(v.Features))}}}
	}
	outputs = []models.TensorInfo{
		{Name: LabelOutput, DataType: "INT64", Shape: []int64{-1}},
		{Name: ProbabilityOutput, DataType: "FP32", Shape: []int64{-1}},
	}
	for _, o := range out {
		if len(o.Name) > len(ContribPrefix) && o.Name[:len(ContribPrefix)] == ContribPrefix {
			outputs = append(outputs, models.TensorInfo{Name: o.Name, DataType: o.DataType, Shape: []int64{-1}})
		}
	}
	return inputs, outputs
}

func quote(s string) string {
	if len(s) > 128 {
		s = s[:128] + "…"
	}
	return string(appendString(nil, s))
}

func appendTensorInfos(b []byte, ts []models.TensorInfo) []byte {
	b = append(b, '[')
	for i, t := range ts {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"name":`...)
		b = appendString(b, t.Name)
		b = append(b, `,"datatype":`...)
		b = appendString(b, t.DataType)
		b = append(b, `,"shape":[`...)
		for j, d := range t.Shape {
			if j > 0 {
				b = append(b, ',')
			}
			b = strconv.AppendInt(b, d, 10)
		}
		b = append(b, "]}"...)
	}
	return append(b, ']')
}
