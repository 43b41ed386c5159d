// Command serve is the ML Service model server: it serves the loan-approval
// model versions that the registry's aliases point at on POST /v1/predict.
//
// main only turns an error into an exit code; run wires the parts.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"syscall"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"golang.org/x/sync/errgroup"

	"mlservice/artifacts"
	"mlservice/registry"
	"mlservice/registry/lastserved"
	"mlservice/registry/local"
	"mlservice/registry/mlflow"
	"mlservice/serve/admin"
	"mlservice/serve/api"
	"mlservice/serve/auth"
	"mlservice/serve/decision"
	"mlservice/serve/drift"
	"mlservice/serve/hooks"
	"mlservice/serve/inference"
	"mlservice/serve/metrics"
	"mlservice/serve/models"
	"mlservice/serve/oip"
	"mlservice/serve/outcomes"
	"mlservice/serve/record"
	"mlservice/serve/rollout"
	"mlservice/serve/routing"
	"mlservice/serve/shadow"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	go func() {
		// First signal: graceful shutdown. Restoring the default handlers
		// makes a second signal stop the process at once.
		<-ctx.Done()
		stop()
	}()
	if err := run(ctx, os.Args[1:], os.Getenv, os.Stderr); err != nil {
		fmt.Fprintf(os.Stderr, "mlservice: %v\n", err)
		os.Exit(1)
	}
}

// tokensReload is how often the tokens file is read for changes: a person
// taken out of it loses access within this long, without a restart.
const tokensReload = 5 * time.Second

func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	cfg, err := loadConfig(args, getenv, stderr)
	if err != nil {
		return fmt.Errorf("start-up failed: %w", err)
	}
	log := newLogger(stderr, cfg.LogLevel)

	if err := inference.Init(cfg.ORTLibrary); err != nil {
		return fmt.Errorf("start-up failed: %w", err)
	}
	regs, err := sources(cfg)
	if err != nil {
		return fmt.Errorf("start-up failed: %w", err)
	}
	tokens, err := auth.Load(cfg.TokensFile, cfg.AdminToken)
	if err != nil {
		return fmt.Errorf("start-up failed: SERVE_TOKENS_FILE: %w", err)
	}

	if cfg.MemoryLimit > 0 {
		debug.SetMemoryLimit(cfg.MemoryLimit)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	modelMetrics := metrics.New(reg)
	cache := &registry.Cache{Dir: cfg.CacheDir}
	loader := &models.Loader{
		Cache: cache,
		Open: func(path string) (models.Scorer, error) {
			return inference.Open(path, inference.Options{IntraOpThreads: cfg.InferThreads})
		},
		Check:    decision.ServingCheck,
		Sessions: modelMetrics,
		Log:      log,
	}
	var observers []decision.Observer
	if cfg.DriftWindow > 0 {
		tracker := drift.NewTracker(reg, cfg.DriftWindow, nil)
		loader.Drift = tracker
		observers = append(observers, decision.DriftObserver{Tracker: tracker})
	}
	audit := log.With("component", "admin")
	authn := auth.NewAuthenticator(auth.Config{Tokens: tokens, TrustedProxies: cfg.TrustedProxies,
		Audit: log.With("component", "auth"), Registerer: reg})
	// The decision record: every decision is written before its answer.
	recorder, err := openRecord(ctx, cfg, reg, log)
	if err != nil {
		return fmt.Errorf("start-up failed: %w", err)
	}
	var decisionRecorder decision.Recorder = decision.NopRecorder{}
	// The bank's outcomes live beside the decisions they judge.
	var outcomeStore outcomes.Store
	if recorder != nil {
		outcomeStore, _ = recorder.Store().(outcomes.Store)
		decisionRecorder = recorder
		defer recorder.Close() // after the HTTP server and the shadow worker have stopped
	}
	// recordHealth is nil while the record can take decisions.
	recordHealth := func() error {
		if recorder != nil {
			return recorder.Health()
		}
		return nil
	}
	// Each served model has its own routing table, controller (aliases,
	// traffic, fallbacks) and decision path; they share the registries, the
	// cache, the loader, the record and the metrics (labelled by model). The
	// first is the loan model: /v1 and /ready are its, and /admin's default
	// (?model= names another).
	changes := rollout.NewChanges(reg)
	served := make([]*servedModel, len(cfg.Models))
	adminModels := make([]admin.Model, len(cfg.Models))
	for i, name := range cfg.Models {
		m := &servedModel{name: name, router: &routing.Router{}, mirror: shadow.New(shadow.DefaultQueue), recordHealth: recordHealth}
		m.controller = rollout.New(rollout.Config{
			Model: name, Source: regs.source, Fallbacks: regs.fallbacks, Writer: regs.writer, Remembered: regs.remembered,
			Loader: loader, Router: m.router, Cache: cache, Metrics: modelMetrics, Changes: changes,
			Log: log, Audit: audit, Interval: cfg.PollInterval, LoadTimeout: cfg.LoadTimeout,
			AllowWithoutReasons: cfg.AllowWithoutReasons,
		})
		m.decisions = decision.New(decision.Config{Router: m.router, Mirror: m.mirror, Recorder: decisionRecorder, Observers: observers})
		served[i] = m
		adminModels[i] = admin.Model{Name: name, Controller: m.controller, Router: m.router}
	}
	loan := served[0]
	router, controller, decisions := loan.router, loan.controller, loan.decisions
	// Readiness: the controller's, and the record's (no record, no decision).
	status := loan.status

	// The controller, the shadow worker and the HTTP server run as one
	// group: they start together, and when one stops (a signal, a failure)
	// the others are stopped and waited for. The background actors stop
	// after the HTTP server, so in-flight requests still have them.
	group, groupCtx := errgroup.WithContext(context.WithoutCancel(ctx))
	background, stopBackground := context.WithCancel(groupCtx)
	defer func() {
		stopBackground()
		_ = group.Wait()
	}()
	for _, m := range served {
		group.Go(func() error {
			m.controller.Run(background)
			return actorStopped(background, "the model controller of "+m.name)
		})
		group.Go(func() error {
			return errors.Join(m.mirror.Run(background, m.decisions), actorStopped(background, "the shadow worker of "+m.name))
		})
	}
	if cfg.TokensFile != "" {
		group.Go(func() error {
			authn.Watch(background, cfg.TokensFile, cfg.AdminToken, tokensReload, log.With("component", "auth"))
			return actorStopped(background, "the tokens file watch")
		})
	}
	// In local mode a model that cannot load is a start-up error. With MLflow
	// the server listens at once (so /health answers while MLflow is slow)
	// and /ready says 503 with the reason until a champion is loaded.
	// A signal during that first sync is a shutdown, not a failure.
	if cfg.TrackingURI == "" {
		for _, m := range served {
			if err := m.controller.Sync(ctx); err != nil && m.router.Current() == nil && ctx.Err() == nil {
				return fmt.Errorf("start-up failed: SERVE_MODEL=%q: %w", m.name, err)
			}
		}
	}
	oipModels := make([]oip.Model, len(served))
	for i, m := range served {
		oipModels[i] = m.oipModel()
	}

	var httpAPI *api.Server
	batchQueue := cfg.BatchQueue
	if batchQueue == 0 {
		batchQueue = -1 // api.Config: 0 is its default, negative none
	}
	app, httpAPI, err := api.New(api.Config{Model: cfg.Model, BatchConcurrency: cfg.BatchConcurrency, BatchQueue: batchQueue}, api.Deps{
		Decisions: decisions, Router: router, Status: status, Registry: reg, Log: log, Build: buildInfo(),
		Mount: []func(fiber.Router){
			func(r fiber.Router) {
				admin.Mount(r, admin.Config{Auth: authn, Models: adminModels,
					Metrics: modelMetrics, Audit: audit, Outcomes: outcomeStore})
			},
			func(r fiber.Router) {
				if recorder != nil {
					record.Mount(r, record.RoutesConfig{Store: recorder.Store(),
						Read: authn.Require(auth.Admin, auth.Audit), Admin: authn.Require(auth.Admin),
						Principal: auth.Name, Remote: authn.Remote, Audit: log.With("component", "record")})
					if outcomeStore != nil {
						(&outcomes.Handler{Store: outcomeStore, Metrics: outcomes.NewMetrics(reg), Principal: auth.Name}).
							Mount(r, authn.Require(auth.Admin, auth.Audit))
					}
				}
			},
			func(r fiber.Router) {
				hooks.Mount(r, hooks.Config{Secret: cfg.WebhookSecret, Log: log.With("component", "webhook"),
					Trigger: func() {
						for _, m := range served {
							m.controller.Trigger()
						}
					}})
			},
			func(r fiber.Router) {
				oip.Mount(r, oip.Config{
					ServerVersion: serverVersion(),
					Models:        oipModels,
					Draining:      func() bool { return httpAPI != nil && httpAPI.Draining() },
					Log:           log.With("component", "oip"),
				})
			},
		},
	})
	if err != nil {
		return fmt.Errorf("start-up failed: %w", err)
	}
	// What this build serves, for ops at debug level and for the test that
	// holds the routes to /openapi.json.
	for _, r := range app.GetRoutes(true) {
		log.Debug("route", "method", r.Method, "path", r.Path)
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("start-up failed: SERVE_ADDR=%q: %w", cfg.Addr, err)
	}
	log.Info("serving", "addr", ln.Addr().String(), "model", cfg.Model, "models", cfg.Models, "registry", regs.source.Describe(),
		"status", controller.Status().Source, "onnxruntime", inference.Version())

	group.Go(func() error {
		defer stopBackground()
		served := make(chan error, 1)
		go func() { served <- app.Listener(ln) }()
		select {
		case err := <-served:
			return fmt.Errorf("server stopped: %w", err)
		case <-groupCtx.Done(): // another actor failed
			_ = app.ShutdownWithTimeout(cfg.ShutdownTimeout)
			return nil
		case <-ctx.Done():
		}
		// Drain first: connections a busy server has not accepted yet would be
		// reset if the listener closed now, so keep serving (with /ready 503 and
		// Connection: close) for the drain period, then stop accepting.
		log.Info("shutting down: draining", "drain", cfg.ShutdownDrain.String(), "timeout", cfg.ShutdownTimeout.String())
		httpAPI.Drain()
		time.Sleep(cfg.ShutdownDrain)
		if err := app.ShutdownWithTimeout(cfg.ShutdownTimeout); err != nil {
			return fmt.Errorf("shutdown: %w", err)
		}
		return nil
	})
	if err := group.Wait(); err != nil {
		return err
	}
	log.Info("stopped")
	return nil
}

// servedModel is one model the server serves: its routing table, the
// controller that owns it and its decision path.
type servedModel struct {
	name       string
	router     *routing.Router
	controller *rollout.Controller
	mirror     *shadow.Mirror
	decisions  *decision.Path
	// recordHealth says why the decision record cannot take decisions.
	recordHealth func() error
}

// status is the model's readiness: its controller's, and the record's.
func (m *servedModel) status() rollout.Status {
	st := m.controller.Status()
	if err := m.recordHealth(); err != nil {
		st.Ready, st.Reason = false, err.Error()
	}
	return st
}

// oipModel is the model as /v2/models/{name} serves it.
func (m *servedModel) oipModel() oip.Model {
	return oip.Model{Name: m.name, Router: m.router, Decider: &oip.Path{Decisions: m.decisions},
		Ready: func() (bool, string) {
			st := m.status()
			return st.Ready && m.router.Current() != nil, st.Reason
		}}
}

// actorStopped is an actor's result when it returns: nil when the group
// asked it to stop, an error when it stopped on its own.
func actorStopped(ctx context.Context, name string) error {
	if ctx.Err() != nil {
		return nil
	}
	return fmt.Errorf("%s stopped unexpectedly", name)
}

// registries is where versions come from and where /admin writes.
type registries struct {
	source     registry.Source
	writer     registry.Writer
	fallbacks  []registry.Source
	remembered rollout.Remembered
}

// sources picks where versions come from. With MLFLOW_TRACKING_URI set: the
// MLflow registry (any model it has, embedded or not), falling back to what
// this server last served from it (verified cache, sha256-pinned) and, only
// with SERVE_ALLOW_EMBEDDED_FALLBACK=true, to the embedded artifacts. Without
// it: the local registry over artifacts/ with its state file.
func sources(cfg config) (registries, error) {
	if cfg.TrackingURI == "" {
		tree, err := artifactsTree(cfg)
		if err != nil {
			return registries{}, err
		}
		r := &local.Registry{Tree: tree, Dir: filepath.Join(cfg.CacheDir, "state")}
		return registries{source: r, writer: r}, nil
	}
	client, err := mlflow.New(mlflow.Config{TrackingURI: cfg.TrackingURI,
		Username: cfg.TrackingUsername, Password: cfg.TrackingPassword, Token: cfg.TrackingToken})
	if err != nil {
		return registries{}, fmt.Errorf("MLFLOW_TRACKING_URI=%q: %w", redactURL(cfg.TrackingURI), err)
	}
	regs := registries{source: client, writer: client}
	if cfg.TrackingWriteUsername != "" {
		if regs.writer, err = mlflow.New(mlflow.Config{TrackingURI: cfg.TrackingURI,
			Username: cfg.TrackingWriteUsername, Password: cfg.TrackingWritePassword}); err != nil {
			return registries{}, fmt.Errorf("MLFLOW_TRACKING_URI: %w", err)
		}
	}
	last := &lastserved.Dir{Path: filepath.Join(cfg.CacheDir, "lastserved"), Registry: client}
	regs.remembered = last
	regs.fallbacks = []registry.Source{last.Source(), refusedEmbedded{}}
	if cfg.AllowEmbeddedFallback {
		tree, err := artifactsTree(cfg)
		if err != nil {
			return registries{}, fmt.Errorf("SERVE_ALLOW_EMBEDDED_FALLBACK: %w", err)
		}
		regs.fallbacks[1] = tree
	}
	return regs, nil
}

// refusedEmbedded stands for the embedded artifacts in MLflow mode without
// the opt-in, so that /ready says why they do not serve.
type refusedEmbedded struct{}

func (refusedEmbedded) Key() string      { return "refused-embedded" }
func (refusedEmbedded) Kind() string     { return "artifacts" }
func (refusedEmbedded) Describe() string { return "embedded artifacts" }
func (refusedEmbedded) State(context.Context, string) (registry.State, error) {
	return registry.State{}, errors.New("not served in MLflow mode: they are not versions MLflow approved (set SERVE_ALLOW_EMBEDDED_FALLBACK=true to serve them anyway)")
}
func (refusedEmbedded) Download(context.Context, string, string, string) error {
	return errors.New("the embedded artifacts are not served in MLflow mode")
}

// artifactsTree is the tree of artifacts/: the copy embedded in the binary,
// or a directory given by SERVE_ARTIFACTS_DIR.
func artifactsTree(cfg config) (*local.Tree, error) {
	if cfg.ArtifactsDir != "" {
		return &local.Tree{FS: os.DirFS(cfg.ArtifactsDir), Name: cfg.ArtifactsDir}, nil
	}
	// Every model must be there in local mode; with MLflow (the opt-in
	// fallback) the loan model must, the others fall back where the name matches.
	names := cfg.Models
	if cfg.TrackingURI != "" {
		names = names[:1]
	}
	for _, name := range names {
		if _, err := fs.Stat(artifacts.FS, name); err != nil {
			return nil, fmt.Errorf("SERVE_MODEL=%q: no such model in the embedded artifacts", name)
		}
	}
	return &local.Tree{FS: artifacts.FS, Name: "embedded artifacts"}, nil
}

func newLogger(w io.Writer, level string) *slog.Logger {
	var l slog.Level
	_ = l.UnmarshalText([]byte(level))
	return slog.New(slog.NewJSONHandler(w, &slog.HandlerOptions{Level: l}))
}

// serverVersion is what GET /v2 reports: the commit the binary was built
// from, or "dev".
func serverVersion() string {
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				return s.Value[:12]
			}
		}
	}
	return "dev"
}

func buildInfo() map[string]string {
	info := map[string]string{"started": time.Now().UTC().Format(time.RFC3339)}
	if bi, ok := debug.ReadBuildInfo(); ok {
		info["go"] = bi.GoVersion
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" || s.Key == "vcs.modified" {
				info[s.Key] = s.Value
			}
		}
	}
	if v := inference.Version(); v != "" {
		info["onnxruntime"] = v
	}
	return info
}

// openRecord opens the decision record's store (SQLite in SERVE_DATA_DIR, or
// PostgreSQL at SERVE_DECISIONS_URL) and starts its Recorder; nil with
// SERVE_DECISIONS_URL=off.
func openRecord(ctx context.Context, cfg config, reg prometheus.Registerer, log *slog.Logger) (*record.Recorder, error) {
	if cfg.DecisionsURL == "off" {
		log.Warn("the decision record is off (SERVE_DECISIONS_URL=off): decisions are answered without being recorded; for benchmarks only")
		return nil, nil
	}
	store, writers, err := openStore(ctx, cfg, log)
	if err != nil {
		if cfg.DecisionsURL != "" {
			return nil, fmt.Errorf("SERVE_DECISIONS_URL=%s: %w", strconv.Quote(redactURL(cfg.DecisionsURL)), err)
		}
		return nil, fmt.Errorf("SERVE_DATA_DIR=%q: %w", cfg.DataDir, err)
	}
	log.Info("decision record", "backend", store.Backend(), "sync", cfg.DecisionsSync, "retention", cfg.Retention.String(), "schema", record.SchemaVersion())
	return record.New(store, record.Config{Writers: writers, Retention: cfg.Retention, Registerer: reg,
		Log: log.With("component", "record")}), nil
}

// openStore opens the record's store, waiting while PostgreSQL cannot be
// reached (refused, unresolved, timed out, or still starting up) until it can or
// a signal ends the start: a replica started during a database outage or
// failover then serves as soon as the database does, instead of exiting into
// its supervisor's crash-loop backoff. Any other error (credentials, schema)
// stops the start at once.
func openStore(ctx context.Context, cfg config, log *slog.Logger) (record.Store, int, error) {
	wait := time.Second
	for {
		openCtx, cancel := context.WithTimeout(ctx, 30*time.Second)
		store, writers, err := record.Open(openCtx, cfg.DataDir, cfg.DecisionsURL, cfg.DecisionsSync)
		cancel()
		if err == nil || cfg.DecisionsURL == "" || !record.Unreachable(err) {
			return store, writers, err
		}
		log.Warn("waiting for the decision record", "error", err.Error(), "retry_in", wait.String())
		select {
		case <-ctx.Done():
			return nil, 0, err
		case <-time.After(wait):
		}
		wait = min(2*wait, 15*time.Second)
	}
}
