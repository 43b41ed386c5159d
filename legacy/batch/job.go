package batch

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"mlservice/internal/retry"
	"mlservice/legacy/client"
)

// Decider decides many applications in one call; *client.Client is one.
type Decider interface {
	DecideBatch(ctx context.Context, apps []client.Application) ([]client.Result, error)
}

var _ Decider = (*client.Client)(nil)

// The columns of the two files the job writes.
var (
	decisionHeader = []string{"line", "application_id", "name", "approve", "probability", "model", "model_version", "variant", "request_id"}
	rejectHeader   = []string{"line", "application_id", "name", "reason", "retry"}
)

const (
	// retryYes marks a row left undecided by an outage or a stop: a rerun
	// tries it again. retryNo marks a row the service or the job refused:
	// it needs fixing in the legacy system first.
	retryYes = "yes"
	retryNo  = "no"
)

// Errors Run returns when the job finished but not every row was decided.
var (
	ErrRowsRejected  = errors.New("some rows were rejected; see the rejects file")
	ErrRowsUndecided = errors.New("some rows could not be decided now; run the same command again to resume")
)

// Job is one run over an export.
type Job struct {
	In      string // the legacy export
	Out     string // decisions, appended
	Rejects string // rows without a decision and why (default: Out with .rejects.csv for .csv)
	// ChunkSize is the number of applications per call (default 500; the
	// service takes at most 10,000).
	ChunkSize int
	Decider   Decider
	// Retry paces retries of a chunk after an outage (the shared policy:
	// network errors, 429 and 5xx); after Retry.Attempts failed tries the
	// job stops and reports the rest.
	Retry retry.Policy
	// Status receives progress and the summary (usually stderr);
	// Terminal says whether it is a terminal.
	Status   io.Writer
	Terminal bool
	Now      func() time.Time
}

// Summary counts what happened to the export's rows.
type Summary struct {
	Rows            int // rows in the export
	AlreadyDecided  int // decided by an earlier run
	AlreadyRejected int // rejected by an earlier run, not sent again
	Decided         int // decided by this run
	Rejected        int // rejected by this run
	Undecided       int // left for a rerun
}

func (s Summary) String() string {
	return fmt.Sprintf("%d rows: %d decided now, %d decided before, %d rejected now, %d rejected before, %d not decided",
		s.Rows, s.Decided, s.AlreadyDecided, s.Rejected, s.AlreadyRejected, s.Undecided)
}

// Run decides every row not yet in the decisions or rejects file. It
// returns ErrRowsRejected or ErrRowsUndecided (or both, joined) when it
// finished with rows that have no decision; any other error means it could
// not run.
func (j *Job) Run(ctx context.Context) (Summary, error) {
	j.defaults()
	var sum Summary
	in, err := os.Open(j.In)
	if err != nil {
		return sum, err
	}
	rows, err := ReadExport(in)
	in.Close()
	if err != nil {
		return sum, fmt.Errorf("%s: %w", j.In, err)
	}
	sum.Rows = len(rows)

	decisions, decided, err := openLedger(j.Out, decisionHeader)
	if err != nil {
		return sum, err
	}
	defer decisions.Close()
	rejects, rejectedLines, err := openRejects(j.Rejects)
	if err != nil {
		return sum, err
	}
	defer rejects.Close()

	todo, refused := j.plan(rows, decided, rejectedLines, &sum)
	if err := rejects.append(refused); err != nil {
		return sum, err
	}
	sum.Rejected += len(refused)

	if sum.AlreadyDecided+sum.AlreadyRejected > 0 {
		fmt.Fprintf(j.Status, "resuming: %d rows already decided, %d already rejected\n", sum.AlreadyDecided, sum.AlreadyRejected)
	}
	progress := NewProgress(j.Status, j.Terminal, len(todo), j.Now)
	for start := 0; start < len(todo); start += j.ChunkSize {
		chunk := todo[start:min(start+j.ChunkSize, len(todo))]
		done, refused, err := j.decide(ctx, chunk, progress)
		if err != nil {
			// The service stayed down (or the job was stopped): keep the
			// rest for the rerun, and say so row by row.
			reason := "not decided: " + oneLine(err.Error())
			var left [][]string
			for _, r := range todo[start:] {
				left = append(left, []string{strconv.Itoa(r.Line), r.ID, r.Name, reason, retryYes})
			}
			if werr := rejects.append(left); werr != nil {
				return sum, werr
			}
			sum.Undecided = len(left)
			break
		}
		// Decisions first: a crash between the two appends re-sends only
		// the refused rows, which the service refuses again.
		if err := decisions.append(done); err != nil {
			return sum, err
		}
		if err := rejects.append(refused); err != nil {
			return sum, err
		}
		sum.Decided += len(done)
		sum.Rejected += len(refused)
		progress.Add(len(chunk))
	}
	if len(todo) > 0 {
		progress.Finish()
	}
	fmt.Fprintln(j.Status, sum)

	var errs []error
	if sum.Rejected+sum.AlreadyRejected > 0 {
		errs = append(errs, ErrRowsRejected)
	}
	if sum.Undecided > 0 {
		errs = append(errs, ErrRowsUndecided)
	}
	return sum, errors.Join(errs...)
}

func (j *Job) defaults() {
	if j.Rejects == "" {
		j.Rejects = strings.TrimSuffix(j.Out, ".csv") + ".rejects.csv"
	}
	if j.ChunkSize <= 0 {
		j.ChunkSize = 500
	}
	if j.Status == nil {
		j.Status = io.Discard
	}
}

// openRejects keeps the rejects that a rerun would only repeat (retry=no)
// and drops those left by an outage, whose rows are tried again; it
// returns the kept rows' line numbers.
func openRejects(path string) (*ledger, map[int]bool, error) {
	l, rows, err := openLedger(path, rejectHeader)
	if err != nil {
		return nil, nil, err
	}
	var keep [][]string
	lines := map[int]bool{}
	for _, r := range rows {
		if r[4] == retryNo {
			keep = append(keep, r)
			n, _ := strconv.Atoi(r[0])
			lines[n] = true
		}
	}
	if len(keep) == len(rows) {
		return l, lines, nil
	}
	l.Close()
	if err := rewriteLedger(path, rejectHeader, keep); err != nil {
		return nil, nil, err
	}
	l, _, err = openLedger(path, rejectHeader)
	return l, lines, err
}

// plan sorts the rows into those to send and those refused before sending:
// malformed, or reusing an earlier row's application_id (the id is what
// makes a rerun skip a row, so it must name one row only).
func (j *Job) plan(rows []Row, decided [][]string, rejectedLines map[int]bool, sum *Summary) ([]Row, [][]string) {
	done := make(map[string]bool, len(decided))
	for _, d := range decided {
		done[d[1]] = true
	}
	firstLine := make(map[string]int, len(rows))
	var todo []Row
	var refused [][]string
	for _, r := range rows {
		first, dup := firstLine[r.ID]
		if !dup {
			firstLine[r.ID] = r.Line
		}
		switch {
		case rejectedLines[r.Line]:
			sum.AlreadyRejected++
		case dup:
			refused = append(refused, []string{strconv.Itoa(r.Line), r.ID, r.Name,
				fmt.Sprintf("application_id %s is already used on line %d", r.ID, first), retryNo})
		case done[r.ID]:
			sum.AlreadyDecided++
		case r.Problem != "":
			refused = append(refused, []string{strconv.Itoa(r.Line), r.ID, r.Name, r.Problem, retryNo})
		default:
			todo = append(todo, r)
		}
	}
	return todo, refused
}

// decide sends one chunk, retrying outages with backoff, and returns the
// decision rows and the rows the service refused.
func (j *Job) decide(ctx context.Context, chunk []Row, progress *Progress) (done, refused [][]string, err error) {
	apps := make([]client.Application, len(chunk))
	for i, r := range chunk {
		apps[i] = r.Application
	}
	var results []client.Result
	err = retry.Do(ctx, j.Retry, func(ctx context.Context) error {
		results, err = j.Decider.DecideBatch(ctx, apps)
		return err
	}, func(attempt int, wait time.Duration, err error) {
		progress.Note(fmt.Sprintf("chunk of %d rows from line %d: try %d failed (%v); retrying in %s",
			len(chunk), chunk[0].Line, attempt, err, wait.Round(time.Millisecond)))
	})
	if err != nil {
		return nil, nil, err
	}
	for i, res := range results {
		r := chunk[i]
		if res.Refusal != nil {
			refused = append(refused, []string{strconv.Itoa(r.Line), r.ID, r.Name, refusalReason(res.Refusal), retryNo})
			continue
		}
		d := res.Decision
		done = append(done, []string{strconv.Itoa(r.Line), r.ID, r.Name, strconv.FormatBool(d.Approve),
			strconv.FormatFloat(d.Probability, 'g', -1, 64), d.Model.Name, d.Model.Version, d.Model.Variant, d.RequestID})
	}
	return done, refused, nil
}

// refusalReason is the service's 422 for one row as one line, fields sorted.
func refusalReason(e *client.APIError) string {
	names := make([]string, 0, len(e.Fields))
	for f := range e.Fields {
		names = append(names, f)
	}
	slices.Sort(names)
	parts := []string{"refused by the decision service (" + e.Code + ")"}
	for _, f := range names {
		parts = append(parts, f+": "+e.Fields[f])
	}
	return strings.Join(parts, "; ")
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
