// Command serve is the ML Service model server: it serves the loan-approval
// model versions that the registry's aliases point at on POST /v1/predict.
//
// main only turns an error into an exit code; run wires the parts.
package main

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/debug"
	"syscall"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"mlservice/artifacts"
	"mlservice/registry"
	"mlservice/registry/mlflow"
	"mlservice/serve/admin"
	"mlservice/serve/api"
	"mlservice/serve/hooks"
	"mlservice/serve/inference"
	"mlservice/serve/metrics"
	"mlservice/serve/models"
	"mlservice/serve/oip"
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

func run(ctx context.Context, args []string, getenv func(string) string, stderr io.Writer) error {
	cfg, err := loadConfig(args, getenv, stderr)
	if err != nil {
		return fmt.Errorf("start-up failed: %w", err)
	}
	log := newLogger(stderr, cfg.LogLevel)

	if err := inference.Init(cfg.ORTLibrary); err != nil {
		return fmt.Errorf("start-up failed: %w", err)
	}
	local, err := localRegistry(cfg)
	if err != nil {
		return fmt.Errorf("start-up failed: %w", err)
	}
	source, writer, fallbacks, err := sources(cfg, local)
	if err != nil {
		return fmt.Errorf("start-up failed: %w", err)
	}

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	modelMetrics := metrics.New(reg)
	router := &routing.Router{}
	loader := &models.Loader{
		Cache: &registry.Cache{Dir: cfg.CacheDir},
		Open: func(path string) (models.Scorer, error) {
			s, err := inference.Open(path, inference.Options{IntraOpThreads: cfg.InferThreads})
			if err != nil {
				return nil, err
			}
			modelMetrics.SessionOpened()
			return &countedSession{Session: s, metrics: modelMetrics}, nil
		},
	}
	controller := rollout.New(rollout.Config{
		Model: cfg.Model, Source: source, Fallbacks: fallbacks, Writer: writer, Loader: loader, Router: router,
		Metrics: modelMetrics, Log: log, Interval: cfg.PollInterval,
	})
	ctrlCtx, stopController := context.WithCancel(context.WithoutCancel(ctx))
	controllerDone := make(chan struct{})
	go func() {
		defer close(controllerDone)
		controller.Run(ctrlCtx)
	}()
	defer func() {
		stopController()
		<-controllerDone
	}()
	// In local mode a model that cannot load is a start-up error. With MLflow
	// the server listens at once (so /health answers while MLflow is slow)
	// and /ready says 503 with the reason until a champion is loaded.
	if cfg.TrackingURI == "" {
		if err := controller.Sync(ctx); err != nil && router.Current() == nil {
			return fmt.Errorf("start-up failed: SERVE_MODEL=%q: %w", cfg.Model, err)
		}
	}

	mirror := shadow.New(shadow.DefaultQueue)
	go mirror.Run(ctrlCtx)

	var httpAPI *api.Server
	app, httpAPI, err := api.New(api.Config{Model: cfg.Model}, api.Deps{
		Router: router, Status: controller.Status, Registry: reg, Log: log, Build: buildInfo(), Shadow: mirror,
		Mount: []func(fiber.Router){
			func(r fiber.Router) {
				admin.Mount(r, admin.Config{Token: cfg.AdminToken, Controller: controller, Router: router,
					Metrics: modelMetrics, Audit: log.With("component", "admin")})
			},
			func(r fiber.Router) {
				hooks.Mount(r, hooks.Config{Secret: cfg.WebhookSecret, Trigger: controller.Trigger, Log: log.With("component", "webhook")})
			},
			func(r fiber.Router) {
				oip.Mount(r, oip.Config{
					ServerVersion: serverVersion(),
					Models: []oip.Model{{Name: cfg.Model, Router: router,
						Ready: func() (bool, string) {
							st := controller.Status()
							return st.Ready && router.Current() != nil, st.Reason
						},
						Decider: &oip.Direct{Router: router, Shadow: mirror}}},
					Draining: func() bool { return httpAPI != nil && httpAPI.Draining() },
					Log:      log.With("component", "oip"),
				})
			},
		},
	})
	if err != nil {
		return fmt.Errorf("start-up failed: %w", err)
	}
	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("start-up failed: SERVE_ADDR=%q: %w", cfg.Addr, err)
	}
	log.Info("serving", "addr", ln.Addr().String(), "model", cfg.Model, "registry", source.Describe(),
		"status", controller.Status().Source, "onnxruntime", inference.Version())

	served := make(chan error, 1)
	go func() { served <- app.Listener(ln) }()
	select {
	case err := <-served:
		return fmt.Errorf("server stopped: %w", err)
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
	log.Info("stopped")
	return nil
}

// countedSession keeps model_sessions_open in step with the sessions.
type countedSession struct {
	*inference.Session
	metrics *metrics.Models
}

// Tensors describes the model's tensors for /v2's metadata.
func (s *countedSession) Tensors() (inputs, outputs []models.TensorInfo) {
	in, out := s.Session.Tensors()
	conv := func(ts []inference.Tensor) []models.TensorInfo {
		infos := make([]models.TensorInfo, len(ts))
		for i, t := range ts {
			infos[i] = models.TensorInfo{Name: t.Name, DataType: t.DataType, Shape: t.Shape}
		}
		return infos
	}
	return conv(in), conv(out)
}

func (s *countedSession) Close() error {
	s.metrics.SessionClosed()
	return s.Session.Close()
}

// sources picks where versions come from. With MLFLOW_TRACKING_URI set: the
// MLflow registry, remembered on disk, falling back to the remembered state
// over the verified cache and then to the embedded artifacts. Without it: the
// local registry over artifacts/ with its state file.
func sources(cfg config, local *registry.Local) (registry.Source, rollout.Writer, []registry.Source, error) {
	if cfg.TrackingURI == "" {
		ls := &registry.LocalState{Local: local, Dir: filepath.Join(cfg.CacheDir, "state")}
		return ls, ls, nil, nil
	}
	client, err := mlflow.New(mlflow.Config{TrackingURI: cfg.TrackingURI,
		Username: cfg.TrackingUsername, Password: cfg.TrackingPassword, Token: cfg.TrackingToken})
	if err != nil {
		return nil, nil, nil, fmt.Errorf("MLFLOW_TRACKING_URI=%q: %w", cfg.TrackingURI, err)
	}
	memory := &registry.Memory{Source: client, Dir: filepath.Join(cfg.CacheDir, "remembered")}
	return memory, client, []registry.Source{memory.Offline(), local}, nil
}

// localRegistry is the registry over artifacts/: the copy embedded in the
// binary, or a directory given by SERVE_ARTIFACTS_DIR.
func localRegistry(cfg config) (*registry.Local, error) {
	if cfg.ArtifactsDir != "" {
		return &registry.Local{FS: os.DirFS(cfg.ArtifactsDir), Name: cfg.ArtifactsDir}, nil
	}
	if _, err := fs.Stat(artifacts.FS, cfg.Model); err != nil {
		return nil, fmt.Errorf("SERVE_MODEL=%q: no such model in the embedded artifacts", cfg.Model)
	}
	return &registry.Local{FS: artifacts.FS, Name: "embedded artifacts"}, nil
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
