package record

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// The journal is the SQLite backend's write-ahead log of commits. A commit
// is one frame appended to a preallocated segment file and, in SyncFull,
// made durable by one fdatasync; the commit is acknowledged then, and a
// loader moves the frames into the database in large transactions (which
// need no fsync of their own: the journal holds them until a checkpoint has
// made them durable there). A request so waits for one small sequential
// write to blocks the file already has — 450–650 µs on this project's
// test machine at 32 connections, 150 µs on its idle disk — instead of a
// SQLite commit's WAL frames and fsync (1.0–1.2 ms), and the database's
// indexing and checkpoints run beside the requests instead of in front of
// them.
//
// A segment is a file of frames, each
//
//	length uint32 | crc32c uint32 | payload
//
// (little-endian), the CRC over the segment's number and the payload, so a
// torn frame at the end of a segment, the zeros past it, or a frame left
// from the file's earlier use end the segment when it is read back. A
// segment is written once in zeros when it is made, so a frame's fdatasync
// flushes data only: no extent or size change for the file system's own
// journal to commit (fallocate's unwritten extents need one, and it queues
// behind the checkpoint's flush of the database; that doubled the sync's
// time and tripled p99). Once the database holds a segment's frames
// durably the file is kept as a spare for a later segment (renamed), up to
// maxSpares.
type journal struct {
	dir  string
	sync bool // fdatasync each frame (SyncFull)
	lock *os.File

	mu   sync.Mutex // guards the fields below: one frame written at a time
	f    *os.File   // the segment being written; nil after a failed write
	seg  uint64     // its number
	off  int64      // where the next frame goes
	size int64      // its size
	// acked is where the last acknowledged frame (written, and synced in
	// SyncFull) ends: what a read must find loaded. It is not the write
	// position: a failed write leaves that in a segment, possibly a new
	// one, that no acknowledged frame reaches.
	acked position

	smu    sync.Mutex     // guards spares; taken after mu, never before
	spares []string       // files of segments no longer needed, for reuse
	making bool           // a spare is being made
	maker  sync.WaitGroup // the spare being made (close waits)
}

// journalDir is the journal's directory under SERVE_DATA_DIR.
const journalDir = "decisions.journal"

// segmentSize is how much a segment takes on disk. A frame larger than this
// gets a segment of its own size. maxSpares segments are kept for reuse.
const (
	segmentSize = 16 << 20
	maxSpares   = 2
)

const frameHeader = 8

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// position is a place in the journal: a segment and an offset in it.
type position struct {
	seg uint64
	off int64
}

func (p position) before(q position) bool {
	return p.seg < q.seg || (p.seg == q.seg && p.off < q.off)
}

// openJournal opens the journal in dir, taking its lock (one server per
// data directory). Appends go to a new segment after the newest one.
func openJournal(dir string, sync bool) (*journal, error) {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("decision journal: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o640)
	if err != nil {
		return nil, fmt.Errorf("decision journal: %w", err)
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		lock.Close()
		return nil, fmt.Errorf("decision journal %s is in use by another server (one server per SERVE_DATA_DIR): %w", dir, err)
	}
	j := &journal{dir: dir, sync: sync, lock: lock}
	segs, err := j.segments()
	if err != nil {
		j.close()
		return nil, err
	}
	if len(segs) > 0 {
		j.seg = segs[len(segs)-1]
	}
	tmps, _ := filepath.Glob(filepath.Join(dir, "*.tmp")) // spares cut short
	for _, t := range tmps {
		os.Remove(t)
	}
	if j.spares, err = filepath.Glob(filepath.Join(dir, "*.spare")); err != nil {
		j.close()
		return nil, err
	}
	if len(j.spares) == 0 { // the first segment, made now rather than by the first commit
		if err := j.makeSpare(); err != nil {
			j.close()
			return nil, err
		}
	}
	return j, nil
}

// segments lists the segment numbers on disk, oldest first.
func (j *journal) segments() ([]uint64, error) {
	ents, err := os.ReadDir(j.dir)
	if err != nil {
		return nil, fmt.Errorf("decision journal: %w", err)
	}
	var segs []uint64
	for _, e := range ents {
		if n, ok := strings.CutSuffix(e.Name(), ".seg"); ok {
			if s, err := strconv.ParseUint(n, 10, 64); err == nil {
				segs = append(segs, s)
			}
		}
	}
	slices.Sort(segs)
	return segs, nil
}

func (j *journal) path(seg uint64) string {
	return filepath.Join(j.dir, fmt.Sprintf("%020d.seg", seg))
}

// append writes one frame (its first frameHeader bytes are left for the
// header) and, in SyncFull, syncs it; then it calls written with where the
// frame ends, still in journal order. On an error nothing is acknowledged,
// and the next append starts a new segment, so a partly written frame is
// never followed by a good one in the same file.
func (j *journal) append(frame []byte, written func(end position)) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.f == nil || j.off+int64(len(frame)) > j.size {
		if err := j.rotate(int64(len(frame))); err != nil {
			return err
		}
	}
	payload := frame[frameHeader:]
	binary.LittleEndian.PutUint32(frame, uint32(len(payload)))
	binary.LittleEndian.PutUint32(frame[4:], frameCRC(j.seg, payload))
	_, err := j.f.WriteAt(frame, j.off)
	if err == nil && j.sync {
		err = unix.Fdatasync(int(j.f.Fd()))
	}
	if err != nil {
		j.f.Close()
		j.f = nil
		return fmt.Errorf("decision journal: %w", err)
	}
	j.off += int64(len(frame))
	j.acked = position{j.seg, j.off}
	written(j.acked)
	return nil
}

// end is where the last acknowledged frame ends.
func (j *journal) end() position {
	j.mu.Lock()
	defer j.mu.Unlock()
	return j.acked
}

// resume starts the journal after recovery at end, where the frames it
// holds end: new frames go to a segment past both end's and the newest on
// disk, so a later replay from the database's watermark never skips them
// even if the watermark's segment is gone.
func (j *journal) resume(end position) {
	j.mu.Lock()
	defer j.mu.Unlock()
	j.seg = max(j.seg, end.seg)
	j.acked = end
}

// rotate starts the next segment, at least need bytes long: a spare
// renamed, or a new file if there is none (or it is too small). Its name
// is made durable (the directory is synced).
func (j *journal) rotate(need int64) error {
	if j.f != nil {
		j.f.Close()
		j.f = nil
	}
	seg := j.seg + 1
	name := j.path(seg)
	j.smu.Lock()
	var spare string
	if n := len(j.spares); n > 0 && need <= segmentSize {
		spare, j.spares = j.spares[n-1], j.spares[:n-1]
	}
	j.smu.Unlock()
	var err error
	if spare != "" {
		err = os.Rename(spare, name)
	} else {
		err = zeroFile(name, max(int64(segmentSize), need))
	}
	var f *os.File
	if err == nil {
		f, err = os.OpenFile(name, os.O_RDWR, 0)
	}
	if err == nil {
		err = syncDir(j.dir)
	}
	var st os.FileInfo
	if err == nil {
		st, err = f.Stat()
	}
	if err != nil {
		if f != nil {
			f.Close()
		}
		return fmt.Errorf("decision journal: new segment: %w", err)
	}
	j.f, j.seg, j.off, j.size = f, seg, 0, st.Size()
	j.smu.Lock()
	if len(j.spares) == 0 && !j.making {
		j.making = true
		j.maker.Add(1)
		go j.keepSpare()
	}
	j.smu.Unlock()
	return nil
}

// keepSpare makes a spare segment in the background if none is left, so
// the next rotation renames one instead of writing a file of zeros in the
// commit path.
func (j *journal) keepSpare() {
	defer j.maker.Done()
	j.makeSpare() // failing, the next rotation writes its own
	j.smu.Lock()
	j.making = false
	j.smu.Unlock()
}

// makeSpare writes a segment's worth of zeros, syncs it and adds it to the
// spares.
func (j *journal) makeSpare() error {
	tmp := filepath.Join(j.dir, fmt.Sprintf("%d.tmp", time.Now().UnixNano()))
	if err := zeroFile(tmp, segmentSize); err != nil {
		os.Remove(tmp)
		return err
	}
	name := strings.TrimSuffix(tmp, ".tmp") + ".spare"
	if err := os.Rename(tmp, name); err != nil {
		os.Remove(tmp)
		return err
	}
	j.smu.Lock()
	j.spares = append(j.spares, name)
	j.smu.Unlock()
	return nil
}

// zeroFile writes a file of size zeros and syncs it.
func zeroFile(name string, size int64) error {
	f, err := os.OpenFile(name, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o640)
	if err != nil {
		return err
	}
	zeros := make([]byte, 1<<20)
	for off := int64(0); off < size && err == nil; off += int64(len(zeros)) {
		_, err = f.WriteAt(zeros[:min(int64(len(zeros)), size-off)], off)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// release gives up the segments older than seg (the database holds their
// frames durably): kept as spares up to maxSpares, the rest deleted.
func (j *journal) release(seg uint64) error {
	segs, err := j.segments()
	if err != nil {
		return err
	}
	var errs []error
	for _, s := range segs {
		if s >= seg {
			continue
		}
		old := j.path(s)
		j.smu.Lock()
		keep := len(j.spares) < maxSpares
		j.smu.Unlock()
		if st, err := os.Stat(old); err != nil || st.Size() != segmentSize {
			keep = false // a segment made for one large frame
		}
		if keep {
			spare := filepath.Join(j.dir, fmt.Sprintf("%d.spare", s))
			if err := os.Rename(old, spare); err != nil {
				errs = append(errs, err)
				continue
			}
			j.smu.Lock()
			j.spares = append(j.spares, spare)
			j.smu.Unlock()
			continue
		}
		if err := os.Remove(old); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// replay calls fn with every whole frame at or after from, in order, and
// the position where it ends. A segment ends at its first frame that is
// torn or was never written.
func (j *journal) replay(from position, fn func(payload []byte, end position) error) error {
	segs, err := j.segments()
	if err != nil {
		return err
	}
	for _, seg := range segs {
		if seg < from.seg {
			continue
		}
		b, err := os.ReadFile(j.path(seg))
		if err != nil {
			return fmt.Errorf("decision journal: %w", err)
		}
		off := int64(0)
		if seg == from.seg {
			off = from.off
		}
		for off+frameHeader <= int64(len(b)) {
			n := int64(binary.LittleEndian.Uint32(b[off:]))
			crc := binary.LittleEndian.Uint32(b[off+4:])
			if n == 0 || off+frameHeader+n > int64(len(b)) {
				break
			}
			payload := b[off+frameHeader : off+frameHeader+n]
			if frameCRC(seg, payload) != crc {
				break
			}
			off += frameHeader + n
			if err := fn(payload, position{seg, off}); err != nil {
				return err
			}
		}
	}
	return nil
}

func (j *journal) close() error {
	j.maker.Wait()
	j.mu.Lock()
	defer j.mu.Unlock()
	var errs []error
	if j.f != nil {
		errs = append(errs, j.f.Close())
		j.f = nil
	}
	if j.lock != nil {
		errs = append(errs, j.lock.Close()) // releases the flock
		j.lock = nil
	}
	return errors.Join(errs...)
}

func frameCRC(seg uint64, payload []byte) uint32 {
	var b [8]byte
	binary.LittleEndian.PutUint64(b[:], seg)
	return crc32.Update(crc32.Checksum(b[:], castagnoli), castagnoli, payload)
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// journalFrame encodes a commit's groups as a journal frame (header space
// first): the groups' fields in order, strings and bytes length-prefixed.
func journalFrame(b []byte, groups []Group) []byte {
	b = append(b[:0], make([]byte, frameHeader)...)
	b = binary.AppendUvarint(b, uint64(len(groups)))
	for i := range groups {
		g := &groups[i]
		b = binary.AppendVarint(b, g.Time.UnixMicro())
		for _, s := range [...]string{g.Model, g.Version, g.Variant} {
			b = binary.AppendUvarint(b, uint64(len(s)))
			b = append(b, s...)
		}
		served := byte(0)
		if g.Served {
			served = 1
		}
		b = append(b, served)
		b = binary.AppendUvarint(b, uint64(g.Decisions))
		b = binary.AppendUvarint(b, uint64(g.Encoding))
		for _, s := range [...][]byte{g.Keys, g.Payload} {
			b = binary.AppendUvarint(b, uint64(len(s)))
			b = append(b, s...)
		}
	}
	return b
}

var errFrame = errors.New("decision journal: malformed frame")

// frameGroups decodes a frame's payload (journalFrame) onto gs; the groups'
// Keys and Payload alias p.
func frameGroups(gs []Group, p []byte) ([]Group, error) {
	d := frameDecoder{b: p}
	n := d.uvarint()
	for i := uint64(0); i < n && d.err == nil; i++ {
		var g Group
		g.Time = time.UnixMicro(d.varint()).UTC()
		g.Model, g.Version, g.Variant = string(d.bytes()), string(d.bytes()), string(d.bytes())
		g.Served = d.byte() == 1
		g.Decisions = int(d.uvarint())
		g.Encoding = int(d.uvarint())
		g.Keys, g.Payload = d.bytes(), d.bytes()
		gs = append(gs, g)
	}
	if d.err != nil || len(d.b) != 0 {
		return gs, errFrame
	}
	return gs, nil
}

type frameDecoder struct {
	b   []byte
	err error
}

func (d *frameDecoder) uvarint() uint64 {
	v, n := binary.Uvarint(d.b)
	d.skip(n)
	return v
}

func (d *frameDecoder) varint() int64 {
	v, n := binary.Varint(d.b)
	d.skip(n)
	return v
}

// skip moves past n bytes read; n <= 0 (a varint's error) or past the end
// makes the frame malformed.
func (d *frameDecoder) skip(n int) {
	if n <= 0 || n > len(d.b) {
		d.err, d.b = errFrame, nil
		return
	}
	d.b = d.b[n:]
}

func (d *frameDecoder) byte() byte {
	if len(d.b) < 1 {
		d.err = errFrame
		return 0
	}
	c := d.b[0]
	d.b = d.b[1:]
	return c
}

func (d *frameDecoder) bytes() []byte {
	n := d.uvarint()
	if d.err != nil || n > uint64(len(d.b)) {
		d.err, d.b = errFrame, nil
		return nil
	}
	s := d.b[:n:n]
	d.b = d.b[n:]
	return s
}
