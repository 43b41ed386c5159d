package record

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	_ "github.com/mattn/go-sqlite3" // the "sqlite3" database/sql driver (cgo, SQLite amalgamation)
)

// SQLiteFile is the record's file name under SERVE_DATA_DIR.
const SQLiteFile = "decisions.db"

// insertSizes are the multi-row INSERTs prepared: a group is written with
// the fewest statements (each a round of cgo calls), largest first.
var insertSizes = [...]int{64, 16, 4, 1}

// SQLite is the embedded backend: one database file in WAL mode with
// synchronous=FULL, so a commit is on disk (one fsync of the WAL) when Append
// returns. One connection writes (SQLite has one writer); a pool reads.
type SQLite struct {
	path string

	mu      sync.Mutex // guards w (reopened after a failed write) and the statements
	w       *sql.DB
	inserts [len(insertSizes)]*sql.Stmt // one per insertSizes
	sync    string                      // FULL or NORMAL
	broken  bool                        // the last write failed: reopen before the next one

	r        *sql.DB
	stopCkpt chan struct{}
	ckptDone chan struct{}
}

var _ Store = (*SQLite)(nil)

// Sync modes of the SQLite backend (SERVE_DECISIONS_SYNC).
const (
	// SyncFull fsyncs the WAL at every commit: an acknowledged decision
	// survives a crash of the process, of the OS and a power loss.
	SyncFull = "full"
	// SyncNormal leaves the fsync to checkpoints: an acknowledged decision
	// survives a crash of the process (kill -9), not of the OS or the power.
	SyncNormal = "normal"
)

// OpenSQLite opens (creating if needed) the record in dir with SyncFull and
// applies the migrations.
func OpenSQLite(ctx context.Context, dir string) (*SQLite, error) {
	return OpenSQLiteSync(ctx, dir, SyncFull)
}

// OpenSQLiteSync is OpenSQLite with a sync mode (SyncFull or SyncNormal).
func OpenSQLiteSync(ctx context.Context, dir, sync string) (*SQLite, error) {
	if sync != SyncFull && sync != SyncNormal {
		return nil, fmt.Errorf("decision record: sync mode %q: want %s or %s", sync, SyncFull, SyncNormal)
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("SERVE_DATA_DIR: %w", err)
	}
	s := &SQLite{path: filepath.Join(dir, SQLiteFile), sync: strings.ToUpper(sync), stopCkpt: make(chan struct{}), ckptDone: make(chan struct{})}
	if err := s.openWriter(ctx); err != nil {
		return nil, err
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		s.w.Close()
		return nil, err
	}
	if _, err := migrate(ctx, sqlTx{tx}, "sqlite", `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`); err != nil {
		tx.Rollback()
		s.w.Close()
		return nil, fmt.Errorf("decision record %s: %w", s.path, err)
	}
	if err := tx.Commit(); err != nil {
		s.w.Close()
		return nil, err
	}
	if err := s.prepare(ctx); err != nil {
		s.w.Close()
		return nil, err
	}
	s.r, err = sql.Open("sqlite3", s.dsn(false))
	if err != nil {
		s.w.Close()
		return nil, err
	}
	s.r.SetMaxOpenConns(4)
	go s.checkpoint()
	return s, nil
}

func (s *SQLite) dsn(writer bool) string {
	q := url.Values{}
	q.Set("_journal_mode", "WAL")
	q.Set("_synchronous", s.sync)
	q.Set("_cache_size", "-65536") // 64 MiB of page cache per connection
	q.Set("_busy_timeout", "10000")
	if writer {
		q.Set("_txlock", "immediate")
	}
	return "file:" + s.path + "?" + q.Encode()
}

func (s *SQLite) openWriter(ctx context.Context) error {
	w, err := sql.Open("sqlite3", s.dsn(true))
	if err != nil {
		return err
	}
	w.SetMaxOpenConns(1)
	w.SetMaxIdleConns(1)
	w.SetConnMaxLifetime(0)
	// Checkpoints run on their own connection (checkpoint), not in a commit.
	if _, err := w.ExecContext(ctx, `PRAGMA wal_autocheckpoint = 0`); err != nil {
		w.Close()
		return fmt.Errorf("decision record %s: %w", s.path, err)
	}
	s.w = w
	return nil
}

func (s *SQLite) prepare(ctx context.Context) error {
	for i, n := range insertSizes {
		var err error
		if s.inserts[i], err = s.w.PrepareContext(ctx, insertSQL(n, "?")); err != nil {
			return err
		}
	}
	return nil
}

// insertSQL is a multi-row INSERT of n rows; placeholder "?" or "$".
func insertSQL(n int, placeholder string) string {
	var b strings.Builder
	b.WriteString(`INSERT INTO decisions (decision_id, application_id, decided_at, served, record) VALUES `)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		if placeholder == "?" {
			b.WriteString("(?,?,?,?,?)")
		} else {
			fmt.Fprintf(&b, "($%d,$%d,$%d,$%d,$%d)", 5*i+1, 5*i+2, 5*i+3, 5*i+4, 5*i+5)
		}
	}
	return b.String()
}

// reopen replaces the writer connection after a failed write, so a store
// that comes back is used afresh.
func (s *SQLite) reopen(ctx context.Context) error {
	if s.w != nil {
		s.w.Close()
		s.w = nil
	}
	if err := s.openWriter(ctx); err != nil {
		return err
	}
	if err := s.prepare(ctx); err != nil {
		s.w.Close()
		s.w = nil
		return err
	}
	s.broken = false
	return nil
}

// Append implements Store.
func (s *SQLite) Append(ctx context.Context, rows []Row) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.broken {
		if err := s.reopen(ctx); err != nil {
			return err
		}
	}
	err := s.append(ctx, rows)
	if err != nil {
		s.broken = true
	}
	return err
}

func (s *SQLite) append(ctx context.Context, rows []Row) error {
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() // no-op after Commit
	args := make([]any, 0, 5*insertSizes[0])
	for i, n := range insertSizes {
		if len(rows) < n {
			continue
		}
		stmt := tx.StmtContext(ctx, s.inserts[i])
		for len(rows) >= n {
			args = args[:0]
			for j := range rows[:n] {
				args = appendArgs(args, &rows[j])
			}
			if _, err := stmt.ExecContext(ctx, args...); err != nil {
				return err
			}
			rows = rows[n:]
		}
	}
	return tx.Commit()
}

func appendArgs(args []any, r *Row) []any {
	served := 0
	if r.Served {
		served = 1
	}
	return append(args, r.DecisionID, r.ApplicationID, r.Time.UnixMicro(), served, r.Doc)
}

// checkpoint copies the WAL into the database every second on a reader
// connection, so commits never pay for it.
func (s *SQLite) checkpoint() {
	defer close(s.ckptDone)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-s.stopCkpt:
			return
		case <-t.C:
			_, _ = s.r.Exec(`PRAGMA wal_checkpoint(PASSIVE)`)
		}
	}
}

// ByApplication implements Store.
func (s *SQLite) ByApplication(ctx context.Context, applicationID string, fn func([]byte) error) error {
	rows, err := s.r.QueryContext(ctx, `SELECT record FROM decisions WHERE application_id = ?
		ORDER BY decided_at DESC, decision_id DESC`, applicationID)
	if err != nil {
		return err
	}
	return scanDocs(rows, fn)
}

// Export implements Store.
func (s *SQLite) Export(ctx context.Context, from, to time.Time, fn func([]byte) error) error {
	rows, err := s.r.QueryContext(ctx, `SELECT record FROM decisions WHERE decided_at >= ? AND decided_at < ?
		ORDER BY decided_at, decision_id`, from.UnixMicro(), to.UnixMicro())
	if err != nil {
		return err
	}
	return scanDocs(rows, fn)
}

func scanDocs(rows *sql.Rows, fn func([]byte) error) error {
	defer rows.Close()
	var doc sql.RawBytes
	for rows.Next() {
		if err := rows.Scan(&doc); err != nil {
			return err
		}
		if err := fn(doc); err != nil {
			return err
		}
	}
	return rows.Err()
}

// purgeChunk is how many decisions one purge transaction deletes, so the
// writer is never held for long.
const purgeChunk = 5000

// Purge implements Store.
func (s *SQLite) Purge(ctx context.Context, cutoff time.Time) (int64, error) {
	var total int64
	for {
		n, err := s.exec(ctx, `DELETE FROM decisions WHERE rowid IN (
			SELECT rowid FROM decisions d WHERE d.decided_at < ?
			AND NOT EXISTS (SELECT 1 FROM legal_holds h WHERE h.application_id = d.application_id)
			LIMIT ?)`, cutoff.UnixMicro(), purgeChunk)
		total += n
		if err != nil || n < purgeChunk {
			return total, err
		}
	}
}

func (s *SQLite) exec(ctx context.Context, q string, args ...any) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.broken {
		if err := s.reopen(ctx); err != nil {
			return 0, err
		}
	}
	res, err := s.w.ExecContext(ctx, q, args...)
	if err != nil {
		s.broken = true
		return 0, err
	}
	return res.RowsAffected()
}

// SetHold implements Store.
func (s *SQLite) SetHold(ctx context.Context, applicationID, by, reason string, on bool, at time.Time) error {
	if !on {
		_, err := s.exec(ctx, `DELETE FROM legal_holds WHERE application_id = ?`, applicationID)
		return err
	}
	_, err := s.exec(ctx, `INSERT INTO legal_holds (application_id, set_at, set_by, reason) VALUES (?, ?, ?, ?)
		ON CONFLICT (application_id) DO UPDATE SET set_at = excluded.set_at, set_by = excluded.set_by, reason = excluded.reason`,
		applicationID, at.UnixMicro(), by, reason)
	return err
}

// Holds implements Store.
func (s *SQLite) Holds(ctx context.Context) ([]Hold, error) {
	rows, err := s.r.QueryContext(ctx, `SELECT application_id, set_at, set_by, reason FROM legal_holds ORDER BY application_id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	return scanHolds(rows)
}

// Probe implements Store: a write to record_probe, synced like a commit.
func (s *SQLite) Probe(ctx context.Context) error {
	_, err := s.exec(ctx, `INSERT INTO record_probe (id, at) VALUES (1, ?)
		ON CONFLICT (id) DO UPDATE SET at = excluded.at`, time.Now().UnixMicro())
	return err
}

// Backend implements Store.
func (s *SQLite) Backend() string { return "sqlite" }

// Path is the database file.
func (s *SQLite) Path() string { return s.path }

// Close implements Store.
func (s *SQLite) Close() error {
	close(s.stopCkpt)
	<-s.ckptDone
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	if s.w != nil {
		errs = append(errs, s.w.Close())
	}
	errs = append(errs, s.r.Close())
	return errors.Join(errs...)
}

// sqlTx adapts *sql.Tx for migrate.
type sqlTx struct{ *sql.Tx }

func (t sqlTx) exec(ctx context.Context, q string, args ...any) error {
	_, err := t.ExecContext(ctx, q, args...)
	return err
}

func (t sqlTx) maxVersion(ctx context.Context) (int64, error) {
	var v sql.NullInt64
	err := t.QueryRowContext(ctx, `SELECT MAX(version) FROM schema_migrations`).Scan(&v)
	return v.Int64, err
}
