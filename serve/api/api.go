// Package api is the HTTP face of the server: the legacy system's
// /v1/predict routes, health and readiness, metrics and the published
// contract. Handlers return errors; one place turns them into the shared
// JSON error shape.
package api

import (
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/ansrivas/fiberprometheus/v2"
	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"

	"mlservice/schemas"
	"mlservice/serve/decision"
	"mlservice/serve/rollout"
	"mlservice/serve/routing"
)

// Config holds the HTTP settings.
type Config struct {
	// Model is the registered model name, shown on GET /.
	Model string
	// PredictBodyLimit caps a POST /v1/predict body (default 64 KiB).
	PredictBodyLimit int
	// BodyLimit caps any body, batches included (default
	// schemas.MaxBatchBytes, what the largest batch can need). Larger bodies
	// are refused from their Content-Length, before they are read.
	BodyLimit int
	// BatchConcurrency caps the batches decoded and decided at once
	// (default 2); BatchQueue more (default 16, negative none) may wait up
	// to BatchWait (default 10s) for a slot, the rest get 503 with
	// Retry-After.
	BatchConcurrency int
	BatchQueue       int
	BatchWait        time.Duration

	ReadTimeout  time.Duration // default 10s
	WriteTimeout time.Duration // default 30s
	IdleTimeout  time.Duration // default 60s
}

func (c *Config) defaults() {
	if c.PredictBodyLimit <= 0 {
		c.PredictBodyLimit = 64 << 10
	}
	if c.BodyLimit <= 0 {
		c.BodyLimit = schemas.MaxBatchBytes
	}
	if c.BatchConcurrency <= 0 {
		c.BatchConcurrency = 2
	}
	if c.BatchQueue < 0 {
		c.BatchQueue = 0
	} else if c.BatchQueue == 0 {
		c.BatchQueue = 16
	}
	if c.BatchWait <= 0 {
		c.BatchWait = 10 * time.Second
	}
	if c.ReadTimeout <= 0 {
		c.ReadTimeout = 10 * time.Second
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 30 * time.Second
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = 60 * time.Second
	}
}

// Deps are the parts the API reads from.
type Deps struct {
	// Decisions is the decision path every prediction goes through.
	Decisions *decision.Path
	// Router is read for /ready and GET /.
	Router *routing.Router
	// Status reports readiness and where the champion came from.
	Status func() rollout.Status
	// Registry collects every metric for /metrics; the HTTP metrics are
	// registered into it too.
	Registry *prometheus.Registry
	Log      *slog.Logger
	// Build describes the binary for GET /.
	Build map[string]string
	// Mount adds further routes (/admin, /hooks) behind the same request-id,
	// metrics and error handling.
	Mount []func(app fiber.Router)
}

// Server holds the handlers' dependencies. It is safe for concurrent use.
type Server struct {
	cfg     Config
	deps    Deps
	log     *slog.Logger
	decoder schemas.Decoder
	batches *admission
	openapi []byte
	// requestIDs makes request ids unique within the process without a
	// random read per request: a random prefix and a counter.
	idPrefix string
	idSeq    atomic.Uint64
	// draining is set on SIGTERM: /ready answers 503 so load balancers stop
	// sending, and every response closes its connection so clients stop
	// reusing connections that are about to close.
	draining atomic.Bool
	// protocolReads keeps /v2's error shape for bodies fasthttp fails to read.
	protocolReads *protocolReads
}

// Drain starts the graceful shutdown's first phase (see draining).
func (s *Server) Drain() { s.draining.Store(true) }

// Draining reports whether Drain has been called.
func (s *Server) Draining() bool { return s.draining.Load() }

// New builds the Fiber app with every route.
func New(cfg Config, deps Deps) (*fiber.App, *Server, error) {
	cfg.defaults()
	if deps.Log == nil {
		deps.Log = slog.Default()
	}
	openapi, err := schemas.OpenAPI()
	if err != nil {
		return nil, nil, err
	}
	var prefix [4]byte
	_, _ = rand.Read(prefix[:])
	s := &Server{cfg: cfg, deps: deps, log: deps.Log, openapi: openapi, idPrefix: hex.EncodeToString(prefix[:]),
		protocolReads: newProtocolReads()}
	admissions := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "batch_admissions_total",
		Help: "POST /v1/predict/batch requests by admission: admitted, or refused with 503 because too many batches were in progress.",
	}, []string{"result"})
	admitted, refused := admissions.WithLabelValues("admitted"), admissions.WithLabelValues("refused")
	if deps.Registry != nil {
		if err := deps.Registry.Register(admissions); err != nil {
			return nil, nil, err
		}
	}
	s.batches = newAdmission(cfg.BatchConcurrency, cfg.BatchQueue, cfg.BatchWait, func(ok bool) {
		if ok {
			admitted.Inc()
		} else {
			refused.Inc()
		}
	})

	app := fiber.New(fiber.Config{
		AppName:               "mlservice",
		BodyLimit:             cfg.BodyLimit,
		ReadTimeout:           cfg.ReadTimeout,
		WriteTimeout:          cfg.WriteTimeout,
		IdleTimeout:           cfg.IdleTimeout,
		DisableStartupMessage: true,
		ErrorHandler:          s.writeError,
	})
	app.Server().HeaderReceived = s.protocolReads.headerReceived
	app.Use(s.requestID)
	prom := fiberprometheus.NewWithRegistry(deps.Registry, "mlservice", "http", "", nil)
	prom.RegisterAt(app, "/metrics")
	app.Use(prom.Middleware)
	// Errors become responses here, inside the metrics middleware, so the
	// HTTP metrics count a 422 as a 422 and not as the 500 an unhandled
	// error looks like.
	app.Use(func(c *fiber.Ctx) error {
		if err := c.Next(); err != nil {
			return s.writeError(c, err)
		}
		return nil
	})
	app.Use(contentEncoding(cfg.BodyLimit))

	app.Get("/", s.info)
	app.Get("/health", s.health)
	app.Get("/ready", s.ready)
	app.Get("/openapi.json", s.openAPI)
	app.Get("/docs", s.docs)
	app.Get("/docs/:file", s.docsAsset)
	app.Post("/v1/predict", s.predict)
	app.Post("/v1/predict/batch", s.predictBatch)
	for _, mount := range deps.Mount {
		mount(app)
	}
	return app, s, nil
}

const requestIDKey = "request_id"

// requestID echoes a usable incoming X-Request-ID or makes one, and sets it on
// the response. The value is copied: Fiber reuses header buffers.
func (s *Server) requestID(c *fiber.Ctx) error {
	if s.draining.Load() {
		c.Context().SetConnectionClose()
	}
	s.protocolReads.done(c.Context())
	s.setRequestID(c)
	return c.Next()
}

func (s *Server) setRequestID(c *fiber.Ctx) {
	id := ""
	if in := c.Request().Header.Peek(fiber.HeaderXRequestID); usableRequestID(in) {
		id = string(in)
	} else {
		id = s.idPrefix + "-" + strconv.FormatUint(s.idSeq.Add(1), 36)
	}
	c.Locals(requestIDKey, id)
	c.Set(fiber.HeaderXRequestID, id)
}

func usableRequestID(b []byte) bool {
	if len(b) == 0 || len(b) > 128 {
		return false
	}
	for _, ch := range b {
		if ch < 0x21 || ch > 0x7e {
			return false
		}
	}
	return true
}

func requestID(c *fiber.Ctx) string {
	id, _ := c.Locals(requestIDKey).(string)
	return id
}

func (s *Server) health(c *fiber.Ctx) error {
	return c.JSON(fiber.Map{"status": "ok"})
}

func (s *Server) ready(c *fiber.Ctx) error {
	if s.draining.Load() {
		return &Error{Status: fiber.StatusServiceUnavailable, Code: CodeNotReady, Message: "shutting down"}
	}
	st := s.deps.Status()
	t := s.deps.Router.Current()
	if !st.Ready || t == nil {
		reason := st.Reason
		if reason == "" {
			reason = "no champion loaded"
		}
		return &Error{Status: fiber.StatusServiceUnavailable, Code: CodeNotReady, Message: reason}
	}
	out := fiber.Map{
		"ready":    true,
		"source":   st.Source,
		"champion": fiber.Map{"name": t.Model, "version": t.Champion.Version.Number, "sha256": t.Champion.Version.SHA256},
		"registry": st.Registry,
	}
	if st.Reason != "" {
		out["degraded"] = st.Reason // serving, but the last registry sync failed
	}
	return c.JSON(out)
}

func (s *Server) info(c *fiber.Ctx) error {
	var live []fiber.Map
	if t := s.deps.Router.Current(); t != nil {
		for _, l := range t.Live() {
			live = append(live, fiber.Map{"variant": l.Variant, "version": l.Version, "sha256": l.SHA256, "weight": l.Weight})
		}
	}
	return c.JSON(fiber.Map{
		"service":  "mlservice",
		"purpose":  "loan decisions for the legacy IT system",
		"model":    s.cfg.Model,
		"live":     live,
		"build":    s.deps.Build,
		"openapi":  "/openapi.json",
		"docs":     "/docs",
		"predict":  "POST /v1/predict",
		"batch":    "POST /v1/predict/batch",
		"maxBatch": schemas.MaxBatch,
	})
}

func (s *Server) openAPI(c *fiber.Ctx) error {
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	return c.Send(s.openapi)
}
