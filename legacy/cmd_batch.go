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
	f := fileFlags(fs, "the legacy export (CSV with a header line)", "decisions file", "rows without a decision", "applications per call to /v1/predict/batch")
	if err := f.parse(fs, args); err != nil {
		return err
	}
	job := &batch.Job{
		In: f.in, Out: f.out, Rejects: f.rejects, ChunkSize: f.chunk,
		Decider:  f.client(""),
		Retry:    f.policy(),
		Status:   stderr,
		Terminal: isTerminal(stderr),
	}
	_, err := job.Run(ctx)
	return exitFor(err)
}

// jobFlags are the flags both file jobs (batch, outcomes) take.
type jobFlags struct {
	in, out, rejects, api string
	chunk, retries        int
	timeout, backoff, max time.Duration
}

// fileFlags defines the jobs' flags on fs; the words say what this job's
// files and calls are.
func fileFlags(fs *flag.FlagSet, input, output, rejected, perCall string) *jobFlags {
	f := &jobFlags{}
	fs.StringVar(&f.in, "in", "", input+" (required)")
	fs.StringVar(&f.out, "out", "", output+", appended and resumed (required)")
	fs.StringVar(&f.rejects, "rejects", "", rejected+", with the reason (default: <out>.rejects.csv)")
	fs.StringVar(&f.api, "api", "http://127.0.0.1:8000", "decision service base URL")
	fs.IntVar(&f.chunk, "chunk", 500, perCall+" (at most 10000)")
	fs.DurationVar(&f.timeout, "timeout", time.Minute, "how long one call may take")
	fs.IntVar(&f.retries, "retries", 8, "tries per chunk before the job stops and reports the rest")
	fs.DurationVar(&f.backoff, "backoff", 500*time.Millisecond, "first wait between tries; doubles each time (±50% at random)")
	fs.DurationVar(&f.max, "backoff-max", 30*time.Second, "longest wait between tries")
	return f
}

func (f *jobFlags) parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	if f.in == "" || f.out == "" {
		return errors.New(fs.Name() + ": -in and -out are required")
	}
	if f.chunk < 1 || f.chunk > 10000 {
		return errors.New(fs.Name() + ": -chunk must be between 1 and 10000")
	}
	return nil
}

func (f *jobFlags) client(token string) *client.Client {
	return &client.Client{BaseURL: f.api, HTTP: &http.Client{Timeout: f.timeout}, Token: token}
}

func (f *jobFlags) policy() retry.Policy {
	return retry.Policy{Initial: f.backoff, Max: f.max, Attempts: f.retries}
}

// exitFor gives a job's error its exit code.
func exitFor(err error) error {
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
