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
// looked for. NewIDs makes the id of the decision's own time, so that
// millisecond holds it; the rest is for records of servers before that,
// which drew the id microseconds before taking the time.
const idWindow = 10 * time.Millisecond

// ErrNotDecisionID means a decision id is not one NewIDs makes (a UUID
// version 7): no decision can have it.
var ErrNotDecisionID = errors.New("decision record: not a decision id (a UUID version 7)")

var errFound = errors.New("found")

// ByDecisionID returns the id as the record holds it (lower case) and the
// document of the decision whose answer gave it, or nil when the record
// holds none. Decision ids carry their decision's time, so this is an
// export of the milliseconds after the id's that stops at the match: no
// index of ids, which every decision would pay for to serve a lookup an
// examiner makes now and then, and a miss reads only the decisions of
// those milliseconds.
func ByDecisionID(ctx context.Context, s Store, id string) (canonical string, doc []byte, err error) {
	canonical, at, ok := decision.IDTime(id)
	if !ok {
		return "", nil, ErrNotDecisionID
	}
	// The id in quotes can stand elsewhere in a document (a row of /v2 has
	// its decision's id as its application id), so the field decides.
	needle := []byte(`"` + canonical + `"`)
	err = s.Export(ctx, at, at.Add(idWindow), func(d []byte) error {
		if bytes.Contains(d, needle) && fastjson.GetString(d, "decision_id") == canonical {
			doc = append([]byte(nil), d...) // d is the reader's buffer
			return errFound
		}
		return nil
	})
	if errors.Is(err, errFound) {
		err = nil
	}
	return canonical, doc, err
}
