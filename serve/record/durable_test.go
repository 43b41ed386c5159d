package record

import (
	"context"
	"database/sql"
	"path/filepath"
	"testing"
	"time"

	"mlservice/serve/outcomes"
)

// TestHoldsAndOutcomesCommitDurably: a legal hold (set or lifted) and an
// outcome go through no journal, so their commits must be synced before
// they are answered: a hold a power loss took back would let the start-up
// purge delete what it held. A trigger notes the writer connection's
// synchronous setting (2: FULL) as each one commits.
func TestHoldsAndOutcomesCommitDurably(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenSQLite(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	if err := s.Append(ctx, mustGroups(sample("D-1", time.Now(), true))); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite3", "file:"+filepath.Join(dir, SQLiteFile))
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`CREATE TABLE synced (what TEXT, mode INTEGER);
		CREATE TRIGGER hold_set AFTER INSERT ON legal_holds BEGIN INSERT INTO synced SELECT 'hold set', synchronous FROM pragma_synchronous; END;
		CREATE TRIGGER hold_lifted AFTER DELETE ON legal_holds BEGIN INSERT INTO synced SELECT 'hold lifted', synchronous FROM pragma_synchronous; END;
		CREATE TRIGGER outcome AFTER INSERT ON outcomes BEGIN INSERT INTO synced SELECT 'outcome', synchronous FROM pragma_synchronous; END;`); err != nil {
		t.Fatal(err)
	}
	if err := s.SetHold(ctx, "D-1", "boss", "case 1", true, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := s.SetHold(ctx, "D-1", "boss", "", false, time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.PutOutcome(ctx, outcomes.Outcome{ApplicationID: "D-1", Approved: true, ReceivedAt: time.Now(), By: "bank"}); err != nil {
		t.Fatal(err)
	}
	rows, err := db.Query(`SELECT what, mode FROM synced`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	n := 0
	for rows.Next() {
		var (
			what string
			mode int
		)
		if err := rows.Scan(&what, &mode); err != nil {
			t.Fatal(err)
		}
		if n++; mode != 2 {
			t.Errorf("%s committed with synchronous=%d, want 2 (FULL)", what, mode)
		}
	}
	if n != 3 {
		t.Fatalf("%d commits noted, want 3", n)
	}
	// The writer's own commits (the loader's) keep NORMAL: the journal makes
	// them durable.
	var mode int
	s.mu.Lock()
	err = s.w.QueryRow(`PRAGMA synchronous`).Scan(&mode)
	s.mu.Unlock()
	if err != nil || mode != 1 {
		t.Fatalf("the writer's synchronous setting afterwards: %d, %v; want 1 (NORMAL)", mode, err)
	}
}
