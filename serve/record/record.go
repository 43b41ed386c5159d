// Package record is the decision record: every decision the server makes —
// each /v1/predict answer, each batch item, each shadow decision — written
// durably before its answer is sent, kept for the retention period and read
// back by application id or decision id, or exported by time range.
//
// The Recorder is the decision path's decision.Recorder. It encodes a call's
// decisions into groups (one row per version and variant, in the binary
// layout of frames.go; the read routes get the JSON documents built from
// it), and a writer goroutine commits whatever has queued up in one
// transaction (group commit: many requests share one fsync). A failed write fails the requests that
// waited for it (ErrUnavailable → 503 record_unavailable) and marks the
// record unhealthy for /ready until a write or a probe succeeds again.
//
// Two backends implement Store with the same schema and versioned
// migrations applied at start-up: SQLite for a single server (under
// SERVE_DATA_DIR: a journal, journal.go, that makes each commit durable with
// one small fdatasync, and the database file in WAL mode that a loader
// fills from it), and PostgreSQL (SERVE_DECISIONS_URL=postgres://…) for
// several replicas. The record is
// append-only: a trigger refuses UPDATE, and only the retention purge
// deletes, never a record under legal hold.
package record

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Group is what the store writes as one row: the decisions of one Record
// call made by one model version in one variant (at most groupMax of them).
// A single prediction is a group of one; a 1,000-row batch is one group per
// variant. Storing a request's decisions together, compressed, is what makes
// the record cheap: the per-decision cost is an encode, not a row with its
// own index entries (see Store.Index).
type Group struct {
	Time                    time.Time // UTC, the decisions' time; stored as unix microseconds
	Model, Version, Variant string
	Served                  bool
	Decisions               int
	// Keys are the decisions' application ids and verdicts in position
	// order, as JSON (appendKey): what the application index is built from.
	Keys []byte
	// Encoding is the payload's (encodingBinary, or encodingS2Frames).
	Encoding int
	// Payload is the decisions, s2-compressed (encodeGroup).
	Payload []byte
}

// inlineIndex is the largest group indexed in the transaction that writes
// it: single predictions are readable by application id through the index
// at once; larger groups (batches) are queued for Store.Index, so a batch's
// commit costs one row instead of one index entry per decision.
const inlineIndex = 64

// groupMax caps the decisions of one group, so reading one decision
// decompresses at most that many documents and one indexing step is short.
const groupMax = 1024

// readers is the size of each backend's pool of reading connections
// (lookups, exports; on SQLite also the checkpoint's first step), apart
// from the connections that commit: an export streams as slowly as its
// client reads, and reads must never stop decisions being recorded.
const readers = 4

// Store is a backend of the decision record. Implementations are safe for
// concurrent use.
type Store interface {
	// Append writes groups durably in one transaction: all of them or none.
	// Groups of at most inlineIndex decisions are indexed by application id
	// at once (PostgreSQL: in the same transaction; SQLite: as the loader
	// takes them from the journal); larger ones are queued for Index.
	Append(ctx context.Context, groups []Group) error
	// Index adds queued groups to the application index, about max
	// decisions at a time, and returns how many it indexed and how many are
	// still queued. Until then ByApplication finds them by scanning the
	// queue, so a lookup always sees every committed decision.
	Index(ctx context.Context, max int) (indexed, backlog int, err error)
	// ByApplication calls fn with the documents of every decision about an
	// application, newest first.
	ByApplication(ctx context.Context, applicationID string, fn func(doc []byte) error) error
	// Export calls fn with the document of every decision made in
	// [from, to), oldest first, streaming.
	Export(ctx context.Context, from, to time.Time, fn func(doc []byte) error) error
	// Purge deletes decisions made before cutoff, except those about an
	// application under legal hold, and returns how many it deleted. A legal
	// hold keeps the whole group (the request) its decisions are in.
	Purge(ctx context.Context, cutoff time.Time) (int64, error)
	// SetHold puts an application's decisions under legal hold (on) or lifts
	// the hold; by names the person. Setting a hold the application already
	// has for the same reason changes nothing (a retry); for another reason
	// it is a *HeldError and the hold stays as it was.
	SetHold(ctx context.Context, applicationID, by, reason string, on bool, at time.Time) error
	// Holds lists the applications under legal hold.
	Holds(ctx context.Context) ([]Hold, error)
	// Probe writes to the store (not to the record) to learn whether it
	// takes writes.
	Probe(ctx context.Context) error
	// Backend names the kind of store: "sqlite" or "postgres".
	Backend() string
	Close() error
}

// Hold is one application under legal hold.
type Hold struct {
	ApplicationID string    `json:"application_id"`
	SetAt         time.Time `json:"set_at"`
	SetBy         string    `json:"set_by"`
	Reason        string    `json:"reason"`
}

// HeldError is SetHold's answer for an application already under legal
// hold for another reason. A hold is one matter's: had a second matter's
// hold replaced it, the first matter's lift would free the second's
// records for the purge too, and the list would no longer name who held
// them first.
type HeldError struct{ Hold Hold }

func (e *HeldError) Error() string {
	if e.Hold.SetBy == "" { // lifted between the refusal and the read
		return e.Hold.ApplicationID + " was under another legal hold a moment ago; retry"
	}
	return fmt.Sprintf("%s is already under legal hold, set by %s at %s: %q; lift it first to hold it for another reason",
		e.Hold.ApplicationID, e.Hold.SetBy, e.Hold.SetAt.Format(time.RFC3339), e.Hold.Reason)
}

// setHoldSQL sets a hold unless one is there: for the same reason it is
// left as it was (its rows count as one changed), for another untouched
// (none changed).
const setHoldSQL = `INSERT INTO legal_holds (application_id, set_at, set_by, reason) VALUES (?, ?, ?, ?)
	ON CONFLICT (application_id) DO UPDATE SET reason = legal_holds.reason WHERE legal_holds.reason = excluded.reason`

// heldBy is the *HeldError for an application whose hold setHoldSQL left
// alone.
func heldBy(ctx context.Context, q querier, applicationID string) error {
	hs, err := holdsOf(ctx, q, applicationID)
	if err != nil {
		return err
	}
	e := &HeldError{Hold: Hold{ApplicationID: applicationID}}
	if len(hs) == 1 {
		e.Hold = hs[0]
	}
	return e
}

var (
	// ErrUnavailable means the record could not be written: the decision must
	// not be answered (503 record_unavailable).
	ErrUnavailable = errors.New("the decision record is unavailable")
	// ErrClosed means the Recorder has been closed.
	ErrClosed = errors.New("record: closed")
)

// UnavailableError wraps the store's error; errors.Is(err, ErrUnavailable).
type UnavailableError struct{ Err error }

func (e *UnavailableError) Error() string { return ErrUnavailable.Error() + ": " + e.Err.Error() }

// Unwrap returns both the sentinel and the cause.
func (e *UnavailableError) Unwrap() []error { return []error{ErrUnavailable, e.Err} }

// Retention is how long decisions are kept: whole calendar months, or a
// fixed duration.
type Retention struct {
	Months int
	Dur    time.Duration
}

// DefaultRetention is Regulation B's 25 months.
var DefaultRetention = Retention{Months: 25}

// MinRetention is the EU AI Act's six months (Art. 19, 26): a shorter
// retention is refused.
var MinRetention = Retention{Months: 6}

// Cutoff is the time before which decisions are past retention. Months are
// calendar months in UTC, and a day the earlier month lacks is its last
// (25 months before 31 March is 28 or 29 February): time.AddDate would roll
// it into March and delete decisions days short of their 25 months.
func (r Retention) Cutoff(now time.Time) time.Time {
	if r.Months <= 0 {
		return now.Add(-r.Dur)
	}
	u := now.UTC()
	first := time.Date(u.Year(), u.Month()-time.Month(r.Months), 1, u.Hour(), u.Minute(), u.Second(), u.Nanosecond(), time.UTC)
	last := time.Date(first.Year(), first.Month()+1, 0, 0, 0, 0, 0, time.UTC).Day()
	return first.AddDate(0, 0, min(u.Day(), last)-1)
}

// MaxRetention bounds a configured retention, in months: a century, far
// past any rule, and far from where the arithmetic overflows.
const MaxRetention = 100 * 12

var errCentury = errors.New("more than a century")

func (r Retention) String() string {
	if r.Months > 0 {
		return strconv.Itoa(r.Months) + " months"
	}
	return r.Dur.String()
}

// ParseRetention reads "25mo" / "25 months", "2y" / "2 years", "800d" /
// "800 days", or a Go duration ("20000h"). It refuses less than MinRetention.
func ParseRetention(s string) (Retention, error) {
	s = strings.TrimSpace(strings.ToLower(s))
	num := strings.TrimRightFunc(s, func(r rune) bool { return r < '0' || r > '9' })
	unit := strings.TrimSpace(s[len(num):])
	var r Retention
	n, err := strconv.Atoi(num)
	// Each count is bounded before it is multiplied.
	switch {
	case err == nil && n > 0 && (unit == "mo" || unit == "month" || unit == "months"):
		if n > MaxRetention {
			return r, errCentury
		}
		r.Months = n
	case err == nil && n > 0 && (unit == "y" || unit == "year" || unit == "years"):
		if n > MaxRetention/12 {
			return r, errCentury
		}
		r.Months = 12 * n
	case err == nil && n > 0 && (unit == "d" || unit == "day" || unit == "days"):
		if n > MaxRetention*31 {
			return r, errCentury
		}
		r.Dur = time.Duration(n) * 24 * time.Hour
	default:
		d, derr := time.ParseDuration(s)
		if derr != nil || d <= 0 {
			return r, errors.New("not a retention (write e.g. 25mo, 2y, 800d)")
		}
		r.Dur = d
	}
	if r.Months > MaxRetention || r.Dur > MaxRetention*31*24*time.Hour {
		return r, errCentury
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if r.Cutoff(now).After(MinRetention.Cutoff(now)) {
		return r, fmt.Errorf("must be at least %s (EU AI Act Art. 19: logs kept at least six months)", MinRetention)
	}
	return r, nil
}

// Open opens the record's store: PostgreSQL when url is set (postgres:// or
// postgresql://), else SQLite in dataDir with the sync mode (SyncFull,
// SyncNormal). It returns the writers the
// Recorder should run for it.
func Open(ctx context.Context, dataDir, url, sync string) (Store, int, error) {
	if url != "" {
		p, err := OpenPostgres(ctx, url)
		if err != nil {
			return nil, 0, err
		}
		return p, 4, nil
	}
	s, err := OpenSQLiteSync(ctx, dataDir, sync)
	if err != nil {
		return nil, 0, err
	}
	return s, 1, nil
}

// holdsOf lists the applications under legal hold (both backends), or
// only applicationID's hold when it is set.
func holdsOf(ctx context.Context, q querier, applicationID string) ([]Hold, error) {
	where, args := "", []any{}
	if applicationID != "" {
		where, args = ` WHERE application_id = ?`, []any{applicationID}
	}
	rs, err := q.query(ctx, `SELECT application_id, set_at, set_by, reason FROM legal_holds`+where+` ORDER BY application_id`, args...)
	if err != nil {
		return nil, err
	}
	var out []Hold
	for rs.Next() {
		var h Hold
		var at int64
		if err := rs.Scan(&h.ApplicationID, &at, &h.SetBy, &h.Reason); err != nil {
			rs.Close()
			return nil, err
		}
		h.SetAt = time.UnixMicro(at).UTC()
		out = append(out, h)
	}
	return out, closeCursor(rs)
}
