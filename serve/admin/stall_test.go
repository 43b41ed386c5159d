package admin

import (
	"context"
	"log/slog"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"

	"mlservice/artifacts"
	"mlservice/internal/registrytest"
	"mlservice/internal/servetest"
	"mlservice/registry"
	"mlservice/registry/local"
	"mlservice/serve/api"
	"mlservice/serve/auth"
	"mlservice/serve/decision"
	"mlservice/serve/inference"
	"mlservice/serve/metrics"
	"mlservice/serve/models"
	"mlservice/serve/rollout"
	"mlservice/serve/routing"
)

// Issue 13 item 2 / issue 12 item 8, through the real controller: a
// registry download hangs; GET /admin/models still answers at once, and an
// admin action cancels the stalled load and answers.
func TestStalledDownloadBlocksNeitherReadsNorActions(t *testing.T) {
	if err := inference.Init(servetest.ORTLibrary(t)); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	writable := &local.Registry{Tree: &local.Tree{FS: artifacts.FS, Name: "embedded artifacts"}, Dir: t.TempDir()}
	src := registrytest.NewStalling(writable, "1")
	reg := prometheus.NewRegistry()
	log := slog.New(slog.NewTextHandler(testLog{t}, nil))
	router := &routing.Router{}
	ctrl := rollout.New(rollout.Config{
		Model: "loan-approval", Source: src, Writer: writable, Router: router, Metrics: metrics.New(reg),
		Changes: rollout.NewChanges(reg), Log: log, AllowWithoutReasons: true,
		Loader: &models.Loader{Cache: &registry.Cache{Dir: t.TempDir()}, Check: decision.ServingCheck,
			Open: func(path string) (models.Scorer, error) {
				return inference.Open(path, inference.Options{IntraOpThreads: 1})
			}},
	})
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); ctrl.Run(runCtx) }()
	t.Cleanup(func() { stop(); <-done })
	if err := ctrl.Sync(ctx); err != nil {
		t.Fatal(err)
	}

	tokens, _ := auth.New(nil, testToken)
	app := fiber.New(fiber.Config{ErrorHandler: api.ErrorHandler(log)})
	Mount(app, Config{Auth: auth.NewAuthenticator(auth.Config{Tokens: tokens, Registerer: reg, Audit: log}),
		Models: []Model{{Name: "loan-approval", Controller: ctrl, Router: router}}, Metrics: metrics.New(prometheus.NewRegistry()), Audit: log, Timeout: 10 * time.Second})
	call := func(method, path, body string) (int, time.Duration) {
		req := httptest.NewRequest(method, path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+testToken)
		if body != "" {
			req.Header.Set("Content-Type", "application/json")
		}
		start := time.Now()
		resp, err := app.Test(req, 20_000)
		if err != nil {
			t.Fatal(err)
		}
		return resp.StatusCode, time.Since(start)
	}

	// Someone sets the challenger alias; the poll starts a download that hangs.
	if err := writable.SetAlias(ctx, "loan-approval", "challenger", "1"); err != nil {
		t.Fatal(err)
	}
	ctrl.Trigger()
	select {
	case <-src.Started:
	case <-time.After(10 * time.Second):
		t.Fatal("the download never started")
	}
	for range 5 {
		if status, took := call("GET", "/admin/models", ""); status != 200 || took > 500*time.Millisecond {
			t.Fatalf("GET /admin/models during a stalled download: %d after %v", status, took)
		}
	}
	status, took := call("POST", "/admin/retire", `{"alias":"challenger"}`)
	t.Logf("POST /admin/retire during a stalled download: %d after %v", status, took)
	if status != 200 || took > 5*time.Second {
		t.Fatalf("retire during a stalled download: %d after %v", status, took)
	}
	select {
	case <-src.Cancelled:
	default:
		t.Fatal("the stalled download was not cancelled")
	}
	if d := ctrl.Desired(); d.Challenger != "" || d.Champion != "3" { // the shipped champion (artifacts/loan-approval/registry.json)
		t.Fatalf("desired after the retire: %+v", d)
	}
}

type testLog struct{ t *testing.T }

func (w testLog) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}
