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
	{
		version: 3,
		name:    "decisions stored by group (one row a request and version), application index built apart",
		sqlite: []string{
			`CREATE TABLE decision_groups (
				id         INTEGER NOT NULL PRIMARY KEY,
				decided_at INTEGER NOT NULL, -- unix microseconds, UTC
				model      TEXT    NOT NULL,
				version    TEXT    NOT NULL,
				variant    TEXT    NOT NULL,
				served     INTEGER NOT NULL, -- 1 answered, 0 shadow
				decisions  INTEGER NOT NULL,
				keys       TEXT    NOT NULL, -- JSON [[application_id, approve 1|0], …] by position: what the index is built from
				encoding   INTEGER NOT NULL, -- 2: s2 of the binary layout; 1: s2 of length-prefixed documents; 0: one document (moved from version 2)
				payload    BLOB    NOT NULL  -- the decisions as GET /v1/decisions returns them
			)`,
			`CREATE INDEX decision_groups_by_time ON decision_groups (decided_at)`,
			`CREATE TABLE decision_index (
				application_id TEXT    NOT NULL,
				decided_at     INTEGER NOT NULL,
				group_id       INTEGER NOT NULL,
				position       INTEGER NOT NULL,
				approve        INTEGER NOT NULL,
				PRIMARY KEY (application_id, decided_at, group_id, position)
			) WITHOUT ROWID`,
			`CREATE TABLE decision_groups_unindexed (
				group_id INTEGER NOT NULL PRIMARY KEY,
				indexed  INTEGER NOT NULL DEFAULT 0 -- positions below are in decision_index
			)`,
			`CREATE TRIGGER decision_groups_append_only BEFORE UPDATE ON decision_groups
				BEGIN SELECT RAISE(ABORT, 'the decision record is append-only'); END`,
			`CREATE TRIGGER decision_index_append_only BEFORE UPDATE ON decision_index
				BEGIN SELECT RAISE(ABORT, 'the decision record is append-only'); END`,
			`INSERT INTO decision_groups (id, decided_at, model, version, variant, served, decisions, keys, encoding, payload)
				SELECT rowid, decided_at, json_extract(record, '$.model.name'), json_extract(record, '$.model.version'),
					json_extract(record, '$.variant'), served, 1,
					json_array(json_array(application_id, json_extract(record, '$.approve'))),
					0, CAST(record AS BLOB) FROM decisions`,
			`INSERT INTO decision_index (application_id, decided_at, group_id, position, approve)
				SELECT application_id, decided_at, rowid, 0, json_extract(record, '$.approve') FROM decisions`,
			`DROP TABLE decisions`,
		},
		postgres: []string{
			`CREATE SEQUENCE decision_group_ids INCREMENT BY 1024`, // each writer takes a block of ids
			`CREATE TABLE decision_groups (
				id         BIGINT   NOT NULL PRIMARY KEY,
				decided_at BIGINT   NOT NULL,
				model      TEXT     NOT NULL,
				version    TEXT     NOT NULL,
				variant    TEXT     NOT NULL,
				served     BOOLEAN  NOT NULL,
				decisions  INTEGER  NOT NULL,
				keys       JSON     NOT NULL,
				encoding   SMALLINT NOT NULL,
				payload    BYTEA    NOT NULL
			)`,
			// The payload is s2-compressed already: TOAST stores it as it is.
			`ALTER TABLE decision_groups ALTER COLUMN payload SET STORAGE EXTERNAL`,
			`CREATE INDEX decision_groups_by_time ON decision_groups (decided_at)`,
			`CREATE TABLE decision_index (
				application_id TEXT    NOT NULL,
				decided_at     BIGINT  NOT NULL,
				group_id       BIGINT  NOT NULL,
				position       INTEGER NOT NULL,
				approve        BOOLEAN NOT NULL,
				PRIMARY KEY (application_id, decided_at, group_id, position)
			)`,
			`CREATE TABLE decision_groups_unindexed (
				group_id BIGINT  NOT NULL PRIMARY KEY,
				indexed  INTEGER NOT NULL DEFAULT 0
			)`,
			`CREATE TRIGGER decision_groups_append_only BEFORE UPDATE ON decision_groups
				FOR EACH ROW EXECUTE FUNCTION decisions_append_only()`,
			`CREATE TRIGGER decision_index_append_only BEFORE UPDATE ON decision_index
				FOR EACH ROW EXECUTE FUNCTION decisions_append_only()`,
			`INSERT INTO decision_groups (id, decided_at, model, version, variant, served, decisions, keys, encoding, payload)
				SELECT nextval('decision_group_ids'), decided_at, record::jsonb->'model'->>'name', record::jsonb->'model'->>'version',
					record::jsonb->>'variant', served, 1,
					json_build_array(json_build_array(application_id, CASE WHEN (record::jsonb->>'approve')::boolean THEN 1 ELSE 0 END)),
					0, convert_to(record, 'UTF8') FROM decisions`,
			`INSERT INTO decision_index (application_id, decided_at, group_id, position, approve)
				SELECT convert_from(payload, 'UTF8')::jsonb->>'application_id', decided_at, id, 0,
					(convert_from(payload, 'UTF8')::jsonb->>'approve')::boolean FROM decision_groups WHERE encoding = 0`,
			`DROP TABLE decisions`,
		},
	},
	{
		version: 4,
		name:    "journal watermark: where the SQLite backend's journal frames in the database end",
		// PostgreSQL has the table too (one schema); its own WAL is its
		// journal, so it stays empty there.
		sqlite: []string{
			`CREATE TABLE record_journal (
				id        INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
				segment   INTEGER NOT NULL,
				frame_end INTEGER NOT NULL
			)`,
		},
		postgres: []string{
			`CREATE TABLE record_journal (
				id        INTEGER NOT NULL PRIMARY KEY CHECK (id = 1),
				segment   BIGINT  NOT NULL,
				frame_end BIGINT  NOT NULL
			)`,
		},
	},
	{
		version: 5,
		// No table changes: the SQLite loader now writes payload encoding 3
		// and keys with a time for each decision (merge.go), which a server
		// of version 4 cannot read, so it must refuse such a database.
		name: "merged single predictions: payload encoding 3, keys with their decisions' times",
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
