package record

import (
	"bytes"
	"context"
	"errors"
	"time"

	"github.com/valyala/fastjson"

	"mlservice/serve/decision"
)

// idWindow is how far from the millisecond its id carries a decision is
// looked for. The id is drawn just before the decision's time is taken, so
// a second either way covers a clock stepped between the two.
const idWindow = time.Second

// ErrNotDecisionID means a decision id is not one NewIDs makes (a UUID
// version 7): no decision can have it.
var ErrNotDecisionID = errors.New("decision record: not a decision id (a UUID version 7)")

var errFound = errors.New("found")

// ByDecisionID returns the document of the decision whose answer gave id, or
// nil when the record holds none. Decision ids are time-ordered, so this is
// an export of the two seconds around the id's time that stops at the
// match: no index of ids, which every decision would pay for to serve a
// lookup an examiner makes now and then.
func ByDecisionID(ctx context.Context, s Store, id string) ([]byte, error) {
	id, at, ok := decision.IDTime(id)
	if !ok {
		return nil, ErrNotDecisionID
	}
	// The id in quotes can stand elsewhere in a document (a row of /v2 has
	// its decision's id as its application id), so the field decides.
	needle := []byte(`"` + id + `"`)
	var found []byte
	err := s.Export(ctx, at.Add(-idWindow), at.Add(idWindow), func(doc []byte) error {
		if bytes.Contains(doc, needle) && fastjson.GetString(doc, "decision_id") == id {
			found = append([]byte(nil), doc...) // doc is the reader's buffer
			return errFound
		}
		return nil
	})
	if errors.Is(err, errFound) {
		err = nil
	}
	return found, err
}
