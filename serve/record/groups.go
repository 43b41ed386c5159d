package record

import (
	"cmp"
	"container/heap"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/klauspost/compress/s2"
)

// The queries of the group layout are the same for both backends but for
// placeholders (written "?", rebound by the querier) and the one query that
// unpacks a group's keys (its JSON array) into index entries.

// querier runs SQL in a transaction (or on a pool) of either backend.
type querier interface {
	query(ctx context.Context, q string, args ...any) (cursor, error)
	exec(ctx context.Context, q string, args ...any) (int64, error)
	// entries is a SELECT of the index entries (application_id,
	// decided_at, group_id, position, approve) of decision_groups g; a
	// WHERE on g may follow.
	entries() string
}

// insertEntries is the INSERT of the index entries of the groups where
// picks, sorted so each index page is written once.
func insertEntries(q querier, where string) string {
	return `INSERT INTO decision_index (application_id, decided_at, group_id, position, approve) ` +
		q.entries() + ` WHERE ` + where + ` ORDER BY 1, 2, 3, 4`
}

// cursor is a result set of either backend.
type cursor interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close() error
}

// rebindDollar turns "?" placeholders into PostgreSQL's $1, $2, ….
func rebindDollar(q string) string {
	var b strings.Builder
	n := 0
	for i := 0; i < len(q); i++ {
		if q[i] == '?' {
			n++
			b.WriteByte('$')
			b.WriteString(strconv.Itoa(n))
			continue
		}
		b.WriteByte(q[i])
	}
	return b.String()
}

// placeholders is "?, ?, …" n times.
func placeholders(n int, p string) string {
	return strings.TrimSuffix(strings.Repeat(p+", ", n), ", ")
}

func int64Args(ids []int64) []any {
	args := make([]any, len(ids))
	for i, id := range ids {
		args[i] = id
	}
	return args
}

// hit is one decision about the application looked up.
type hit struct {
	at, group int64
	position  int
}

// byApplication finds an application's decisions in the index and in the
// groups still queued for it, and calls fn with their documents, newest
// first. q must see one snapshot (a read transaction).
func byApplication(ctx context.Context, q querier, applicationID string, fn func([]byte) error) error {
	hits, err := scanHits(ctx, q, nil, `SELECT decided_at, group_id, position FROM decision_index WHERE application_id = ?`, applicationID)
	if err != nil {
		return err
	}
	hits, err = scanHits(ctx, q, hits, `SELECT e.decided_at, e.group_id, e.position FROM decision_groups_unindexed u JOIN (`+q.entries()+`
		WHERE g.id IN (SELECT group_id FROM decision_groups_unindexed)) e ON e.group_id = u.group_id
		WHERE e.application_id = ? AND e.position >= u.indexed`, applicationID)
	if err != nil {
		return err
	}
	slices.SortFunc(hits, func(a, b hit) int {
		return cmp.Or(cmp.Compare(b.at, a.at), cmp.Compare(b.group, a.group), cmp.Compare(b.position, a.position))
	})
	// One read of each group; its hits are adjacent (same time, same id).
	for len(hits) > 0 {
		n := 1
		for n < len(hits) && hits[n].group == hits[0].group {
			n++
		}
		docs, err := groupDocs(ctx, q, hits[0].group, hits[:n])
		if err != nil {
			return err
		}
		for _, d := range docs {
			if err := fn(d); err != nil {
				return err
			}
		}
		hits = hits[n:]
	}
	return nil
}

// scanHits appends the hits a query of (decided_at, group_id, position)
// finds.
func scanHits(ctx context.Context, q querier, hits []hit, query string, args ...any) ([]hit, error) {
	rs, err := q.query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	for rs.Next() {
		var h hit
		if err := rs.Scan(&h.at, &h.group, &h.position); err != nil {
			rs.Close()
			return nil, err
		}
		hits = append(hits, h)
	}
	return hits, closeCursor(rs)
}

// groupDocs reads the documents at the hits' positions of one group, in the
// hits' order.
func groupDocs(ctx context.Context, q querier, group int64, hits []hit) ([][]byte, error) {
	rs, err := q.query(ctx, `SELECT encoding, payload FROM decision_groups WHERE id = ?`, group)
	if err != nil {
		return nil, err
	}
	var (
		encoding int
		payload  []byte
	)
	found := rs.Next()
	if found {
		err = rs.Scan(&encoding, &payload)
	}
	if cerr := closeCursor(rs); err == nil {
		err = cerr
	}
	if err != nil || !found {
		return nil, err
	}
	at := make(map[int]int, len(hits))
	for i, h := range hits {
		at[h.position] = i
	}
	docs := make([][]byte, len(hits))
	err = payloadDocs(encoding, payload, func(pos int, _ time.Time, doc []byte) error {
		if i, ok := at[pos]; ok {
			docs[i] = append([]byte(nil), doc...) // doc is the decoder's buffer
		}
		return nil
	})
	return slices.DeleteFunc(docs, func(d []byte) bool { return d == nil }), err
}

// export streams the documents of the decisions made in [from, to), oldest
// first. A merged group (merge.go) is stored at its newest decision's time
// and covers at most mergeSpan, so groups are read in decided_at order up to
// to+mergeSpan, and a decision is sent once no group still to come can hold
// an older one: at most mergeSpan of decisions wait in memory.
func export(ctx context.Context, q querier, from, to time.Time, fn func([]byte) error) error {
	rs, err := q.query(ctx, `SELECT decided_at, encoding, payload FROM decision_groups WHERE decided_at >= ? AND decided_at < ?
		ORDER BY decided_at, id`, from.UnixMicro(), to.Add(mergeSpan).UnixMicro())
	if err != nil {
		return err
	}
	var w exportWindow
	for rs.Next() {
		var (
			at       int64
			encoding int
			payload  []byte
		)
		if err := rs.Scan(&at, &encoding, &payload); err != nil {
			rs.Close()
			return err
		}
		if err := w.send(at-mergeSpan.Microseconds(), fn); err != nil {
			rs.Close()
			return err
		}
		err := payloadDocs(encoding, payload, func(_ int, t time.Time, doc []byte) error {
			decided := at
			if !t.IsZero() {
				decided = t.UnixMicro()
			}
			if decided >= from.UnixMicro() && decided < to.UnixMicro() {
				w.add(decided, doc)
			}
			return nil
		})
		if err != nil {
			rs.Close()
			return err
		}
	}
	if err := closeCursor(rs); err != nil {
		return err
	}
	return w.send(math.MaxInt64, fn)
}

// exportWindow holds the documents export has read and not sent, oldest
// first: by time, then in the order read.
type exportWindow struct {
	docs exportHeap
	read int64
}

type exportDoc struct {
	at, seq int64
	doc     []byte
}

func (w *exportWindow) add(at int64, doc []byte) {
	w.read++
	heap.Push(&w.docs, exportDoc{at: at, seq: w.read, doc: append([]byte(nil), doc...)}) // doc is the decoder's buffer
}

// send passes fn, in order, the documents decided before t.
func (w *exportWindow) send(t int64, fn func([]byte) error) error {
	for len(w.docs) > 0 && w.docs[0].at < t {
		if err := fn(heap.Pop(&w.docs).(exportDoc).doc); err != nil {
			return err
		}
	}
	return nil
}

type exportHeap []exportDoc

func (h exportHeap) Len() int { return len(h) }
func (h exportHeap) Less(i, j int) bool {
	return h[i].at < h[j].at || (h[i].at == h[j].at && h[i].seq < h[j].seq)
}
func (h exportHeap) Swap(i, j int) { h[i], h[j] = h[j], h[i] }
func (h *exportHeap) Push(x any)   { *h = append(*h, x.(exportDoc)) }
func (h *exportHeap) Pop() any {
	old := *h
	d := old[len(old)-1]
	*h = old[:len(old)-1]
	return d
}

// purgeGroupsChunk is how many groups one purge transaction takes, so the
// writer is never held for long.
const purgeGroupsChunk = 500

// held is a decision under legal hold in a group being purged.
type held struct {
	applicationID string
	approve       bool
}

// purgeGroups takes up to purgeGroupsChunk groups decided before cutoff,
// after group id `after`, except groups still queued for the index. A group
// without a decision under legal hold is deleted with its index entries; a
// group with some is written anew with just those (newID gives its id) and
// the old one deleted; a group held whole is kept. It returns the decisions
// deleted and the last group id taken (0: none left).
func purgeGroups(ctx context.Context, q querier, cutoff time.Time, after int64,
	newID func(context.Context) (int64, error)) (int64, int64, error) {
	rs, err := q.query(ctx, `SELECT id, decided_at, model, version, variant, served, decisions, encoding, payload
		FROM decision_groups g WHERE g.decided_at < ? AND g.id > ?
		AND NOT EXISTS (SELECT 1 FROM decision_groups_unindexed u WHERE u.group_id = g.id)
		ORDER BY id LIMIT ?`, cutoff.UnixMicro(), after, purgeGroupsChunk)
	if err != nil {
		return 0, 0, err
	}
	type stored struct {
		id, at    int64
		k         groupKey
		decisions int
		encoding  int
		payload   []byte
	}
	var (
		gs  []stored
		ids []int64
	)
	for rs.Next() {
		var g stored
		if err := rs.Scan(&g.id, &g.at, &g.k.model, &g.k.version, &g.k.variant, &g.k.served,
			&g.decisions, &g.encoding, &g.payload); err != nil {
			rs.Close()
			return 0, 0, err
		}
		gs, ids = append(gs, g), append(ids, g.id)
	}
	if err := closeCursor(rs); err != nil || len(gs) == 0 {
		return 0, 0, err
	}
	holds, err := heldIn(ctx, q, ids)
	if err != nil {
		return 0, 0, err
	}
	var (
		gone  []int64
		total int64
	)
	for _, g := range gs {
		h := holds[g.id]
		switch {
		case len(h) == g.decisions:
			continue
		case len(h) > 0:
			g.k.at = time.UnixMicro(g.at)
			if err := keepHeld(ctx, q, g.k, g.encoding, g.payload, h, newID); err != nil {
				return 0, 0, err
			}
		}
		gone = append(gone, g.id)
		total += int64(g.decisions - len(h))
	}
	if len(gone) > 0 {
		in := placeholders(len(gone), "?")
		if _, err := q.exec(ctx, `DELETE FROM decision_index WHERE (application_id, decided_at, group_id, position) IN (
			SELECT application_id, decided_at, group_id, position FROM (`+q.entries()+` WHERE g.id IN (`+in+`)) e)`,
			int64Args(gone)...); err != nil {
			return 0, 0, err
		}
		if _, err := q.exec(ctx, `DELETE FROM decision_groups WHERE id IN (`+in+`)`, int64Args(gone)...); err != nil {
			return 0, 0, err
		}
	}
	return total, gs[len(gs)-1].id, nil
}

// heldIn finds the decisions under legal hold in the groups ids, by group
// and position.
func heldIn(ctx context.Context, q querier, ids []int64) (map[int64]map[int]held, error) {
	rs, err := q.query(ctx, `SELECT group_id, position, application_id, approve FROM (`+q.entries()+`
		WHERE g.id IN (`+placeholders(len(ids), "?")+`)) e
		WHERE e.application_id IN (SELECT application_id FROM legal_holds)`, int64Args(ids)...)
	if err != nil {
		return nil, err
	}
	out := map[int64]map[int]held{}
	for rs.Next() {
		var (
			group int64
			pos   int
			h     held
		)
		if err := rs.Scan(&group, &pos, &h.applicationID, &h.approve); err != nil {
			rs.Close()
			return nil, err
		}
		if out[group] == nil {
			out[group] = map[int]held{}
		}
		out[group][pos] = h
	}
	return out, closeCursor(rs)
}

// keepHeld writes a new group of the held decisions of a group being
// purged, indexed at once, each decision at its own time.
func keepHeld(ctx context.Context, q querier, k groupKey, encoding int, payload []byte,
	hs map[int]held, newID func(context.Context) (int64, error)) error {
	var (
		raw, keys []byte
		n         int
		kept      = encodingS2Frames
	)
	if encoding == encodingBinary || encoding == encodingMerged {
		// Kept binary, so the decisions keep their own times.
		decoded, err := s2.Decode(nil, payload)
		if err != nil {
			return fmt.Errorf("decision record: payload: %w", err)
		}
		_, header, frames, ok := splitBinary(decoded, encoding == encodingMerged, nil)
		if !ok {
			return errors.New("decision record: payload: truncated")
		}
		var p mergedPayload
		for pos, f := range frames {
			if _, ok := hs[pos]; ok {
				p.add(header, f)
			}
		}
		raw, keys, n, kept = p.raw, p.keys, p.n, encodingMerged
	} else {
		err := payloadDocs(encoding, payload, func(pos int, _ time.Time, doc []byte) error {
			if h, ok := hs[pos]; ok {
				raw = binary.AppendUvarint(raw, uint64(len(doc)))
				raw = append(raw, doc...)
				keys = appendKey(keys, n, h.applicationID, h.approve)
				n++
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	id, err := newID(ctx)
	if err != nil {
		return err
	}
	if _, err := q.exec(ctx, `INSERT INTO decision_groups (id, decided_at, model, version, variant, served, decisions, keys, encoding, payload)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, id, k.at.UnixMicro(), k.model, k.version, k.variant, k.served, n,
		closeKeys(keys), kept, compress(raw)); err != nil {
		return err
	}
	_, err = q.exec(ctx, insertEntries(q, `g.id = ?`), id)
	return err
}

// indexQueued indexes the next max decisions of the oldest queued groups
// (a group may be taken in parts: its queue row keeps how far it is
// indexed); lock is what the backend adds to claim them (PostgreSQL: rows
// no other replica holds). It returns the decisions indexed and those still
// queued.
func indexQueued(ctx context.Context, q querier, max int, lock string) (int, int, error) {
	rs, err := q.query(ctx, `SELECT u.group_id, u.indexed, g.decisions FROM decision_groups_unindexed u
		JOIN decision_groups g ON g.id = u.group_id ORDER BY u.group_id LIMIT ?`+lock, max/inlineIndex+1)
	if err != nil {
		return 0, 0, err
	}
	type part struct {
		group         int64
		from, to, all int
	}
	var (
		parts   []part
		indexed int
	)
	for indexed < max && rs.Next() {
		var p part
		if err := rs.Scan(&p.group, &p.from, &p.all); err != nil {
			rs.Close()
			return 0, 0, err
		}
		p.to = min(p.all, p.from+max-indexed)
		parts, indexed = append(parts, p), indexed+p.to-p.from
	}
	if err := closeCursor(rs); err != nil || len(parts) == 0 {
		return 0, 0, err
	}
	for _, p := range parts {
		if _, err := q.exec(ctx, `INSERT INTO decision_index (application_id, decided_at, group_id, position, approve)
			SELECT * FROM (`+q.entries()+` WHERE g.id = ?) e WHERE e.position >= ? AND e.position < ? ORDER BY 1, 2, 3, 4`,
			p.group, p.from, p.to); err != nil {
			return 0, 0, err
		}
		done := `DELETE FROM decision_groups_unindexed WHERE group_id = ?`
		args := []any{p.group}
		if p.to < p.all {
			done, args = `UPDATE decision_groups_unindexed SET indexed = ? WHERE group_id = ?`, []any{p.to, p.group}
		}
		if _, err := q.exec(ctx, done, args...); err != nil {
			return 0, 0, err
		}
	}
	rs, err = q.query(ctx, `SELECT COALESCE(SUM(g.decisions - u.indexed), 0) FROM decision_groups_unindexed u
		JOIN decision_groups g ON g.id = u.group_id`)
	if err != nil {
		return 0, 0, err
	}
	var backlog int64
	if rs.Next() {
		err = rs.Scan(&backlog)
	}
	if cerr := closeCursor(rs); err == nil {
		err = cerr
	}
	return indexed, int(backlog), err
}

// closeCursor closes rs and returns its iteration error, if any.
func closeCursor(rs cursor) error {
	err := rs.Err()
	if cerr := rs.Close(); err == nil {
		err = cerr
	}
	return err
}
