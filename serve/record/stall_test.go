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
	for _, id := range []string{"S-2", "S-3"} {
		select {
		case err := <-record(id):
			if !errors.Is(err, ErrUnavailable) || !errors.Is(err, ErrStalled) {
				t.Fatalf("Record on a hung store: %v, want ErrStalled", err)
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
