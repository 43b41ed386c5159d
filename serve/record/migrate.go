package record

import (
	"context"
	"fmt"
	"time"
)

// migration is one versioned schema change, in each dialect. Versions are
// applied in order, each once, in one transaction at start-up; a database
// newer than this binary is refused.
type migration struct {
	version  int
	name     string
	sqlite   []string
	postgres []string
}

// migrations are the record's schema history. Never edit a released one:
// add the next version.
var migrations = []migration{
	{
		version: 1,
		name:    "decisions, legal holds, probe; append-only trigger",
		sqlite: []string{
			`CREATE TABLE decisions (
				decision_id    TEXT    NOT NULL PRIMARY KEY,
				application_id TEXT    NOT NULL,
				decided_at     INTEGER NOT NULL, -- unix microseconds, UTC
				served         INTEGER NOT NULL, -- 1 answered, 0 shadow
				record         TEXT    NOT NULL  -- the decision as JSON, as GET /v1/decisions returns it
			)`,
			`CREATE INDEX decisions_by_application ON decisions (application_id, decided_at)`,
			`CREATE INDEX decisions_by_time ON decisions (decided_at)`,
			`CREATE TABLE legal_holds (
				application_id TEXT    NOT NULL PRIMARY KEY,
				set_at         INTEGER NOT NULL,
				set_by         TEXT    NOT NULL,
				reason         TEXT    NOT NULL
			)`,
			`CREATE TABLE record_probe (id INTEGER NOT NULL PRIMARY KEY, at INTEGER NOT NULL)`,
			`CREATE TRIGGER decisions_append_only BEFORE UPDATE ON decisions
				BEGIN SELECT RAISE(ABORT, 'the decision record is append-only'); END`,
		},
		postgres: []string{
			`CREATE TABLE decisions (
				decision_id    TEXT    NOT NULL PRIMARY KEY,
				application_id TEXT    NOT NULL,
				decided_at     BIGINT  NOT NULL,
				served         BOOLEAN NOT NULL,
				record         TEXT    NOT NULL
			)`,
			`CREATE INDEX decisions_by_application ON decisions (application_id, decided_at)`,
			`CREATE INDEX decisions_by_time ON decisions (decided_at)`,
			`CREATE TABLE legal_holds (
				application_id TEXT    NOT NULL PRIMARY KEY,
				set_at         BIGINT  NOT NULL,
				set_by         TEXT    NOT NULL,
				reason         TEXT    NOT NULL
			)`,
			`CREATE TABLE record_probe (id INTEGER NOT NULL PRIMARY KEY, at BIGINT NOT NULL)`,
			`CREATE FUNCTION decisions_append_only() RETURNS trigger LANGUAGE plpgsql AS
				$$ BEGIN RAISE EXCEPTION 'the decision record is append-only'; END $$`,
			`CREATE TRIGGER decisions_append_only BEFORE UPDATE ON decisions
				FOR EACH ROW EXECUTE FUNCTION decisions_append_only()`,
		},
	},
	{
		version: 2,
		name:    "outcomes: the bank's final verdict per application",
		sqlite: []string{
			`CREATE TABLE outcomes (
				application_id TEXT    NOT NULL PRIMARY KEY,
				approved       INTEGER NOT NULL,
				received_at    INTEGER NOT NULL,
				received_by    TEXT    NOT NULL
			)`,
		},
		postgres: []string{
			`CREATE TABLE outcomes (
				application_id TEXT    NOT NULL PRIMARY KEY,
				approved       BOOLEAN NOT NULL,
				received_at    BIGINT  NOT NULL,
				received_by    TEXT    NOT NULL
			)`,
		},
	},
}

// SchemaVersion is the newest migration this binary knows.
func SchemaVersion() int { return migrations[len(migrations)-1].version }

// migrator is a transaction of either backend.
type migrator interface {
	exec(ctx context.Context, q string, args ...any) error
	maxVersion(ctx context.Context) (int64, error)
}

// migrate applies the missing migrations inside tx; insert is the dialect's
// INSERT INTO schema_migrations statement.
func migrate(ctx context.Context, tx migrator, dialect, insert string) (applied int, err error) {
	if err := tx.exec(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		version    INTEGER NOT NULL PRIMARY KEY,
		name       TEXT    NOT NULL,
		applied_at TEXT    NOT NULL)`); err != nil {
		return 0, err
	}
	have, err := tx.maxVersion(ctx)
	if err != nil {
		return 0, err
	}
	if int(have) > SchemaVersion() {
		return 0, fmt.Errorf("the decision record's schema is version %d, newer than this server knows (%d): run a newer server", have, SchemaVersion())
	}
	for _, m := range migrations {
		if m.version <= int(have) {
			continue
		}
		stmts := m.sqlite
		if dialect == "postgres" {
			stmts = m.postgres
		}
		for _, s := range stmts {
			if err := tx.exec(ctx, s); err != nil {
				return applied, fmt.Errorf("migration %d (%s): %w", m.version, m.name, err)
			}
		}
		if err := tx.exec(ctx, insert, m.version, m.name, time.Now().UTC().Format(time.RFC3339)); err != nil {
			return applied, err
		}
		applied++
	}
	return applied, nil
}
