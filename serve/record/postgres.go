package record

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Postgres is the backend for several replicas: every replica appends to the
// same tables. One INSERT … SELECT FROM unnest(…) per group is one statement,
// so a group is atomic and costs one round trip and one WAL flush
// (synchronous_commit stays on).
type Postgres struct {
	pool *pgxpool.Pool
	desc string
}

var _ Store = (*Postgres)(nil)

// advisoryLock serialises migrations across replicas starting together.
const advisoryLock = 0x6d6c7265636f7264 // "mlrecord"

// OpenPostgres connects to url (postgres://…), applies the migrations and
// returns the store. The pool is sized for the writers plus the readers.
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
	return p, nil
}

const pgInsert = `INSERT INTO decisions (decision_id, application_id, decided_at, served, record)
	SELECT * FROM unnest($1::text[], $2::text[], $3::bigint[], $4::boolean[], $5::text[])`

// Append implements Store.
func (p *Postgres) Append(ctx context.Context, rows []Row) error {
	ids := make([]string, len(rows))
	apps := make([]string, len(rows))
	at := make([]int64, len(rows))
	served := make([]bool, len(rows))
	docs := make([]string, len(rows))
	for i := range rows {
		r := &rows[i]
		ids[i], apps[i], at[i], served[i] = r.DecisionID, r.ApplicationID, r.Time.UnixMicro(), r.Served
		docs[i] = string(r.Doc)
	}
	_, err := p.pool.Exec(ctx, pgInsert, ids, apps, at, served, docs)
	return err
}

// ByApplication implements Store.
func (p *Postgres) ByApplication(ctx context.Context, applicationID string, fn func([]byte) error) error {
	return p.docs(ctx, fn, `SELECT record FROM decisions WHERE application_id = $1
		ORDER BY decided_at DESC, decision_id DESC`, applicationID)
}

// Export implements Store.
func (p *Postgres) Export(ctx context.Context, from, to time.Time, fn func([]byte) error) error {
	return p.docs(ctx, fn, `SELECT record FROM decisions WHERE decided_at >= $1 AND decided_at < $2
		ORDER BY decided_at, decision_id`, from.UnixMicro(), to.UnixMicro())
}

func (p *Postgres) docs(ctx context.Context, fn func([]byte) error, q string, args ...any) error {
	rows, err := p.pool.Query(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		raw := rows.RawValues()
		if err := fn(raw[0]); err != nil {
			return err
		}
	}
	return rows.Err()
}

// Purge implements Store.
func (p *Postgres) Purge(ctx context.Context, cutoff time.Time) (int64, error) {
	var total int64
	for {
		tag, err := p.pool.Exec(ctx, `DELETE FROM decisions WHERE decision_id IN (
			SELECT decision_id FROM decisions d WHERE d.decided_at < $1
			AND NOT EXISTS (SELECT 1 FROM legal_holds h WHERE h.application_id = d.application_id)
			LIMIT $2)`, cutoff.UnixMicro(), purgeChunk)
		if err != nil {
			return total, err
		}
		total += tag.RowsAffected()
		if tag.RowsAffected() < purgeChunk {
			return total, nil
		}
	}
}

// SetHold implements Store.
func (p *Postgres) SetHold(ctx context.Context, applicationID, by, reason string, on bool, at time.Time) error {
	if !on {
		_, err := p.pool.Exec(ctx, `DELETE FROM legal_holds WHERE application_id = $1`, applicationID)
		return err
	}
	_, err := p.pool.Exec(ctx, `INSERT INTO legal_holds (application_id, set_at, set_by, reason) VALUES ($1, $2, $3, $4)
		ON CONFLICT (application_id) DO UPDATE SET set_at = excluded.set_at, set_by = excluded.set_by, reason = excluded.reason`,
		applicationID, at.UnixMicro(), by, reason)
	return err
}

// Holds implements Store.
func (p *Postgres) Holds(ctx context.Context) ([]Hold, error) {
	rows, err := p.pool.Query(ctx, `SELECT application_id, set_at, set_by, reason FROM legal_holds ORDER BY application_id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	return scanHolds(rows)
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
