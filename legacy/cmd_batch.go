package main

import (
	"context"
	"errors"
	"flag"
	"io"
	"net/http"
	"os"
	"time"

	"golang.org/x/term"

	"mlservice/internal/retry"
	"mlservice/legacy/batch"
	"mlservice/legacy/client"
)

// runBatch decides a legacy export; its exit code tells the scheduler
// whether every row was decided.
func runBatch(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("legacy batch", flag.ContinueOnError)
	fs.SetOutput(stderr)
	in := fs.String("in", "", "the legacy export (CSV with a header line) (required)")
	out := fs.String("out", "", "decisions file, appended and resumed (required)")
	rejects := fs.String("rejects", "", "rows without a decision, with the reason (default: <out>.rejects.csv)")
	api := fs.String("api", "http://127.0.0.1:8000", "decision service base URL")
	chunk := fs.Int("chunk", 500, "applications per call to /v1/predict/batch (at most 10000)")
	timeout := fs.Duration("timeout", time.Minute, "how long one call may take")
	retries := fs.Int("retries", 8, "tries per chunk before the job stops and reports the rest")
	backoff := fs.Duration("backoff", 500*time.Millisecond, "first wait between tries; doubles each time (±50% at random)")
	backoffMax := fs.Duration("backoff-max", 30*time.Second, "longest wait between tries")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *in == "" || *out == "" {
		return errors.New("legacy batch: -in and -out are required")
	}
	if *chunk < 1 || *chunk > 10000 {
		return errors.New("legacy batch: -chunk must be between 1 and 10000")
	}
	job := &batch.Job{
		In: *in, Out: *out, Rejects: *rejects, ChunkSize: *chunk,
		Decider:  &client.Client{BaseURL: *api, HTTP: &http.Client{Timeout: *timeout}},
		Retry:    retry.Policy{Initial: *backoff, Max: *backoffMax, Attempts: *retries},
		Status:   stderr,
		Terminal: isTerminal(stderr),
	}
	_, err := job.Run(ctx)
	switch {
	case errors.Is(err, batch.ErrRowsUndecided):
		return &exitError{code: exitUndecided, err: err}
	case errors.Is(err, batch.ErrRowsRejected):
		return &exitError{code: exitRejected, err: err}
	}
	return err
}

// isTerminal reports whether w is a terminal, to draw a progress bar there
// and plain lines anywhere else.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}
