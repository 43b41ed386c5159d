package batch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"mlservice/internal/retry"
	"mlservice/legacy/client"
)

// Poster posts outcomes; *client.Client is one.
type Poster interface {
	PostOutcomes(ctx context.Context, outs []client.Outcome) ([]client.OutcomeResult, error)
}

var _ Poster = (*client.Client)(nil)

// postedHeader are the columns of the posted-outcomes ledger.
var postedHeader = []string{"line", "application_id", "approved", "decisions"}

// OutcomeJob posts the day's outcomes (the bank's final verdict on each
// application the service decided) from a CSV with the columns
// application_id and approved, to POST /v1/outcomes, chunk by chunk. Like
// the decisions, it is resumable: every posted outcome is appended and
// fsynced to Out, a rerun skips those, and rows that cannot be posted go to
// the rejects file with the reason.
type OutcomeJob struct {
	In      string // the outcomes file
	Out     string // posted outcomes, appended
	Rejects string // default: Out with .rejects.csv for .csv
	// ChunkSize is the number of outcomes per call (default 500; the
	// service takes at most 10,000).
	ChunkSize int
	Poster    Poster
	// Retry paces retries of a chunk after an outage; after Retry.Attempts
	// failed tries the job stops and reports the rest.
	Retry    retry.Policy
	Status   io.Writer
	Terminal bool
	Now      func() time.Time
}

// Run posts every row not yet in the posted or rejects file. Like Job.Run
// it returns ErrRowsRejected and/or ErrRowsUndecided when rows are left;
// any other error means it could not run (the token refused, say).
func (j *OutcomeJob) Run(ctx context.Context) (Summary, error) {
	if j.Rejects == "" {
		j.Rejects = strings.TrimSuffix(j.Out, ".csv") + ".rejects.csv"
	}
	if j.ChunkSize <= 0 {
		j.ChunkSize = 500
	}
	if j.Status == nil {
		j.Status = io.Discard
	}
	return fileJob{in: j.In, out: j.Out, rejects: j.Rejects, read: ReadOutcomes, header: postedHeader,
		chunkSize: j.ChunkSize, verb: "posted", settle: j.post,
		progress: func(total int) *Progress { return NewProgress(j.Status, j.Terminal, total, j.Now) },
	}.run(ctx)
}

// post sends one chunk, retrying outages.
func (j *OutcomeJob) post(ctx context.Context, chunk []Row, progress *Progress) chunkResult {
	outs := make([]client.Outcome, len(chunk))
	for i, r := range chunk {
		outs[i] = client.Outcome{ApplicationID: r.ID, Approved: r.Approved}
	}
	var results []client.OutcomeResult
	err := retry.Do(ctx, j.Retry, func(ctx context.Context) error {
		var err error
		results, err = j.Poster.PostOutcomes(ctx, outs)
		return err
	}, func(attempt int, wait time.Duration, err error) {
		progress.Note(fmt.Sprintf("outcomes from line %d: try %d failed (%v); retrying in %s",
			chunk[0].Line, attempt, err, wait.Round(time.Millisecond)))
	})
	if err != nil {
		if client.Outage(err) || ctx.Err() != nil {
			return chunkResult{left: chunk, err: err}
		}
		// Not one row's problem: the token, the route, the request.
		return chunkResult{left: chunk, err: &fatalError{err: explainPostFailure(err)}}
	}
	var res chunkResult
	for i, out := range results {
		r := chunk[i]
		switch {
		case out.Refusal == nil:
			res.done = append(res.done, []string{strconv.Itoa(r.Line), r.ID, strconv.FormatBool(r.Approved), strconv.Itoa(out.Decisions)})
		case out.Refusal.Status == http.StatusServiceUnavailable:
			// The service's decision record is down: the job stops here, and
			// this and the remaining rows are posted on the rerun.
			res.left = append(res.left, r)
			res.err = out.Refusal
		case out.Refusal.Status == http.StatusNotFound:
			res.refused = append(res.refused, rejectRow(r, "the decision service has no decision for this application ("+out.Refusal.Code+")"))
		default:
			res.refused = append(res.refused, rejectRow(r, refusalReason(out.Refusal)))
		}
	}
	return res
}

// explainPostFailure says what to do about a call the service refused as a
// whole.
func explainPostFailure(err error) error {
	e, ok := errors.AsType[*client.APIError](err)
	switch {
	case ok && e.Status == http.StatusUnauthorized:
		return fmt.Errorf("the decision service refused the token (401): set LEGACY_API_TOKEN or -token-file to a token with the role admin or audit: %w", err)
	case ok && e.Status == http.StatusForbidden:
		return fmt.Errorf("the decision service refused the token (403): it needs the role admin or audit: %w", err)
	case ok && e.Status == http.StatusNotFound:
		return fmt.Errorf("the decision service has no POST /v1/outcomes (404): is it a version that takes outcomes? %w", err)
	}
	return fmt.Errorf("the decision service refused the outcomes: %w", err)
}

// ReadOutcomes reads an outcomes file: a header line with the columns
// application_id and approved (any order, any case, extra columns ignored),
// then one outcome per line. approved is true/false, yes/no, y/n or 1/0.
// A malformed row is returned with its Problem, never dropped.
func ReadOutcomes(r io.Reader) ([]Row, error) {
	return readRows(r, []string{"application_id", "approved"}, func(line int, rec, header []string, col map[string]int) Row {
		row := Row{Line: line, ID: field(rec, col, "application_id")}
		raw := field(rec, col, "approved")
		switch {
		case len(rec) != len(header):
			row.Problem = fmt.Sprintf("has %d columns, the header has %d", len(rec), len(header))
		case row.ID == "":
			row.Problem = "application_id is empty"
		default:
			approved, ok := parseVerdict(raw)
			if !ok {
				row.Problem = fmt.Sprintf("approved: not true or false (%q)", clip(raw, 40))
			}
			row.Approved = approved
		}
		if row.ID == "" {
			row.ID = derivedID(line, rec)
		}
		return row
	})
}

func parseVerdict(s string) (approved, ok bool) {
	switch strings.ToLower(s) {
	case "true", "yes", "y", "1", "approved":
		return true, true
	case "false", "no", "n", "0", "declined":
		return false, true
	}
	return false, false
}
