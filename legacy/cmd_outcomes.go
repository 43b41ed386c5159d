package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"

	"mlservice/legacy/batch"
)

// runOutcomes posts the day's outcomes; its exit codes are the batch's.
func runOutcomes(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("legacy outcomes", flag.ContinueOnError)
	fs.SetOutput(stderr)
	f := fileFlags(fs, "the outcomes (CSV with application_id and approved)", "posted outcomes", "rows not posted", "outcomes per call to /v1/outcomes")
	tokenFile := fs.String("token-file", "", "file holding the bearer token (default: $LEGACY_API_TOKEN)")
	if err := f.parse(fs, args); err != nil {
		return err
	}
	token := os.Getenv("LEGACY_API_TOKEN")
	if *tokenFile != "" {
		b, err := os.ReadFile(*tokenFile)
		if err != nil {
			return fmt.Errorf("legacy outcomes: -token-file: %w", err)
		}
		token = strings.TrimSpace(string(b))
	}
	if token == "" {
		return errors.New("legacy outcomes: no token: set LEGACY_API_TOKEN or -token-file (a token with the role admin or audit)")
	}
	job := &batch.OutcomeJob{
		In: f.in, Out: f.out, Rejects: f.rejects, ChunkSize: f.chunk,
		Poster:   f.client(token),
		Retry:    f.policy(),
		Status:   stderr,
		Terminal: isTerminal(stderr),
	}
	_, err := job.Run(ctx)
	return exitFor(err)
}
