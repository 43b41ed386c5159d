package record

import (
	"cmp"
	"context"
	"encoding/binary"
	"slices"
	"strconv"
	"strings"
	"time"
)

// The queries of the group layout are the same for both backends but for
// placeholders: they are written with "?" and a querier rebinds them.

// querier runs SQL in a transaction (or on a pool) of either backend.
type querier interface {
	query(ctx context.Context, q string, args ...any) (cursor, error)
	exec(ctx context.Context, q string, args ...any) (int64, error)
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

// sortEntries orders index entries as the index does, so a batch of them
// touches each index page once.
func sortEntries(es []entry) {
	slices.SortFunc(es, func(a, b entry) int {
		return cmp.Or(strings.Compare(a.applicationID, b.applicationID), cmp.Compare(a.at, b.at),
			cmp.Compare(a.group, b.group), cmp.Compare(a.position, b.position))
	})
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
	var hits []hit
	rs, err := q.query(ctx, `SELECT decided_at, group_id, position FROM decision_index WHERE application_id = ?`, applicationID)
	if err != nil {
		return err
	}
	for rs.Next() {
		var h hit
		if err := rs.Scan(&h.at, &h.group, &h.position); err != nil {
			rs.Close()
			return err
		}
		hits = append(hits, h)
	}
	if err := closeCursor(rs); err != nil {
		return err
	}
	rs, err = q.query(ctx, `SELECT g.id, g.decided_at, g.keys FROM decision_groups_unindexed u
		JOIN decision_groups g ON g.id = u.group_id`)
	if err != nil {
		return err
	}
	for rs.Next() {
		var (
			h    hit
			blob []byte
		)
		if err := rs.Scan(&h.group, &h.at, &blob); err != nil {
			rs.Close()
			return err
		}
		keys, err := decodeKeys(blob)
		if err != nil {
			rs.Close()
			return err
		}
		for pos, k := range keys {
			if k.ApplicationID == applicationID {
				h.position = pos
				hits = append(hits, h)
			}
		}
	}
	if err := closeCursor(rs); err != nil {
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
	err = payloadDocs(encoding, payload, func(pos int, doc []byte) error {
		if i, ok := at[pos]; ok {
			docs[i] = append([]byte(nil), doc...) // doc is the decoder's buffer
		}
		return nil
	})
	return slices.DeleteFunc(docs, func(d []byte) bool { return d == nil }), err
}

// export streams the documents of the groups decided in [from, to), oldest
// first.
func export(ctx context.Context, q querier, from, to time.Time, fn func([]byte) error) error {
	rs, err := q.query(ctx, `SELECT encoding, payload FROM decision_groups WHERE decided_at >= ? AND decided_at < ?
		ORDER BY decided_at, id`, from.UnixMicro(), to.UnixMicro())
	if err != nil {
		return err
	}
	for rs.Next() {
		var (
			encoding int
			payload  []byte
		)
		if err := rs.Scan(&encoding, &payload); err != nil {
			rs.Close()
			return err
		}
		if err := payloadDocs(encoding, payload, func(_ int, doc []byte) error { return fn(doc) }); err != nil {
			rs.Close()
			return err
		}
	}
	return closeCursor(rs)
}

// purgeGroupsChunk is how many groups one purge transaction takes, so the
// writer is never held for long.
const purgeGroupsChunk = 500

// purgeGroups takes up to purgeGroupsChunk groups decided before cutoff,
// after group id `after`, except groups still queued for the index. A group
// without a decision under legal hold is deleted with its index entries; a
// group with some is written anew with just those (newID gives its id) and
// the old one deleted; a group held whole is kept. It returns the decisions
// deleted and the last group id taken (0: none left).
func purgeGroups(ctx context.Context, q querier, cutoff time.Time, after int64,
	newID func(context.Context) (int64, error)) (int64, int64, error) {
	holds, err := heldApplications(ctx, q)
	if err != nil {
		return 0, 0, err
	}
	rs, err := q.query(ctx, `SELECT id, decided_at, model, version, variant, served, keys, encoding, payload
		FROM decision_groups g WHERE g.decided_at < ? AND g.id > ?
		AND NOT EXISTS (SELECT 1 FROM decision_groups_unindexed u WHERE u.group_id = g.id)
		ORDER BY id LIMIT ?`, cutoff.UnixMicro(), after, purgeGroupsChunk)
	if err != nil {
		return 0, 0, err
	}
	type stored struct {
		id, at   int64
		k        groupKey
		keys     []Key
		encoding int
		payload  []byte
	}
	var gs []stored
	for rs.Next() {
		var (
			g    stored
			blob []byte
		)
		if err := rs.Scan(&g.id, &g.at, &g.k.model, &g.k.version, &g.k.variant, &g.k.served,
			&blob, &g.encoding, &g.payload); err != nil {
			rs.Close()
			return 0, 0, err
		}
		if g.keys, err = decodeKeys(blob); err != nil {
			rs.Close()
			return 0, 0, err
		}
		gs = append(gs, g)
	}
	if err := closeCursor(rs); err != nil || len(gs) == 0 {
		return 0, 0, err
	}
	var (
		gone  []int64
		total int64
		es    []entry
	)
	for _, g := range gs {
		held := map[int]Key{}
		for pos, k := range g.keys {
			if holds[k.ApplicationID] {
				held[pos] = k
			}
		}
		switch {
		case len(held) == len(g.keys):
			continue
		case len(held) > 0:
			if err := keepHeld(ctx, q, g.at, g.k, g.encoding, g.payload, held, newID); err != nil {
				return 0, 0, err
			}
		}
		gone = append(gone, g.id)
		total += int64(len(g.keys) - len(held))
		es = appendEntries(es, g.id, g.at, g.keys)
	}
	if err := deleteEntries(ctx, q, es); err != nil {
		return 0, 0, err
	}
	if len(gone) > 0 {
		if _, err := q.exec(ctx, `DELETE FROM decision_groups WHERE id IN (`+placeholders(len(gone), "?")+`)`, int64Args(gone)...); err != nil {
			return 0, 0, err
		}
	}
	return total, gs[len(gs)-1].id, nil
}

// heldApplications is the set of applications under legal hold.
func heldApplications(ctx context.Context, q querier) (map[string]bool, error) {
	rs, err := q.query(ctx, `SELECT application_id FROM legal_holds`)
	if err != nil {
		return nil, err
	}
	held := map[string]bool{}
	for rs.Next() {
		var id string
		if err := rs.Scan(&id); err != nil {
			rs.Close()
			return nil, err
		}
		held[id] = true
	}
	return held, closeCursor(rs)
}

// deleteEntries deletes index entries by their key, 100 a statement.
func deleteEntries(ctx context.Context, q querier, es []entry) error {
	for len(es) > 0 {
		n := min(len(es), 100)
		args := make([]any, 0, 4*n)
		for _, e := range es[:n] {
			args = append(args, e.applicationID, e.at, e.group, e.position)
		}
		if _, err := q.exec(ctx, `DELETE FROM decision_index WHERE (application_id, decided_at, group_id, position) IN (VALUES `+
			placeholders(n, "(CAST(? AS TEXT), CAST(? AS BIGINT), CAST(? AS BIGINT), CAST(? AS INTEGER))")+`)`, args...); err != nil {
			return err
		}
		es = es[n:]
	}
	return nil
}

// keepHeld writes a new group of the held decisions of a group being
// purged, indexed at once.
func keepHeld(ctx context.Context, q querier, at int64, k groupKey, encoding int, payload []byte,
	held map[int]Key, newID func(context.Context) (int64, error)) error {
	var (
		frames []byte
		keys   []Key
	)
	err := payloadDocs(encoding, payload, func(pos int, doc []byte) error {
		if key, ok := held[pos]; ok {
			frames = binary.AppendUvarint(frames, uint64(len(doc)))
			frames = append(frames, doc...)
			keys = append(keys, key)
		}
		return nil
	})
	if err != nil {
		return err
	}
	id, err := newID(ctx)
	if err != nil {
		return err
	}
	k.at = time.UnixMicro(at)
	g := newGroup(k, keys, frames)
	if _, err := q.exec(ctx, `INSERT INTO decision_groups (id, decided_at, model, version, variant, served, decisions, keys, encoding, payload)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, 1, ?)`, id, at, g.Model, g.Version, g.Variant, g.Served, len(keys), g.KeysBlob, g.Payload); err != nil {
		return err
	}
	for pos, key := range keys {
		if _, err := q.exec(ctx, `INSERT INTO decision_index (application_id, decided_at, group_id, position, approve)
			VALUES (?, ?, ?, ?, ?)`, key.ApplicationID, at, id, pos, key.Approve); err != nil {
			return err
		}
	}
	return nil
}

// queuedEntries reads the oldest groups queued for the index, about max
// decisions of them, as index entries (sorted) and the groups' ids.
func queuedEntries(ctx context.Context, q querier, max int) ([]entry, []int64, error) {
	rs, err := q.query(ctx, `SELECT g.id, g.decided_at, g.keys FROM decision_groups_unindexed u
		JOIN decision_groups g ON g.id = u.group_id ORDER BY u.group_id`)
	if err != nil {
		return nil, nil, err
	}
	var (
		es  []entry
		ids []int64
	)
	for len(es) < max && rs.Next() {
		var (
			id, at int64
			blob   []byte
		)
		if err := rs.Scan(&id, &at, &blob); err != nil {
			rs.Close()
			return nil, nil, err
		}
		keys, err := decodeKeys(blob)
		if err != nil {
			rs.Close()
			return nil, nil, err
		}
		es = appendEntries(es, id, at, keys)
		ids = append(ids, id)
	}
	if err := closeCursor(rs); err != nil {
		return nil, nil, err
	}
	sortEntries(es)
	return es, ids, nil
}

// closeCursor closes rs and returns its iteration error, if any.
func closeCursor(rs cursor) error {
	err := rs.Err()
	if cerr := rs.Close(); err == nil {
		err = cerr
	}
	return err
}

// entry is one decision in the application index.
type entry struct {
	applicationID string
	at, group     int64
	position      int
	approve       bool
}

func appendEntries(es []entry, group, at int64, keys []Key) []entry {
	for pos, k := range keys {
		es = append(es, entry{applicationID: k.ApplicationID, at: at, group: group, position: pos, approve: k.Approve})
	}
	return es
}
