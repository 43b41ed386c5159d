package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"mlservice/internal/retry"
	"mlservice/legacy/client"
	"mlservice/legacy/queue"
	"mlservice/legacy/web"
)

// runWeb serves the loan officer's form and runs the queue's Retrier
// beside it until ctx ends.
func runWeb(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("legacy web", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", ":8080", "listen address of the form")
	api := fs.String("api", "http://127.0.0.1:8000", "decision service base URL")
	dir := fs.String("queue", "", "directory that keeps applications and decisions (required)")
	timeout := fs.Duration("timeout", 5*time.Second, "how long to wait for the decision service before queueing")
	retryMin := fs.Duration("retry-min", time.Second, "first wait before retrying queued applications")
	retryMax := fs.Duration("retry-max", time.Minute, "longest wait between retries")
	refresh := fs.Int("refresh", 5, "seconds between self-reloads of a waiting application's page")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *dir == "" {
		return errors.New("legacy web: -queue is required (a directory, e.g. /var/lib/legacy/queue)")
	}
	log := slog.New(slog.NewTextHandler(stderr, nil))
	q, err := queue.Open(*dir, nil)
	if err != nil {
		return err
	}
	decider := &client.Client{BaseURL: *api, HTTP: &http.Client{Timeout: *timeout}}
	form, err := web.New(web.Config{Queue: q, Decider: decider, Log: log, RefreshSeconds: *refresh})
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	retrier := &queue.Retrier{Queue: q, Decider: decider, Log: log,
		Retry: retry.Policy{Initial: *retryMin, Max: *retryMax}, Interval: *retryMin}
	srv := &http.Server{Handler: form, ReadHeaderTimeout: 5 * time.Second, ReadTimeout: 15 * time.Second,
		WriteTimeout: *timeout + 15*time.Second, IdleTimeout: time.Minute}

	retried := make(chan error, 1)
	go func() { retried <- retrier.Run(ctx) }()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	log.Info("loan application form listening", "addr", ln.Addr().String(), "api", *api, "queue", *dir)

	select {
	case err = <-served:
	case <-ctx.Done():
		shutdownCtx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err = srv.Shutdown(shutdownCtx)
		cancel()
	}
	<-retried
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}
