package record

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"sync"
	"time"

	_ "github.com/mattn/go-sqlite3" // the "sqlite3" database/sql driver (cgo, SQLite amalgamation)
)

// SQLiteFile is the record's file name under SERVE_DATA_DIR.
const SQLiteFile = "decisions.db"

// insertSizes are the sizes of the multi-row group INSERTs prepared: a
// commit's groups are written with the fewest statements (each a round of
// cgo calls), largest first.
var insertSizes = [...]int{64, 16, 4, 1}

// SQLite is the embedded backend: a journal (journal.go) that makes each
// commit durable when Append returns, and one database file in WAL mode
// that a loader fills from it in large transactions. One connection writes
// (SQLite has one writer); a pool reads. Every read waits until the
// database holds what was acknowledged before it began, so a lookup or an
// export always sees every acknowledged decision.
type SQLite struct {
	path string
	j    *journal

	mu     sync.Mutex // guards w (reopened after a failed write) and the statements
	w      *sql.DB
	groups [len(insertSizes)]*sql.Stmt // multi-row group INSERTs, one per insertSizes
	index  *sql.Stmt                   // index entries of a commit's small groups
	queue  *sql.Stmt                   // the queue rows of its large ones
	// nextID is the next group id (0: read it from the table). Groups get
	// their ids here, not from SQLite, so a commit's groups are one INSERT.
	nextID int64
	broken bool // the last write failed: reopen before the next one

	lmu sync.Mutex // guards the loader's state below
	// toLoad is what the journal holds and the database does not yet, in
	// journal order; queuedBytes their size.
	toLoad      []journaled
	queuedBytes int
	// loaded is where the journal's frames in the database end; loadedCh is
	// closed (and replaced) whenever it moves, for those waiting on it.
	loaded   position
	loadedCh chan struct{}
	// loadErr is why the loader's last transaction failed (nil: it did not);
	// commits are refused while it is set.
	loadErr error
	wake    chan struct{} // a frame was queued
	urgent  chan struct{} // a read waits for the loader
	stop    chan struct{} // closed by Close: the loader drains, the checkpoint stops
	done    sync.WaitGroup

	r *sql.DB
}

// journaled is a frame the journal holds: its payload and where it ends.
type journaled struct {
	payload []byte
	end     position
}

// loadMax bounds one loader transaction; maxLoadBacklog is how far the
// database may trail the journal before commits wait for the loader.
const (
	loadMax        = 16 << 20
	maxLoadBacklog = 256 << 20
	loadEvery      = 250 * time.Millisecond
)

var _ Store = (*SQLite)(nil)

// Sync modes of the SQLite backend (SERVE_DECISIONS_SYNC).
const (
	// SyncFull fsyncs the journal at every commit: an acknowledged decision
	// survives a crash of the process, of the OS and a power loss.
	SyncFull = "full"
	// SyncNormal writes the journal without an fsync: an acknowledged
	// decision survives a crash of the process (kill -9), not of the OS or
	// the power.
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
	j, err := openJournal(filepath.Join(dir, journalDir), sync == SyncFull)
	if err != nil {
		return nil, err
	}
	s := &SQLite{path: filepath.Join(dir, SQLiteFile), j: j, loadedCh: make(chan struct{}),
		wake: make(chan struct{}, 1), urgent: make(chan struct{}, 1), stop: make(chan struct{})}
	if err := s.openWriter(ctx); err != nil {
		j.close()
		return nil, err
	}
	fail := func(err error) (*SQLite, error) {
		s.w.Close()
		if s.r != nil {
			s.r.Close()
		}
		j.close()
		return nil, err
	}
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return fail(err)
	}
	if _, err := migrate(ctx, sqlTx{tx}, "sqlite", `INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)`); err != nil {
		tx.Rollback()
		return fail(fmt.Errorf("decision record %s: %w", s.path, err))
	}
	if err := tx.Commit(); err != nil {
		return fail(err)
	}
	if err := s.prepare(ctx); err != nil {
		return fail(err)
	}
	s.r, err = sql.Open("sqlite3", s.dsn(false))
	if err != nil {
		return fail(err)
	}
	s.r.SetMaxOpenConns(readers)
	if err := s.recover(ctx); err != nil {
		return fail(fmt.Errorf("decision record %s: replaying the journal: %w", s.path, err))
	}
	s.done.Add(2)
	go s.loadLoop()
	go s.checkpoint()
	return s, nil
}

// recover loads the frames the journal holds past the database's
// watermark (a crash left them there), before the store takes commits.
func (s *SQLite) recover(ctx context.Context) error {
	var from position
	err := s.r.QueryRowContext(ctx, `SELECT segment, frame_end FROM record_journal WHERE id = 1`).Scan(&from.seg, &from.off)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return err
	}
	end := from
	err = s.j.replay(from, func(payload []byte, at position) error {
		s.enqueue(payload, at)
		end = at
		if s.JournalBacklog() >= loadMax {
			return s.drain()
		}
		return nil
	})
	if err == nil {
		err = s.drain()
	}
	s.j.resume(end)
	if s.loaded.before(end) {
		s.loaded = end // nothing past the watermark: the loader is there
	}
	return err
}

func (s *SQLite) dsn(writer bool) string {
	q := url.Values{}
	q.Set("_journal_mode", "WAL")
	// The journal makes commits durable; the database's transactions are
	// made durable by the checkpoint (which syncs the WAL, then the file)
	// before the journal lets their frames go.
	q.Set("_synchronous", "NORMAL")
	// Readers get 64 MiB of page cache each; the writer 4 MiB, which holds
	// what commits touch (the tree's right edges and interior pages): SQLite
	// scans a writer's whole cache at the end of every transaction it
	// shrinks, which with 64 MiB was 7% of a busy server's CPU.
	q.Set("_cache_size", "-65536")
	if writer {
		q.Set("_cache_size", "-4096")
	}
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
	// Checkpoints run on their own (checkpoint), not in a commit; a WAL
	// that a burst grew is cut back to 64 MiB when it restarts.
	if _, err := w.ExecContext(ctx, `PRAGMA journal_size_limit = 67108864`); err != nil {
		w.Close()
		return fmt.Errorf("decision record %s: %w", s.path, err)
	}
	if _, err := w.ExecContext(ctx, `PRAGMA wal_autocheckpoint = 0`); err != nil {
		w.Close()
		return fmt.Errorf("decision record %s: %w", s.path, err)
	}
	s.w = w
	return nil
}

func (s *SQLite) prepare(ctx context.Context) error {
	var err error
	if s.index, err = s.w.PrepareContext(ctx, insertEntries(sqlQuerier{}, `g.id >= ? AND g.id < ? AND g.decisions <= ?`)); err != nil {
		return err
	}
	if s.queue, err = s.w.PrepareContext(ctx, `INSERT INTO decision_groups_unindexed (group_id)
		SELECT id FROM decision_groups WHERE id >= ? AND id < ? AND decisions > ?`); err != nil {
		return err
	}
	for i, n := range insertSizes {
		if s.groups[i], err = s.w.PrepareContext(ctx, `INSERT INTO decision_groups
			(id, decided_at, model, version, variant, served, decisions, keys, encoding, payload) VALUES `+
			placeholders(n, "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?)")); err != nil {
			return err
		}
	}
	return nil
}

// takeID returns the next group id; s.mu is held and tx is the writer's.
func (s *SQLite) takeID(ctx context.Context, tx *sql.Tx) (int64, error) {
	if s.nextID == 0 {
		if err := tx.QueryRowContext(ctx, `SELECT COALESCE(MAX(id), 0) + 1 FROM decision_groups`).Scan(&s.nextID); err != nil {
			return 0, err
		}
	}
	s.nextID++
	return s.nextID - 1, nil
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

// writeTx runs fn in a transaction of the writer and commits it: under mu,
// on a writer reopened if the last write failed; an error rolls back, marks
// the writer broken and forgets the group ids handed out.
func (s *SQLite) writeTx(ctx context.Context, fn func(tx *sql.Tx) error) (err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.broken {
		if err := s.reopen(ctx); err != nil {
			return err
		}
	}
	defer func() {
		if err != nil {
			s.broken, s.nextID = true, 0
		}
	}()
	tx, err := s.w.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback() // no-op after Commit
	if err := fn(tx); err != nil {
		return err
	}
	return tx.Commit()
}

// Append implements Store: the groups are one journal frame, durable when
// it returns; the loader moves them into the database.
func (s *SQLite) Append(ctx context.Context, groups []Group) error {
	if err := s.loadHealth(); err != nil {
		return err
	}
	frame := journalFrame(nil, groups) // the loader keeps it: not pooled
	if err := s.room(ctx); err != nil {
		return err
	}
	return s.j.append(frame, func(end position) {
		s.enqueue(frame[frameHeader:], end)
		select {
		case s.wake <- struct{}{}:
		default:
		}
	})
}

// enqueue hands a frame the journal holds to the loader.
func (s *SQLite) enqueue(payload []byte, end position) {
	s.lmu.Lock()
	s.toLoad = append(s.toLoad, journaled{payload, end})
	s.queuedBytes += frameHeader + len(payload)
	s.lmu.Unlock()
}

// drain loads everything queued, or returns why it could not.
func (s *SQLite) drain() error {
	for {
		switch n := s.loadNext(); {
		case n == 0:
			return nil
		case n < 0:
			s.lmu.Lock()
			defer s.lmu.Unlock()
			return s.loadErr
		}
	}
}

// JournalBacklog is how many bytes of commits the journal holds that the
// database does not yet (a metric).
func (s *SQLite) JournalBacklog() int {
	s.lmu.Lock()
	defer s.lmu.Unlock()
	return s.queuedBytes
}

// loadHealth is why commits are refused: the loader cannot write the
// database.
func (s *SQLite) loadHealth() error {
	s.lmu.Lock()
	defer s.lmu.Unlock()
	if s.loadErr != nil {
		return fmt.Errorf("decision record %s: %w", s.path, s.loadErr)
	}
	return nil
}

// room waits while the database trails the journal by more than
// maxLoadBacklog, so what the loader holds in memory is bounded.
func (s *SQLite) room(ctx context.Context) error {
	return s.awaitLoader(ctx, func(_ position, queued int) bool { return queued < maxLoadBacklog })
}

// settled waits until the database holds every frame the journal had
// acknowledged when it was called: what a read must see.
func (s *SQLite) settled(ctx context.Context) error {
	target := s.j.end()
	return s.awaitLoader(ctx, func(loaded position, _ int) bool { return !loaded.before(target) })
}

// awaitLoader urges the loader on until done is true of where it got to
// and what it still holds, it fails, or ctx ends.
func (s *SQLite) awaitLoader(ctx context.Context, done func(loaded position, queued int) bool) error {
	for {
		s.lmu.Lock()
		loaded, queued, ch, err := s.loaded, s.queuedBytes, s.loadedCh, s.loadErr
		s.lmu.Unlock()
		if done(loaded, queued) {
			return nil
		}
		if err != nil {
			return err
		}
		select {
		case s.urgent <- struct{}{}:
		default:
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// loadLoop moves frames from the journal's queue into the database, all
// that have queued up (to loadMax) in one transaction, at most every
// loadEvery unless a read waits for them: nothing else does, and the
// application index's entries of a quarter second share its pages (loaded
// every 10 ms, the record served 20% fewer requests at 32 connections). A
// failed transaction is tried again every 100 ms; until one succeeds
// commits are refused (loadHealth). On Close it loads what is left.
func (s *SQLite) loadLoop() {
	defer s.done.Done()
	gather := time.NewTimer(loadEvery)
	for {
		urgent := false
		select {
		case <-s.wake:
		case <-s.urgent:
			urgent = true
		case <-s.stop:
			s.drain() // failing, what is left stays in the journal for the next start
			return
		}
		if !urgent {
			gather.Reset(loadEvery)
			select {
			case <-gather.C:
			case <-s.urgent:
			case <-s.stop:
			}
		}
		for {
			n := s.loadNext()
			if n > 0 {
				continue
			}
			if n < 0 { // failed: try again
				select {
				case <-s.stop:
				case <-time.After(100 * time.Millisecond):
					continue
				}
			}
			break
		}
	}
}

// loadNext loads the frames at the head of the queue: how many it loaded,
// or -1 if it failed.
func (s *SQLite) loadNext() int {
	s.lmu.Lock()
	n, bytes := 0, 0
	for n < len(s.toLoad) && bytes < loadMax {
		bytes += len(s.toLoad[n].payload) + frameHeader
		n++
	}
	batch := s.toLoad[:n:n]
	s.lmu.Unlock()
	if n == 0 {
		return 0
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	err := s.load(ctx, batch)
	cancel()
	s.lmu.Lock()
	defer s.lmu.Unlock()
	s.loadErr = err
	if err != nil {
		return -1
	}
	s.loaded = batch[n-1].end
	clear(s.toLoad[:n]) // batch too: the payloads go
	s.toLoad = s.toLoad[n:]
	s.queuedBytes -= bytes
	close(s.loadedCh)
	s.loadedCh = make(chan struct{})
	return n
}

// load writes the frames' groups to the database in one transaction, with
// the watermark: where in the journal they end.
func (s *SQLite) load(ctx context.Context, frames []journaled) error {
	var groups []Group
	for _, f := range frames {
		var err error
		if groups, err = frameGroups(groups, f.payload); err != nil {
			return err
		}
	}
	groups = mergeGroups(groups)
	end := frames[len(frames)-1].end
	return s.writeTx(ctx, func(tx *sql.Tx) error {
		if len(groups) > 0 {
			if err := s.append(ctx, tx, groups); err != nil {
				return err
			}
		}
		_, err := tx.ExecContext(ctx, `INSERT INTO record_journal (id, segment, frame_end) VALUES (1, ?, ?)
			ON CONFLICT (id) DO UPDATE SET segment = excluded.segment, frame_end = excluded.frame_end`, end.seg, end.off)
		return err
	})
}

func (s *SQLite) append(ctx context.Context, tx *sql.Tx, groups []Group) (err error) {
	var (
		args         []any
		first, end   int64
		small, large bool
	)
	for i := range groups {
		g := &groups[i]
		var id int64
		if id, err = s.takeID(ctx, tx); err != nil {
			return err
		}
		if i == 0 {
			first = id
		}
		end = id + 1
		small, large = small || g.Decisions <= inlineIndex, large || g.Decisions > inlineIndex
		args = append(args, id, g.Time.UnixMicro(), g.Model, g.Version, g.Variant, g.Served, g.Decisions, g.Keys, g.Encoding, g.Payload)
	}
	for i, n := range insertSizes {
		stmt := tx.StmtContext(ctx, s.groups[i])
		for len(args) >= 10*n {
			if _, err = stmt.ExecContext(ctx, args[:10*n]...); err != nil {
				return err
			}
			args = args[10*n:]
		}
	}
	// The commit's ids are first…end-1: index its small groups, queue its
	// large ones.
	if small {
		if _, err = tx.StmtContext(ctx, s.index).ExecContext(ctx, first, end, inlineIndex); err != nil {
			return err
		}
	}
	if large {
		if _, err = tx.StmtContext(ctx, s.queue).ExecContext(ctx, first, end, inlineIndex); err != nil {
			return err
		}
	}
	return nil
}

// Index implements Store: the next queued decisions, about max, in one
// transaction.
func (s *SQLite) Index(ctx context.Context, max int) (indexed, backlog int, err error) {
	if err := s.settled(ctx); err != nil {
		return 0, 0, err
	}
	err = s.writeTx(ctx, func(tx *sql.Tx) (err error) {
		indexed, backlog, err = indexQueued(ctx, sqlQuerier{tx}, max, "")
		return err
	})
	if err != nil {
		return 0, 0, err
	}
	return indexed, backlog, nil
}

// checkpoint copies the WAL into the database every second, in two steps.
// First on a reader connection, so the loader does not wait: it copies what
// was committed up to its start, which under load is nearly all. Then on
// the writer, between two transactions, for what came in meanwhile: a pause
// of a few milliseconds after which the WAL is wholly copied, so the next
// transaction starts it over. Transactions then overwrite blocks the file
// has and the WAL stays about a second long; with the reader's step alone
// it never completed under sustained load. A WAL a burst grew is cut back
// to 64 MiB when it restarts (journal_size_limit).
//
// A completed checkpoint has synced the database file, so what was loaded
// before it is durable there and the journal's older segments go.
func (s *SQLite) checkpoint() {
	defer s.done.Done()
	var removed uint64
	every(time.Second, s.stop, func() {
		s.checkpointOnReader()
		s.mu.Lock()
		var (
			durable              position
			busy, frames, copied int
			complete             bool
		)
		if !s.broken && s.w != nil {
			s.lmu.Lock()
			durable = s.loaded // committed: the loader moves it after its transaction
			s.lmu.Unlock()
			err := s.w.QueryRow(`PRAGMA wal_checkpoint(PASSIVE)`).Scan(&busy, &frames, &copied)
			complete = err == nil && busy == 0 && frames == copied
		}
		s.mu.Unlock()
		if complete && durable.seg > removed {
			if s.j.release(durable.seg) == nil {
				removed = durable.seg
			}
		}
	})
}

// checkpointOnReader is the checkpoint's first step. It waits at most a
// second for a reader (lookups and exports may hold them all; the writer's
// step then copies everything) and bounds the copy at 30 s (what an
// interrupted copy leaves, the writer's step redoes).
func (s *SQLite) checkpointOnReader() {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	c, err := s.r.Conn(ctx)
	if err != nil {
		return
	}
	defer c.Close()
	ctx, cancel = context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, _ = c.ExecContext(ctx, `PRAGMA wal_checkpoint(PASSIVE)`)
}

// ByApplication implements Store. One read transaction sees the index and
// the queue at the same moment, so a group moving from one to the other is
// found exactly once.
func (s *SQLite) ByApplication(ctx context.Context, applicationID string, fn func([]byte) error) error {
	if err := s.settled(ctx); err != nil {
		return err
	}
	tx, err := s.r.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return err
	}
	defer tx.Rollback()
	return byApplication(ctx, sqlQuerier{tx}, applicationID, fn)
}

// Export implements Store.
func (s *SQLite) Export(ctx context.Context, from, to time.Time, fn func([]byte) error) error {
	if err := s.settled(ctx); err != nil {
		return err
	}
	return export(ctx, sqlQuerier{s.r}, from, to, fn)
}

// Purge implements Store.
func (s *SQLite) Purge(ctx context.Context, cutoff time.Time) (int64, error) {
	if err := s.settled(ctx); err != nil {
		return 0, err
	}
	var total, after int64
	for {
		n, last, err := s.purgeChunk(ctx, cutoff, after)
		total += n
		if err != nil || last == 0 {
			return total, err
		}
		after = last
	}
}

func (s *SQLite) purgeChunk(ctx context.Context, cutoff time.Time, after int64) (n, last int64, err error) {
	err = s.writeTx(ctx, func(tx *sql.Tx) (err error) {
		newID := func(ctx context.Context) (int64, error) { return s.takeID(ctx, tx) }
		n, last, err = purgeGroups(ctx, sqlQuerier{tx}, cutoff, after, newID)
		return err
	})
	if err != nil {
		return 0, 0, err
	}
	return n, last, nil
}

// exec runs one statement on the writer, committed as it returns but, at
// synchronous=NORMAL, not yet synced: a power loss can take it back.
func (s *SQLite) exec(ctx context.Context, q string, args ...any) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.execLocked(ctx, q, args...)
}

// execDurably is exec with its commit synced before it returns
// (synchronous=FULL for the one statement), for what goes through no
// journal and must outlast a power loss once answered: a legal hold (a
// lost one lets the start-up purge delete what it held) and an outcome.
func (s *SQLite) execDurably(ctx context.Context, q string, args ...any) (int64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, err := s.execLocked(ctx, `PRAGMA synchronous = FULL`); err != nil {
		return 0, err
	}
	n, err := s.execLocked(ctx, q, args...)
	// Back to the loader's setting; failing, the writer is reopened with it.
	if _, rerr := s.execLocked(context.WithoutCancel(ctx), `PRAGMA synchronous = NORMAL`); rerr != nil {
		s.broken = true
	}
	return n, err
}

// execLocked is exec with s.mu held.
func (s *SQLite) execLocked(ctx context.Context, q string, args ...any) (int64, error) {
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

// SetHold implements Store, durably.
func (s *SQLite) SetHold(ctx context.Context, applicationID, by, reason string, on bool, at time.Time) error {
	if !on {
		_, err := s.execDurably(ctx, `DELETE FROM legal_holds WHERE application_id = ?`, applicationID)
		return err
	}
	n, err := s.execDurably(ctx, setHoldSQL, applicationID, at.UnixMicro(), by, reason)
	if err != nil || n == 1 {
		return err
	}
	return heldBy(ctx, sqlQuerier{s.r}, applicationID)
}

// Holds implements Store.
func (s *SQLite) Holds(ctx context.Context) ([]Hold, error) {
	return holdsOf(ctx, sqlQuerier{s.r}, "")
}

// Probe implements Store: a write to record_probe in the database, then an
// empty frame through the journal (synced like a commit).
func (s *SQLite) Probe(ctx context.Context) error {
	if _, err := s.exec(ctx, `INSERT INTO record_probe (id, at) VALUES (1, ?)
		ON CONFLICT (id) DO UPDATE SET at = excluded.at`, time.Now().UnixMicro()); err != nil {
		return err
	}
	return s.Append(ctx, nil)
}

// Backend implements Store.
func (s *SQLite) Backend() string { return "sqlite" }

// Path is the database file.
func (s *SQLite) Path() string { return s.path }

// Close implements Store.
func (s *SQLite) Close() error {
	close(s.stop)
	s.done.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	var errs []error
	if s.w != nil {
		errs = append(errs, s.w.Close())
	}
	errs = append(errs, s.r.Close(), s.j.close())
	return errors.Join(errs...)
}

// sqlQuerier adapts database/sql for the queries both backends share.
type sqlQuerier struct {
	q interface {
		QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
		ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error)
	}
}

func (q sqlQuerier) query(ctx context.Context, sql string, args ...any) (cursor, error) {
	return q.q.QueryContext(ctx, sql, args...)
}

func (sqlQuerier) entries() string {
	return `SELECT j.value ->> 0 AS application_id, COALESCE(j.value ->> 2, g.decided_at) AS decided_at, g.id AS group_id,
		j.key AS position, j.value ->> 1 AS approve FROM decision_groups g, json_each(g.keys) j`
}

func (q sqlQuerier) exec(ctx context.Context, sql string, args ...any) (int64, error) {
	res, err := q.q.ExecContext(ctx, sql, args...)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
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
