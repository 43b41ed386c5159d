package record

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"mlservice/serve/decision"
)

// stallingStore is a store whose writes hang, as an fdatasync on a stalled
// disk does: no context reaches them, until release is closed.
type stallingStore struct {
	Store
	stall   chan struct{} // closed: writes hang
	release chan struct{}
}

func newStallingStore(t *testing.T) *stallingStore {
	sqlite, err := OpenSQLite(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return &stallingStore{Store: sqlite, stall: make(chan struct{}), release: make(chan struct{})}
}

func (s *stallingStore) hang() {
	select {
	case <-s.stall:
		<-s.release
	default:
	}
}

func (s *stallingStore) Append(ctx context.Context, groups []Group) error {
	s.hang()
	return s.Store.Append(ctx, groups)
}

func (s *stallingStore) Probe(ctx context.Context) error {
	s.hang()
	return s.Store.Probe(ctx)
}

// A store that hangs fails the requests within twice WriteTimeout and turns
// the record unavailable, with traffic or without; it comes back once the
// store answers.
func TestStalledStoreFailsRequestsInTime(t *testing.T) {
	store := newStallingStore(t)
	rec := New(store, Config{WriteTimeout: 100 * time.Millisecond, ProbeEvery: 20 * time.Millisecond, Registerer: prometheus.NewRegistry()})
	defer rec.Close()
	record := func(id string) <-chan error {
		done := make(chan error, 1)
		go func() { done <- rec.Record(context.Background(), []decision.Decision{sample(id, time.Now(), true)}) }()
		return done
	}
	if err := <-record("S-1"); err != nil {
		t.Fatal(err)
	}

	close(store.stall)
	hung := record("S-2") // the writer takes it, and hangs
	time.Sleep(20 * time.Millisecond)
	queued := record("S-3") // behind it, never taken
	for _, c := range []struct {
		done <-chan error
		want error
	}{{queued, ErrBacklogged}, {hung, ErrStalled}} {
		select {
		case err := <-c.done:
			if !errors.Is(err, ErrUnavailable) || !errors.Is(err, c.want) {
				t.Fatalf("Record on a hung store: %v, want %v", err, c.want)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Record on a hung store did not return")
		}
	}
	if !errors.Is(rec.Health(), ErrStalled) {
		t.Fatalf("Health on a hung store: %v", rec.Health())
	}

	close(store.release)
	deadline := time.Now().Add(10 * time.Second)
	for rec.Health() != nil {
		if time.Now().After(deadline) {
			t.Fatalf("the record did not come back: %v", rec.Health())
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := <-record("S-4"); err != nil {
		t.Fatal(err)
	}
}

// With no traffic the probe notices a store that hangs.
func TestStalledStoreIsNoticedWhileIdle(t *testing.T) {
	store := newStallingStore(t)
	rec := New(store, Config{WriteTimeout: 50 * time.Millisecond, ProbeEvery: 10 * time.Millisecond, Registerer: prometheus.NewRegistry()})
	defer rec.Close()
	defer close(store.release)
	close(store.stall)
	deadline := time.Now().Add(10 * time.Second)
	for !errors.Is(rec.Health(), ErrStalled) {
		if time.Now().After(deadline) {
			t.Fatalf("an idle record on a hung store reads %v", rec.Health())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// slowStore commits, slowly but surely.
type slowStore struct {
	Store
	delay time.Duration
}

func (s *slowStore) Append(ctx context.Context, groups []Group) error {
	time.Sleep(s.delay)
	return s.Store.Append(ctx, groups)
}

// A queue of healthy commits longer than the bound refuses the decisions no
// writer reached, and writes none of them: a refused decision is never in
// the record, an answered one always is.
func TestBackloggedDecisionsAreRefusedUnwritten(t *testing.T) {
	dir := t.TempDir()
	sqlite, err := OpenSQLite(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	rec := New(&slowStore{Store: sqlite, delay: 60 * time.Millisecond},
		Config{WriteTimeout: 100 * time.Millisecond, MaxGroup: 1, Registerer: prometheus.NewRegistry()})
	ids := []string{"Q-0", "Q-1", "Q-2", "Q-3", "Q-4", "Q-5"}
	errs := make([]chan error, len(ids))
	for i, id := range ids {
		errs[i] = make(chan error, 1)
		go func() { errs[i] <- rec.Record(context.Background(), []decision.Decision{sample(id, time.Now(), true)}) }()
		time.Sleep(2 * time.Millisecond) // in this order in the queue
	}
	refused := 0
	results := make([]error, len(ids))
	for i := range ids {
		results[i] = <-errs[i]
		if results[i] != nil {
			refused++
			if !errors.Is(results[i], ErrBacklogged) {
				t.Fatalf("%s: %v, want ErrBacklogged", ids[i], results[i])
			}
		}
	}
	if rec.Health() != nil {
		t.Fatalf("a slow store read as unavailable: %v", rec.Health())
	}
	rec.Close() // every commit done
	if refused == 0 {
		t.Fatal("six 60 ms commits in a queue bounded at 200 ms: none refused")
	}
	store, err := OpenSQLite(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	for i, id := range ids {
		n := 0
		if err := store.ByApplication(context.Background(), id, func([]byte) error { n++; return nil }); err != nil {
			t.Fatal(err)
		}
		if (results[i] == nil) != (n == 1) {
			t.Errorf("%s: answered %v, in the record %d times", id, results[i], n)
		}
	}
}
