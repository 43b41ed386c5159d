package batch

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
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
	decisionHeader = []string{"line", "application_id", "name", "approve", "probability", "model", "model_version", "variant", "request_id",
		"decision_id", "model_sha256",
		"reason_1_code", "reason_1", "reason_2_code", "reason_2", "reason_3_code", "reason_3", "reason_4_code", "reason_4"}
	rejectHeader = []string{"line", "application_id", "name", "reason", "retry"}
)

// maxReasons is how many reasons the decisions file has columns for (the
// service gives 1 to 4 for a decline).
const maxReasons = 4

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

	verb string // what happens to a row: "decided" (default), "posted"
}

// Verb is what happens to a row: decided, or posted (outcomes).
func (s Summary) Verb() string { return cmp.Or(s.verb, "decided") }

func (s Summary) String() string {
	v := s.Verb()
	return fmt.Sprintf("%d rows: %d %s now, %d %s before, %d rejected now, %d rejected before, %d not %s",
		s.Rows, s.Decided, v, s.AlreadyDecided, v, s.Rejected, s.AlreadyRejected, s.Undecided, v)
}

// Run decides every row not yet in the decisions or rejects file. It
// returns ErrRowsRejected or ErrRowsUndecided (or both, joined) when it
// finished with rows that have no decision; any other error means it could
// not run.
func (j *Job) Run(ctx context.Context) (Summary, error) {
	j.defaults()
	return fileJob{in: j.In, out: j.Out, rejects: j.Rejects, read: ReadExport, header: decisionHeader,
		chunkSize: j.ChunkSize, progress: j.progress,
		settle: func(ctx context.Context, chunk []Row, p *Progress) chunkResult {
			return failingService(chunk, j.decide(ctx, chunk, p, j.Retry))
		},
	}.run(ctx)
}

// fileJob is the shape of both jobs: rows from an input file, each settled
// once into an append-only ledger (out) or the rejects file, resumable.
type fileJob struct {
	in, out, rejects string
	read             func(io.Reader) ([]Row, error)
	header           []string // the ledger's columns; column 1 is application_id
	chunkSize        int
	settle           func(context.Context, []Row, *Progress) chunkResult
	progress         func(total int) *Progress
	verb             string // Summary's verb
}

func (f fileJob) run(ctx context.Context) (Summary, error) {
	sum := Summary{verb: f.verb}
	in, err := os.Open(f.in)
	if err != nil {
		return sum, err
	}
	rows, err := f.read(in)
	in.Close()
	if err != nil {
		return sum, fmt.Errorf("%s: %w", f.in, err)
	}
	sum.Rows = len(rows)

	done, settled, err := openLedger(f.out, f.header)
	if err != nil {
		return sum, err
	}
	defer done.Close()
	rejects, rejected, err := openRejects(f.rejects)
	if err != nil {
		return sum, err
	}
	defer rejects.Close()

	todo, refused := plan(rows, settled, rejected, &sum)
	if err := rejects.append(refused); err != nil {
		return sum, err
	}
	sum.Rejected += len(refused)

	stop, err := settleAll(ctx, todo, f.chunkSize, f.settle, done, rejects, f.progress(len(todo)), &sum)
	if err != nil {
		return sum, err
	}
	var fatal *fatalError
	if errors.As(stop, &fatal) {
		return sum, fatal.err
	}
	return sum, sum.outcome()
}

// fatalError stops a job as "could not run" (exit 1) rather than "rows left
// for a rerun": a rerun would meet it again (a refused token, say).
type fatalError struct{ err error }

func (e *fatalError) Error() string { return e.err.Error() }
func (e *fatalError) Unwrap() error { return e.err }

func (j *Job) progress(total int) *Progress { return NewProgress(j.Status, j.Terminal, total, j.Now) }

// chunkResult is what became of one chunk's rows: done (for the ledger),
// refused (for the rejects file, retry=no) and, when the service stayed
// down or the job was stopped, the rows left undecided and why.
type chunkResult struct {
	done, refused [][]string
	left          []Row
	err           error
	// faults counts the refused rows the service failed on (their own
	// call failed, or its answer was no usable decision), as opposed to the
	// rows whose fields it refused.
	faults int
}

// minFailingChunk is the smallest chunk that, the service failing on every
// one of its rows, says the service is failing rather than its rows.
const minFailingChunk = 4

// failingService turns a chunk the service failed on row by row into the
// service failing: one bad row costs only itself, but a chunk with not one
// row the service can decide is a service that fails everything (a broken
// release answering 500 to every call), and its rows are left for the
// rerun (retry=yes) and the job stops, instead of every row of the export
// being rejected for good.
func failingService(chunk []Row, res chunkResult) chunkResult {
	if len(chunk) < minFailingChunk || len(res.done) > 0 || res.err != nil || res.faults < len(chunk) {
		return res
	}
	return chunkResult{left: chunk, err: fmt.Errorf("the decision service failed on each of the %d rows from line %d: it is failing, not the rows (last: %s)",
		len(chunk), chunk[0].Line, res.refused[len(res.refused)-1][3])}
}

// settleAll sends todo in chunks through settle, appending each chunk's
// rows to the ledger and the rejects as it goes, until every row is
// settled or the service stays down; then the rows left are reported in the
// rejects file (retry=yes) for the rerun. It returns the error that
// stopped it early (nil when every chunk was sent) and any error that
// stops the job at once (a disk write failing).
func settleAll(ctx context.Context, todo []Row, chunkSize int, settle func(context.Context, []Row, *Progress) chunkResult,
	done, rejects *ledger, progress *Progress, sum *Summary) (stop, err error) {
	if sum.AlreadyDecided+sum.AlreadyRejected > 0 {
		fmt.Fprintf(progress.w, "resuming: %d rows already %s, %d already rejected\n", sum.AlreadyDecided, sum.Verb(), sum.AlreadyRejected)
	}
	for start := 0; start < len(todo); start += chunkSize {
		chunk := todo[start:min(start+chunkSize, len(todo))]
		res := settle(ctx, chunk, progress)
		// Done rows first: a crash between the two appends re-sends only
		// the refused rows, which the service refuses again.
		if err := done.append(res.done); err != nil {
			return nil, err
		}
		if err := rejects.append(res.refused); err != nil {
			return nil, err
		}
		sum.Decided += len(res.done)
		sum.Rejected += len(res.refused)
		if res.err != nil {
			// The service stayed down (or the job was stopped): keep the
			// rest for the rerun, and say so row by row.
			reason := "not " + sum.Verb() + ": " + oneLine(res.err.Error())
			var left [][]string
			for _, r := range append(res.left, todo[start+len(chunk):]...) {
				left = append(left, []string{strconv.Itoa(r.Line), r.ID, r.Name, reason, retryYes})
			}
			if err := rejects.append(left); err != nil {
				return nil, err
			}
			sum.Undecided = len(left)
			stop = res.err
			break
		}
		progress.Add(len(chunk))
	}
	if len(todo) > 0 {
		progress.Finish()
	}
	fmt.Fprintln(progress.w, *sum)
	return stop, nil
}

// outcome is the job's result for the scheduler: ErrRowsRejected and/or
// ErrRowsUndecided when rows are left without a decision.
func (s Summary) outcome() error {
	var errs []error
	if s.Rejected+s.AlreadyRejected > 0 {
		errs = append(errs, ErrRowsRejected)
	}
	if s.Undecided > 0 {
		errs = append(errs, ErrRowsUndecided)
	}
	return errors.Join(errs...)
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

// rejectedRow names a row of the rejects file by its line and its
// application_id: the line alone could be another row's once the legacy
// system writes the export again in another order.
type rejectedRow struct {
	line int
	id   string
}

// openRejects keeps the rejects that a rerun would only repeat (retry=no)
// and drops those left by an outage, whose rows are tried again; it
// returns the kept rows.
func openRejects(path string) (*ledger, map[rejectedRow]bool, error) {
	l, rows, err := openLedger(path, rejectHeader)
	if err != nil {
		return nil, nil, err
	}
	var keep [][]string
	kept := map[rejectedRow]bool{}
	for _, r := range rows {
		if r[4] == retryNo {
			keep = append(keep, r)
			n, _ := strconv.Atoi(r[0])
			kept[rejectedRow{n, r[1]}] = true
		}
	}
	if len(keep) == len(rows) {
		return l, kept, nil
	}
	l.Close()
	if err := rewriteLedger(path, rejectHeader, keep); err != nil {
		return nil, nil, err
	}
	l, _, err = openLedger(path, rejectHeader)
	return l, kept, err
}

// plan sorts the rows into those to send and those refused before sending:
// malformed, or reusing an earlier row's application_id (the id is what
// makes a rerun skip a row, so it must name one row only).
func plan(rows []Row, decided [][]string, rejected map[rejectedRow]bool, sum *Summary) ([]Row, [][]string) {
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
		case rejected[rejectedRow{r.Line, r.ID}]:
			sum.AlreadyRejected++
		case dup:
			refused = append(refused, rejectRow(r, fmt.Sprintf("application_id %s is already used on line %d", r.ID, first)))
		case done[r.ID]:
			sum.AlreadyDecided++
		case r.Problem != "":
			refused = append(refused, rejectRow(r, r.Problem))
		default:
			todo = append(todo, r)
		}
	}
	return todo, refused
}

// decide sends one chunk, retrying outages with backoff (policy), and
// returns the decision rows and the rows the service refused. A failure
// that is not an outage (a server fault, an answer that cannot be read)
// may be caused by one row, so the chunk is split in halves and each half
// decided on its own, down to the row: one bad row costs only itself (a
// reject, retry=no), never its chunk.
func (j *Job) decide(ctx context.Context, chunk []Row, progress *Progress, policy retry.Policy) chunkResult {
	apps := make([]client.Application, len(chunk))
	for i, r := range chunk {
		apps[i] = r.Application
	}
	var results []client.Result
	err := retry.Do(ctx, policy, func(ctx context.Context) error {
		var err error
		results, err = j.Decider.DecideBatch(ctx, apps)
		return err
	}, func(attempt int, wait time.Duration, err error) {
		progress.Note(fmt.Sprintf("chunk of %d rows from line %d: try %d failed (%v); retrying in %s",
			len(chunk), chunk[0].Line, attempt, err, wait.Round(time.Millisecond)))
	})
	switch {
	case err == nil:
	case client.Outage(err) || ctx.Err() != nil:
		return chunkResult{left: chunk, err: err}
	case refusedCall(err):
		return chunkResult{left: chunk, err: &fatalError{err: fmt.Errorf(
			"the decision service refused the call itself, not one of its rows (is -api the service's address, and the service a version with /v1/predict/batch?): %w", err)}}
	case len(chunk) == 1:
		r := chunk[0]
		return chunkResult{refused: [][]string{rejectRow(r, "the decision service cannot decide this row: "+oneLine(err.Error()))}, faults: 1}
	default:
		return j.split(ctx, chunk, progress, policy, err)
	}
	var res chunkResult
	for i, out := range results {
		r := chunk[i]
		switch {
		case out.Refusal != nil:
			res.refused = append(res.refused, rejectRow(r, refusalReason(out.Refusal)))
		case client.Unusable(*out.Decision) != "":
			res.refused = append(res.refused, rejectRow(r, "the decision service gave no usable decision: "+client.Unusable(*out.Decision)))
			res.faults++
		default:
			res.done = append(res.done, decisionRow(r, out.Decision))
		}
	}
	return res
}

// refusedCall reports whether err is a 4xx for the call as a whole that no
// row can have caused and smaller calls cannot cure (404 from a wrong -api,
// 401 or 403 from a gateway, 415): halving the chunk would only reject every
// row for good. A body too large (413) or too slow to arrive (408) is cured
// by halving, and a row's own refusal comes in its result, not as the
// call's status.
func refusedCall(err error) bool {
	e, ok := errors.AsType[*client.APIError](err)
	return ok && e.Status/100 == 4 && e.Status != http.StatusRequestEntityTooLarge && e.Status != http.StatusRequestTimeout
}

// split decides the two halves of a chunk that failed as a whole (cause).
// The halves get one retry each for a fault; an outage still gets the whole
// policy, so a service going down mid-split is waited for as before.
func (j *Job) split(ctx context.Context, chunk []Row, progress *Progress, policy retry.Policy, cause error) chunkResult {
	mid := len(chunk) / 2
	progress.Note(fmt.Sprintf("chunk of %d rows from line %d failed (%v); deciding it in two halves to find the row",
		len(chunk), chunk[0].Line, oneLine(cause.Error())))
	half := policy
	half.Attempts = min(policy.Attempts, 2)
	if half.Attempts <= 0 {
		half.Attempts = 2
	}
	var res chunkResult
	for i, part := range [][]Row{chunk[:mid], chunk[mid:]} {
		r := j.decide(ctx, part, progress, half)
		if r.err != nil && client.Outage(r.err) && ctx.Err() == nil {
			r = j.decide(ctx, part, progress, policy)
		}
		res.done = append(res.done, r.done...)
		res.refused = append(res.refused, r.refused...)
		res.faults += r.faults
		if r.err != nil {
			res.left, res.err = r.left, r.err
			if i == 0 {
				res.left = append(res.left, chunk[mid:]...)
			}
			return res
		}
	}
	return res
}

// decisionRow is one line of the decisions file.
func decisionRow(r Row, d *client.Decision) []string {
	row := []string{strconv.Itoa(r.Line), r.ID, r.Name, strconv.FormatBool(d.Approve),
		strconv.FormatFloat(d.Probability, 'g', -1, 64), d.Model.Name, d.Model.Version, d.Model.Variant, d.RequestID,
		d.DecisionID, d.Model.SHA256}
	for i := range maxReasons {
		if i < len(d.Reasons) {
			row = append(row, d.Reasons[i].Code, d.Reasons[i].Text)
		} else {
			row = append(row, "", "")
		}
	}
	return row
}

// rejectRow is one line of the rejects file for a row that needs fixing.
func rejectRow(r Row, reason string) []string {
	return []string{strconv.Itoa(r.Line), r.ID, r.Name, reason, retryNo}
}

// refusalReason is the service's 422 for one row as one line, fields sorted.
func refusalReason(e *client.APIError) string {
	names := make([]string, 0, len(e.Fields))
	for f := range e.Fields {
		names = append(names, f)
	}
	slices.Sort(names)
	parts := []string{"refused by the decision service (" + e.Code + ")"}
	if len(names) == 0 && e.Message != "" {
		parts = append(parts, e.Message)
	}
	for _, f := range names {
		parts = append(parts, f+": "+e.Fields[f])
	}
	return strings.Join(parts, "; ")
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
