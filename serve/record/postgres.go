package record

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Postgres is the backend for several replicas: every replica appends to the
// same tables. One statement of INSERT … SELECT FROM unnest(…) writes a
// commit's groups, so it is atomic and costs one round trip and one WAL
// flush (synchronous_commit stays on).
type Postgres struct {
	// pool commits: appends, group ids, the probe, the indexer, the purge,
	// holds and outcomes. reads (readers connections) serves lookups and
	// exports, so however many stream to slow clients, commits keep theirs.
	pool, reads *pgxpool.Pool
	desc        string

	idMu          sync.Mutex // guards the block of group ids
	idNext, idEnd int64
}

var _ Store = (*Postgres)(nil)

// advisoryLock serialises migrations across replicas starting together.
const advisoryLock = 0x6d6c7265636f7264 // "mlrecord"

// holdsLock serialises a purge chunk (which reads the holds, then deletes)
// with setting a hold and with other replicas' purges: without it a hold
// committed between the read and the delete was ignored, and two replicas
// purging one group each kept their own copy of its held decisions.
const holdsLock = 0x6d6c686f6c647321 // "mlholds!"

// OpenPostgres connects to url (postgres://…), applies the migrations and
// returns the store. The committing pool has the URL's pool_max_conns, at
// least 8 (the writers, the indexer, the purge, the probe); the reading
// pool readers more.
func OpenPostgres(ctx context.Context, url string) (*Postgres, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("SERVE_DECISIONS_URL: %w", err)
	}
	if cfg.MaxConns < 8 {
		cfg.MaxConns = 8
	}
	cfg.ConnConfig.ConnectTimeout = 5 * time.Second
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("SERVE_DECISIONS_URL: %w", err)
	}
	p := &Postgres{pool: pool, desc: fmt.Sprintf("%s:%d/%s", cfg.ConnConfig.Host, cfg.ConnConfig.Port, cfg.ConnConfig.Database)}
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(advisoryLock)); err != nil {
			return err
		}
		_, err := migrate(ctx, pgTx{tx}, "postgres", `INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)`)
		return err
	})
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("decision record %s: %w", p.desc, err)
	}
	rcfg := cfg.Copy()
	rcfg.MaxConns = readers
	rcfg.MinConns, rcfg.MinIdleConns = min(rcfg.MinConns, readers), min(rcfg.MinIdleConns, readers)
	if p.reads, err = pgxpool.NewWithConfig(ctx, rcfg); err != nil {
		pool.Close()
		return nil, fmt.Errorf("SERVE_DECISIONS_URL: %w", err)
	}
	return p, nil
}

// pgAppend writes groups, the index entries of the small ones and the
// queue rows of the large ones in one statement: one round trip, atomic.
const pgAppend = `WITH g AS (
		INSERT INTO decision_groups (id, decided_at, model, version, variant, served, decisions, keys, encoding, payload)
		SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::text[], $6::boolean[],
			$7::integer[], $8::json[], $9::smallint[], $10::bytea[])
		RETURNING id, decided_at, decisions, keys
	), i AS (
		INSERT INTO decision_index (application_id, decided_at, group_id, position, approve)
		SELECT j.value ->> 0, g.decided_at, g.id, (j.ord - 1)::integer, (j.value ->> 1) = '1'
		FROM g, json_array_elements(g.keys) WITH ORDINALITY AS j(value, ord) WHERE g.decisions <= $11
	)
	INSERT INTO decision_groups_unindexed (group_id) SELECT id FROM g WHERE decisions > $11`

// Append implements Store.
func (p *Postgres) Append(ctx context.Context, groups []Group) error {
	n := len(groups)
	var (
		ids, at                = make([]int64, n), make([]int64, n)
		models, versions, vars = make([]string, n), make([]string, n), make([]string, n)
		served                 = make([]bool, n)
		counts                 = make([]int32, n)
		keys                   = make([]string, n)
		encodings              = make([]int16, n)
		payloads               = make([][]byte, n)
	)
	for i := range groups {
		g := &groups[i]
		id, err := p.nextID(ctx)
		if err != nil {
			return err
		}
		ids[i], at[i] = id, g.Time.UnixMicro()
		models[i], versions[i], vars[i], served[i] = g.Model, g.Version, g.Variant, g.Served
		counts[i], keys[i], encodings[i], payloads[i] = int32(g.Decisions), string(g.Keys), int16(g.Encoding), g.Payload
	}
	_, err := p.pool.Exec(ctx, pgAppend, ids, at, models, versions, vars, served, counts, keys, encodings, payloads, inlineIndex)
	return err
}

// nextID hands out group ids from blocks of the decision_group_ids sequence
// (1,024 a call), so replicas never collide and a commit rarely waits for
// one.
func (p *Postgres) nextID(ctx context.Context) (int64, error) {
	p.idMu.Lock()
	defer p.idMu.Unlock()
	if p.idNext == p.idEnd {
		var start int64
		if err := p.pool.QueryRow(ctx, `SELECT nextval('decision_group_ids')`).Scan(&start); err != nil {
			return 0, err
		}
		p.idNext, p.idEnd = start, start+1024
	}
	p.idNext++
	return p.idNext - 1, nil
}

// Index implements Store. Replicas index side by side: each claims queued
// groups the others have not locked.
func (p *Postgres) Index(ctx context.Context, max int) (indexed, backlog int, err error) {
	err = pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) (err error) {
		indexed, backlog, err = indexQueued(ctx, pgQuerier{tx}, max, ` FOR UPDATE OF u SKIP LOCKED`)
		return err
	})
	return indexed, backlog, err
}

// ByApplication implements Store, in one repeatable-read snapshot.
func (p *Postgres) ByApplication(ctx context.Context, applicationID string, fn func([]byte) error) error {
	tx, err := p.reads.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx)
	return byApplication(ctx, pgQuerier{tx}, applicationID, fn)
}

// Export implements Store.
func (p *Postgres) Export(ctx context.Context, from, to time.Time, fn func([]byte) error) error {
	return export(ctx, pgQuerier{p.reads}, from, to, fn)
}

// Purge implements Store.
func (p *Postgres) Purge(ctx context.Context, cutoff time.Time) (int64, error) {
	var total, after int64
	for {
		var n, last int64
		err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) (err error) {
			n, last, err = p.purgeChunk(ctx, tx, pgQuerier{tx}, cutoff, after)
			return err
		})
		if err != nil {
			return total, err
		}
		total += n
		if last == 0 {
			return total, nil
		}
		after = last
	}
}

// purgeChunk is one chunk of Purge in tx (q runs its queries), under
// holdsLock.
func (p *Postgres) purgeChunk(ctx context.Context, tx pgx.Tx, q querier, cutoff time.Time, after int64) (n, last int64, err error) {
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(holdsLock)); err != nil {
		return 0, 0, err
	}
	return purgeGroups(ctx, q, cutoff, after, p.nextID)
}

// pgQuerier adapts a pgx pool or transaction for the shared queries.
type pgQuerier struct {
	q interface {
		Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
		Exec(ctx context.Context, sql string, args ...any) (pgconn.CommandTag, error)
	}
}

func (q pgQuerier) query(ctx context.Context, sql string, args ...any) (cursor, error) {
	rs, err := q.q.Query(ctx, rebindDollar(sql), args...)
	if err != nil {
		return nil, err
	}
	return pgCursor{rs}, nil
}

func (pgQuerier) entries() string {
	return `SELECT j.value ->> 0 AS application_id, COALESCE((j.value ->> 2)::bigint, g.decided_at) AS decided_at, g.id AS group_id,
		(j.ord - 1)::integer AS position, (j.value ->> 1) = '1' AS approve
		FROM decision_groups g, json_array_elements(g.keys) WITH ORDINALITY AS j(value, ord)`
}

func (q pgQuerier) exec(ctx context.Context, sql string, args ...any) (int64, error) {
	tag, err := q.q.Exec(ctx, rebindDollar(sql), args...)
	return tag.RowsAffected(), err
}

// pgCursor gives pgx.Rows database/sql's Close.
type pgCursor struct{ pgx.Rows }

func (c pgCursor) Close() error {
	c.Rows.Close()
	return c.Rows.Err()
}

// SetHold implements Store.
func (p *Postgres) SetHold(ctx context.Context, applicationID, by, reason string, on bool, at time.Time) error {
	if !on {
		_, err := p.pool.Exec(ctx, `DELETE FROM legal_holds WHERE application_id = $1`, applicationID)
		return err
	}
	return pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(holdsLock)); err != nil {
			return err
		}
		n, err := pgQuerier{tx}.exec(ctx, setHoldSQL, applicationID, at.UnixMicro(), by, reason)
		if err != nil || n == 1 {
			return err
		}
		return heldBy(ctx, pgQuerier{tx}, applicationID)
	})
}

// Holds implements Store.
func (p *Postgres) Holds(ctx context.Context) ([]Hold, error) {
	return holdsOf(ctx, pgQuerier{p.reads}, "")
}

// Probe implements Store.
func (p *Postgres) Probe(ctx context.Context) error {
	_, err := p.pool.Exec(ctx, `INSERT INTO record_probe (id, at) VALUES (1, $1)
		ON CONFLICT (id) DO UPDATE SET at = excluded.at`, time.Now().UnixMicro())
	return err
}

// Backend implements Store.
func (p *Postgres) Backend() string { return "postgres" }

// Close implements Store.
func (p *Postgres) Close() error {
	p.reads.Close()
	p.pool.Close()
	return nil
}

// pgTx adapts pgx.Tx for migrate.
type pgTx struct{ pgx.Tx }

func (t pgTx) exec(ctx context.Context, q string, args ...any) error {
	_, err := t.Exec(ctx, q, args...)
	return err
}

func (t pgTx) maxVersion(ctx context.Context) (int64, error) {
	var v *int64
	if err := t.QueryRow(ctx, `SELECT MAX(version) FROM schema_migrations`).Scan(&v); err != nil {
		return 0, err
	}
	if v == nil {
		return 0, nil
	}
	return *v, nil
}

// Unreachable says whether err, from Open, means PostgreSQL cannot be reached
// or cannot take connections yet: a network error, or the server starting,
// shutting down or out of connections. A server starting during a database
// outage waits on these; any other error (credentials, schema) is final.
func Unreachable(err error) bool {
	var netErr net.Error
	if errors.As(err, &netErr) {
		return true
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "57P01", "57P02", "57P03", "53300": // admin_shutdown, crash_shutdown, cannot_connect_now, too_many_connections
			return true
		}
	}
	return false
}
