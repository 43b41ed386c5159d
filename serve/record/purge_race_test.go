package record

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"mlservice/internal/pgtest"
	"mlservice/serve/decision"
)

// midPurge runs during a purge chunk: after it read the groups and their
// holds, before its first delete.
type midPurge struct {
	pgQuerier
	during func()
}

func (m *midPurge) exec(ctx context.Context, sql string, args ...any) (int64, error) {
	if m.during != nil && strings.HasPrefix(strings.TrimSpace(sql), "DELETE") {
		f := m.during
		m.during = nil
		f()
	}
	return m.pgQuerier.exec(ctx, sql, args...)
}

// purgeWith is one chunk of p.Purge with during run mid-chunk; what during
// starts must wait for the chunk, so it is given until the chunk has
// committed to finish (done).
func purgeWith(t *testing.T, p *Postgres, cutoff time.Time, during func(done chan<- struct{})) {
	t.Helper()
	ctx := context.Background()
	done := make(chan struct{})
	err := pgx.BeginFunc(ctx, p.pool, func(tx pgx.Tx) error {
		_, _, err := p.purgeChunk(ctx, tx, &midPurge{pgQuerier: pgQuerier{tx}, during: func() {
			go during(done)
			select {
			case <-done:
				t.Error("it finished while the purge chunk was between its reads and its deletes")
			case <-time.After(300 * time.Millisecond):
			}
		}}, cutoff, 0)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("it did not finish after the purge chunk")
	}
}

// A legal hold and other replicas' purges wait for a purge chunk: a hold
// cannot be acknowledged between the chunk's read of the holds and its
// delete, and two replicas cannot both copy a group's held decisions.
func TestPostgresPurgeIsSerialisedWithHolds(t *testing.T) {
	pg := pgtest.Start(t)
	ctx := context.Background()
	now := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	old, cutoff := now.AddDate(0, -26, 0), now.AddDate(0, -25, 0)
	open := func(url string) *Postgres {
		p, err := OpenPostgres(ctx, url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { p.Close() })
		return p
	}
	count := func(p *Postgres, id string) int {
		n := 0
		if err := p.ByApplication(ctx, id, func([]byte) error { n++; return nil }); err != nil {
			t.Fatal(err)
		}
		return n
	}
	groups := func(ds ...decision.Decision) []Group {
		gs, _ := encodeGroups(ds, nil)
		return gs
	}

	url := pg.CreateDatabase(t, "purge_hold")
	p := open(url)
	if err := p.Append(ctx, groups(sample("CASE-1", old, true))); err != nil {
		t.Fatal(err)
	}
	purgeWith(t, p, cutoff, func(done chan<- struct{}) {
		defer close(done)
		if err := open(url).SetHold(ctx, "CASE-1", "alice", "subpoena", true, now); err != nil {
			t.Error(err)
		}
	})

	url = pg.CreateDatabase(t, "purge_twice")
	p = open(url)
	if err := p.Append(ctx, groups(sample("HELD-2", old, true), sample("OTHER", old, true))); err != nil {
		t.Fatal(err)
	}
	if err := p.SetHold(ctx, "HELD-2", "alice", "case", true, now); err != nil {
		t.Fatal(err)
	}
	purgeWith(t, p, cutoff, func(done chan<- struct{}) {
		defer close(done)
		if _, err := open(url).Purge(ctx, cutoff); err != nil {
			t.Error(err)
		}
	})
	if n := count(p, "HELD-2"); n != 1 {
		t.Fatalf("the held application has %d decisions after two purges, want its 1", n)
	}
	if n := count(p, "OTHER"); n != 0 {
		t.Fatalf("the unheld decision was kept (%d)", n)
	}
}
