// Package queue keeps every application the loan officer submits on disk
// until the decision service has decided it, and keeps the decision after
// that: the service may be down, slow or restarting, and the form process
// itself may be restarted, but an application once accepted from the
// officer is never lost. Each application is one JSON file, replaced
// atomically (temporary file, fsync, rename, fsync of the directory).
package queue

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	"mlservice/internal/durable"
	"mlservice/legacy/client"
)

// Status says where an application stands.
type Status string

const (
	// Queued: kept on disk, waiting for the decision service.
	Queued Status = "queued"
	// Decided: the service decided; Record.Decision holds the answer.
	Decided Status = "decided"
	// Refused: the service refused the application's fields (422);
	// Record.Refusal names them. The officer corrects and submits again.
	Refused Status = "refused"
	// Failed: the service cannot decide this application (it answered it
	// with an error that sending it again will not change, or kept failing
	// on it while deciding others); Record.Failure says why. It is not
	// retried any more, so it never holds up the applications behind it.
	Failed Status = "failed"
)

// maxFaults is how many times the service may fail on one application
// (answering 500, say, while it decides others) before the application is
// set aside as Failed. Outages (service unreachable, 503, 429, a gateway's
// 502 or 504) never count.
const maxFaults = 5

// Refusal is what the service said was wrong with an application.
type Refusal struct {
	Message string            `json:"message"`
	Fields  map[string]string `json:"fields,omitempty"`
}

// Record is one application and its outcome, as kept on disk.
type Record struct {
	Application client.Application `json:"application"`
	Status      Status             `json:"status"`
	Decision    *client.Decision   `json:"decision,omitempty"`
	Refusal     *Refusal           `json:"refusal,omitempty"`
	ReceivedAt  time.Time          `json:"received_at"`
	DecidedAt   *time.Time         `json:"decided_at,omitempty"`
	// Attempts counts calls to the service that did not decide.
	Attempts int `json:"attempts,omitempty"`
	// LastError is why the last attempt did not decide.
	LastError string `json:"last_error,omitempty"`
	// Faults counts attempts that failed on this application alone (not
	// outages); at maxFaults it is set aside as Failed.
	Faults int `json:"faults,omitempty"`
	// Failure is why the service could not decide it (Status Failed).
	Failure string `json:"failure,omitempty"`
	// Key is the application's secret: its page is shown only to whoever
	// has it (the officer who submitted it gets it in the page's address).
	Key string `json:"key,omitempty"`
}

// KeyMatches reports, in constant time, whether key is the record's secret.
// A record without one (kept by an older version) matches nothing.
func (r Record) KeyMatches(key string) bool {
	return r.Key != "" && subtle.ConstantTimeCompare([]byte(r.Key), []byte(key)) == 1
}

// newKey makes an application's secret: 128 random bits, URL-safe.
func newKey() (string, error) {
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

// ErrNotFound means no application with that reference is kept.
var ErrNotFound = errors.New("no application with that reference")

// ErrDamaged means a kept file cannot be read as a record (a disk fault, a
// hand edit); it is left in place for IT support.
var ErrDamaged = errors.New("queue: damaged file")

// Queue is the on-disk store under one directory: queued/ holds applications
// waiting for a decision, decided/ the final outcomes. It is safe for
// concurrent use within one process; run one form process per directory.
type Queue struct {
	dir string
	now func() time.Time
	mu  sync.Mutex // orders state changes; reads of whole files need none
}

// Open prepares the store under dir.
func Open(dir string, now func() time.Time) (*Queue, error) {
	if now == nil {
		now = time.Now
	}
	for _, sub := range []Status{Queued, Decided} {
		if err := os.MkdirAll(filepath.Join(dir, string(sub)), 0o750); err != nil {
			return nil, err
		}
	}
	return &Queue{dir: dir, now: now}, nil
}

// fileName maps a reference, which may hold any printable character, to a
// safe file name.
func fileName(id string) string {
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:16]) + ".json"
}

func (q *Queue) path(s Status, id string) string {
	if s != Queued { // every final outcome lives in decided/
		s = Decided
	}
	return filepath.Join(q.dir, string(s), fileName(id))
}

// Keep stores a new application as queued and returns its record. If an
// application with the same reference is already kept, Keep returns that
// record and stores nothing: a resubmission is the same application.
func (q *Queue) Keep(app client.Application) (Record, error) {
	if app.ApplicationID == "" {
		return Record{}, errors.New("queue: an application needs a reference")
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if rec, err := q.get(app.ApplicationID); err == nil {
		return rec, nil
	} else if !errors.Is(err, ErrNotFound) {
		return Record{}, err
	}
	key, err := newKey()
	if err != nil {
		return Record{}, err
	}
	rec := Record{Application: app, Status: Queued, ReceivedAt: q.now().UTC(), Key: key}
	return rec, q.write(rec)
}

// Get returns the record for a reference, or ErrNotFound.
func (q *Queue) Get(id string) (Record, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.get(id)
}

func (q *Queue) get(id string) (Record, error) {
	for _, s := range []Status{Decided, Queued} {
		rec, err := read(q.path(s, id))
		if err == nil && rec.Application.ApplicationID == id {
			return rec, nil
		}
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			return Record{}, err
		}
	}
	return Record{}, ErrNotFound
}

// Decide records the service's decision. The decided file is written before
// the queued one is removed, so a crash in between leaves both, and Get
// prefers the decision.
func (q *Queue) Decide(id string, d client.Decision) (Record, error) {
	return q.finish(id, func(rec *Record) {
		rec.Status, rec.Decision = Decided, &d
	})
}

// Refuse records that the service refused the application's fields.
func (q *Queue) Refuse(id string, r Refusal) (Record, error) {
	return q.finish(id, func(rec *Record) {
		rec.Status, rec.Refusal = Refused, &r
	})
}

// Fail sets the application aside: the service cannot decide it (why says
// how), and it is not retried any more.
func (q *Queue) Fail(id, why string) (Record, error) {
	return q.finish(id, func(rec *Record) {
		rec.Status, rec.Failure = Failed, why
	})
}

func (q *Queue) finish(id string, set func(*Record)) (Record, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	rec, err := q.get(id)
	if err != nil {
		return Record{}, err
	}
	if rec.Status != Queued {
		return rec, nil // decided by another attempt meanwhile
	}
	set(&rec)
	t := q.now().UTC()
	rec.DecidedAt = &t
	if err := q.write(rec); err != nil {
		return Record{}, err
	}
	return rec, durable.Remove(q.path(Queued, id))
}

// Forget removes a refused or failed application's record, so that the
// officer can correct it and submit it again under the same reference.
func (q *Queue) Forget(id string) error {
	q.mu.Lock()
	defer q.mu.Unlock()
	rec, err := q.get(id)
	if err != nil || (rec.Status != Refused && rec.Status != Failed) {
		return err
	}
	return durable.Remove(q.path(rec.Status, id))
}

// NoteFailure records an attempt that did not decide, so the officer's page
// can say how long the application has waited and why. fault says the
// failure was this application's alone (not an outage); after maxFaults of
// those the application is set aside as Failed.
func (q *Queue) NoteFailure(id string, cause error, fault bool) (Record, error) {
	q.mu.Lock()
	rec, err := q.get(id)
	if err != nil || rec.Status != Queued {
		q.mu.Unlock()
		return rec, err
	}
	rec.Attempts++
	rec.LastError = cause.Error()
	if fault {
		rec.Faults++
	}
	err = q.write(rec)
	q.mu.Unlock()
	return q.setAsideIfFaulty(rec, err)
}

// CountFault counts a fault of the service on the application alone, for
// an attempt already noted (NoteFailure with fault false); at maxFaults the
// application is set aside as Failed.
func (q *Queue) CountFault(id string) (Record, error) {
	q.mu.Lock()
	rec, err := q.get(id)
	if err != nil || rec.Status != Queued {
		q.mu.Unlock()
		return rec, err
	}
	rec.Faults++
	err = q.write(rec)
	q.mu.Unlock()
	return q.setAsideIfFaulty(rec, err)
}

// setAsideIfFaulty sets rec aside once the service has failed on it
// maxFaults times; written is the error of writing rec.
func (q *Queue) setAsideIfFaulty(rec Record, written error) (Record, error) {
	if written == nil && rec.Faults >= maxFaults {
		return q.Fail(rec.Application.ApplicationID, fmt.Sprintf("the decision service failed on it %d times while deciding others (last: %s)", rec.Faults, rec.LastError))
	}
	return rec, written
}

// Waiting lists the queued applications, oldest first. One whose final
// outcome is already kept is not waiting: a crash between writing the
// outcome and removing the queued file left that file behind, and it is
// removed now (sent again, the application would be decided again, one
// more decision in the service's record on every pass). A file that cannot
// be read holds up no one: the others are listed, and the error (wrapping
// ErrDamaged) names it.
func (q *Queue) Waiting() ([]Record, error) {
	entries, err := os.ReadDir(filepath.Join(q.dir, string(Queued)))
	if err != nil {
		return nil, err
	}
	var recs []Record
	var damaged []error
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".json") || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		rec, err := read(filepath.Join(q.dir, string(Queued), e.Name()))
		settled := false
		if err == nil {
			settled, err = q.dropIfSettled(rec.Application.ApplicationID)
		}
		switch {
		case errors.Is(err, os.ErrNotExist):
			// decided meanwhile
		case errors.Is(err, ErrDamaged):
			damaged = append(damaged, err)
		case err != nil:
			return nil, err
		case !settled:
			recs = append(recs, rec)
		}
	}
	sort.Slice(recs, func(i, j int) bool { return recs[i].ReceivedAt.Before(recs[j].ReceivedAt) })
	return recs, errors.Join(damaged...)
}

// dropIfSettled removes the queued file of an application whose final
// outcome is kept, and reports whether it did.
func (q *Queue) dropIfSettled(id string) (bool, error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	final, err := read(q.path(Decided, id))
	if errors.Is(err, os.ErrNotExist) || (err == nil && final.Application.ApplicationID != id) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, durable.Remove(q.path(Queued, id))
}

func (q *Queue) write(rec Record) error {
	b, err := json.MarshalIndent(rec, "", "  ")
	if err != nil {
		return err
	}
	return durable.WriteFile(q.path(rec.Status, rec.Application.ApplicationID), append(b, '\n'))
}

func read(path string) (Record, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Record{}, err
	}
	var rec Record
	if err := json.Unmarshal(b, &rec); err != nil {
		return Record{}, fmt.Errorf("%w: %s: %v", ErrDamaged, path, err)
	}
	return rec, nil
}
