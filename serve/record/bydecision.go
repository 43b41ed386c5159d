package record

import (
	"bytes"
	"context"
	"errors"
	"time"

	"github.com/valyala/fastjson"

	"mlservice/serve/decision"
)

// idWindow is how long after the millisecond its id carries a decision is
// looked for first. NewIDs makes the id of the decision's own time, so that
// millisecond holds it; the rest is for records of servers before that,
// which drew the id microseconds before taking the time.
const idWindow = 10 * time.Millisecond

// idMargin is how long before its id's millisecond a decision is looked for
// when idWindow does not hold it. Servers before c475007 took ids from
// uuid.NewV7, which keeps ids increasing when the clock steps back, so
// until the clock caught up their ids ran ahead of the recorded time by as
// much as the step. A second covers the usual NTP step; after a larger one
// such a decision is found by application id or an export. Looked for
// only after a miss, the margin costs a decision found nothing; a miss (an
// id never given or purged) reads a second more of the record: about 14 ms
// at 5,000 predictions a second, about 1.6 s of one reader in a batch run
// at 466,000 rows a second (measured: 2.7-3.4 µs a decision). Lookups by
// id are an examiner's, now and then: worth it.
const idMargin = time.Second

// ErrNotDecisionID means a decision id is not one NewIDs makes (a UUID
// version 7): no decision can have it.
var ErrNotDecisionID = errors.New("decision record: not a decision id (a UUID version 7)")

var errFound = errors.New("found")

// ByDecisionID returns the id as the record holds it (lower case) and the
// document of the decision whose answer gave it, or nil when the record
// holds none. Decision ids carry their decision's time, so this is an
// export of the milliseconds after the id's that stops at the match (then,
// if it has none, of the second before: idMargin): no index of ids, which
// every decision would pay for to serve a lookup an examiner makes now and
// then.
func ByDecisionID(ctx context.Context, s Store, id string) (canonical string, doc []byte, err error) {
	canonical, at, ok := decision.IDTime(id)
	if !ok {
		return "", nil, ErrNotDecisionID
	}
	// The id in quotes can stand elsewhere in a document (a row of /v2 has
	// its decision's id as its application id), so the field decides.
	needle := []byte(`"` + canonical + `"`)
	match := func(d []byte) error {
		if bytes.Contains(d, needle) && fastjson.GetString(d, "decision_id") == canonical {
			doc = append([]byte(nil), d...) // d is the reader's buffer
			return errFound
		}
		return nil
	}
	err = s.Export(ctx, at, at.Add(idWindow), match)
	if err == nil { // not there: an id that ran ahead of its time
		err = s.Export(ctx, at.Add(-idMargin), at, match)
	}
	if errors.Is(err, errFound) {
		err = nil
	}
	return canonical, doc, err
}
