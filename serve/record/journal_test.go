package record

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"mlservice/serve/decision"
)

// TestJournalFrames: a frame decodes to the groups it was made of.
func TestJournalFrames(t *testing.T) {
	at := time.Date(2026, 12, 1, 9, 0, 0, 123456000, time.UTC)
	groups, _ := encodeGroups([]decision.Decision{sample("J-1", at, true), sample("J-2", at, false)}, nil)
	frame := journalFrame(nil, groups)
	got, err := frameGroups(nil, frame[frameHeader:])
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(groups) {
		t.Fatalf("%d groups, want %d", len(got), len(groups))
	}
	for i := range groups {
		w, g := groups[i], got[i]
		if !g.Time.Equal(w.Time) || g.Model != w.Model || g.Version != w.Version || g.Variant != w.Variant ||
			g.Served != w.Served || g.Decisions != w.Decisions || g.Encoding != w.Encoding ||
			!bytes.Equal(g.Keys, w.Keys) || !bytes.Equal(g.Payload, w.Payload) {
			t.Errorf("group %d: got %+v, want %+v", i, g, w)
		}
	}
	for cut := 0; cut < len(frame)-frameHeader; cut++ {
		if _, err := frameGroups(nil, frame[frameHeader:frameHeader+cut]); err == nil {
			t.Fatalf("a frame cut to %d bytes decoded", cut)
		}
	}
}

// TestJournalReplayStopsAtATornFrame: replay gives every whole frame in
// order and stops at one cut short, as a crash mid-write leaves it; a
// segment reused from a spare does not replay its old frames.
func TestJournalReplayStopsAtATornFrame(t *testing.T) {
	dir := t.TempDir()
	j, err := openJournal(dir, true)
	if err != nil {
		t.Fatal(err)
	}
	var ends []position
	for _, p := range []string{"one", "two", "three"} {
		if err := j.append(append(make([]byte, frameHeader), p...), func(end position) { ends = append(ends, end) }); err != nil {
			t.Fatal(err)
		}
	}
	// Tear the third frame: its last byte never reached the disk.
	f, err := os.OpenFile(j.path(ends[2].seg), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{0}, ends[2].off-1); err != nil {
		t.Fatal(err)
	}
	f.Close()
	replayed := func(from position) []string {
		var got []string
		if err := j.replay(from, func(p []byte, end position) error {
			got = append(got, string(p))
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return got
	}
	if got := replayed(position{}); len(got) != 2 || got[0] != "one" || got[1] != "two" {
		t.Fatalf("replayed %q, want [one two]", got)
	}
	if got := replayed(ends[0]); len(got) != 1 || got[0] != "two" {
		t.Fatalf("replayed from the first frame's end: %q, want [two]", got)
	}

	// The segment given up becomes a spare; the next segment reuses it,
	// and its old frames are not the new segment's.
	if err := j.close(); err != nil {
		t.Fatal(err)
	}
	j, err = openJournal(dir, true)
	if err != nil {
		t.Fatal(err)
	}
	defer j.close()
	first := ends[0].seg
	if err := j.append(append(make([]byte, frameHeader), "four"...), func(position) {}); err != nil {
		t.Fatal(err)
	}
	if err := j.release(first + 1); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(j.path(first)); !os.IsNotExist(err) {
		t.Fatalf("segment %d still there after release: %v", first, err)
	}
	spares, _ := filepath.Glob(filepath.Join(dir, "*.spare"))
	if len(spares) == 0 {
		t.Fatal("no spare kept")
	}
	j.mu.Lock()
	err = j.rotate(0) // a spare, possibly the old segment with "one", "two"
	j.mu.Unlock()
	if err != nil {
		t.Fatal(err)
	}
	if got := replayed(position{}); len(got) != 1 || got[0] != "four" {
		t.Fatalf("replayed %q after reuse, want [four]", got)
	}
}

// TestJournalRecovery: frames the journal holds past the database's
// watermark (a crash came between the acknowledgement and the loader) are
// loaded when the store opens, once.
func TestJournalRecovery(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s, err := OpenSQLite(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	at := time.Now().UTC()
	if err := s.Append(ctx, mustGroups(sample("R-1", at, true))); err != nil {
		t.Fatal(err)
	}
	// Written to the journal as a commit is, but not given to the loader:
	// what a kill -9 right after the fsync leaves.
	if err := s.j.append(journalFrame(nil, mustGroups(sample("R-2", at, true))), func(position) {}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for range 2 { // the second open finds nothing past the watermark
		s, err = OpenSQLite(ctx, dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range []string{"R-1", "R-2"} {
			if got := len(docs(t, s, id)); got != 1 {
				t.Errorf("%s: %d records after reopening, want 1", id, got)
			}
		}
		if err := s.Close(); err != nil {
			t.Fatal(err)
		}
	}

	// With every segment gone (say, removed by hand), new ones are still
	// numbered past the watermark, so what they hold is replayed.
	segs, _ := filepath.Glob(filepath.Join(dir, journalDir, "*.seg"))
	for _, f := range segs {
		os.Remove(f)
	}
	s, err = OpenSQLite(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.j.append(journalFrame(nil, mustGroups(sample("R-3", at, true))), func(position) {}); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = OpenSQLite(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if got := len(docs(t, s, "R-3")); got != 1 {
		t.Errorf("R-3: %d records after reopening, want 1", got)
	}
}

// TestJournalOneServerPerDirectory: a second store on the same data
// directory is refused while the first is open.
func TestJournalOneServerPerDirectory(t *testing.T) {
	dir := t.TempDir()
	s, err := OpenSQLite(context.Background(), dir)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s2, err := OpenSQLite(context.Background(), dir); err == nil {
		s2.Close()
		t.Fatal("a second store opened on the same directory")
	}
}

func mustGroups(ds ...decision.Decision) []Group {
	gs, _ := encodeGroups(ds, nil)
	return gs
}

// TestJournalBacklogMetric: the journal's backlog is a metric, and a read
// waits until the database holds everything acknowledged before it (the
// backlog is then 0).
func TestJournalBacklogMetric(t *testing.T) {
	s, err := OpenSQLite(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	rec := New(s, Config{Registerer: reg})
	defer rec.Close()
	if err := rec.Record(context.Background(), []decision.Decision{sample("M-1", time.Now(), true)}); err != nil {
		t.Fatal(err)
	}
	if n, err := testutil.GatherAndCount(reg, "decision_record_journal_backlog_bytes"); err != nil || n != 1 {
		t.Fatalf("decision_record_journal_backlog_bytes: %d series, %v", n, err)
	}
	if got := len(docs(t, s, "M-1")); got != 1 {
		t.Fatalf("%d records right after the commit, want 1", got)
	}
	if b := s.JournalBacklog(); b != 0 {
		t.Fatalf("journal backlog %d bytes after a read, want 0", b)
	}
}

// TestReadsDuringAJournalOutage: while the journal cannot be written, a
// commit that fails in place and one that fails in the segment it rotated
// to leave the journal's write position past every acknowledged frame;
// reads still see what was acknowledged, at once, instead of waiting for
// frames that were never written.
func TestReadsDuringAJournalOutage(t *testing.T) {
	s, err := OpenSQLite(context.Background(), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	ctx := context.Background()
	if err := s.Append(ctx, mustGroups(sample("H-1", time.Now(), true))); err != nil {
		t.Fatal(err)
	}
	docs(t, s, "H-1") // loaded
	// A spare to rotate to: the failed commit after the rotation is what
	// moves the write position to a new segment.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		s.j.smu.Lock()
		ready := len(s.j.spares) > 0 && !s.j.making
		s.j.smu.Unlock()
		if ready {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("no spare segment")
		}
	}
	restore := FileSizeLimit(t, 0, 1)
	defer restore()
	for _, id := range []string{"H-2", "H-3"} {
		if err := s.Append(ctx, mustGroups(sample(id, time.Now(), true))); err == nil {
			t.Fatalf("%s: a commit to an unwritable journal succeeded", id)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	n := 0
	if err := s.ByApplication(ctx, "H-1", func([]byte) error { n++; return nil }); err != nil || n != 1 {
		t.Fatalf("ByApplication during the outage: %d records, %v; want 1, nil", n, err)
	}
}

// TestCheckpointWithEveryReaderBusy: the checkpoint's first step, on a
// reader, does not wait for one while reads hold them all; the writer's
// step checkpoints, so the journal's older segments still go.
func TestCheckpointWithEveryReaderBusy(t *testing.T) {
	dir := t.TempDir()
	ctx := context.Background()
	s, err := OpenSQLite(ctx, dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Append(ctx, mustGroups(sample("C-1", time.Now(), true))); err != nil {
		t.Fatal(err)
	}
	s.Close()
	s, err = OpenSQLite(ctx, dir) // its frames go to segment 2
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for range readers {
		c, err := s.r.Conn(ctx)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	if err := s.Append(ctx, mustGroups(sample("C-2", time.Now(), true))); err != nil {
		t.Fatal(err)
	}
	first := s.j.path(1)
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if _, err := os.Stat(first); errors.Is(err, os.ErrNotExist) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("segment 1 is still there with every reader busy: the checkpoint waits for a reader")
		}
	}
}
