package record

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"mlservice/serve/decision"
)

// Config tunes a Recorder.
type Config struct {
	// Writers is the number of goroutines committing groups concurrently:
	// 1 for SQLite (it has one writer anyway), a few for PostgreSQL so one
	// group's commit overlaps the next one's insert.
	Writers int
	// MaxGroup caps the decisions in one commit (default 20,000).
	MaxGroup int
	// WriteTimeout bounds one commit (default 5s); past it the requests
	// waiting for it fail.
	WriteTimeout time.Duration
	// Retention is how long decisions are kept (default 25 months).
	Retention Retention
	// PurgeEvery is how often the purge runs (default 1h; also once at
	// start). Zero or negative uses the default.
	PurgeEvery time.Duration
	// ProbeEvery is how often a write probe checks the store while it is
	// unhealthy (default 1s), and while it is healthy but idle (5×).
	ProbeEvery time.Duration
	// IndexEvery is how often queued batches are added to the application
	// index (default 250ms).
	IndexEvery time.Duration
	// Registerer takes the record's metrics (nil: not registered).
	Registerer prometheus.Registerer
	Log        *slog.Logger
	// Now is the clock (tests pass their own).
	Now func() time.Time
}

func (c *Config) defaults() {
	if c.Writers <= 0 {
		c.Writers = 1
	}
	if c.MaxGroup <= 0 {
		c.MaxGroup = 20000
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 5 * time.Second
	}
	if c.Retention == (Retention{}) {
		c.Retention = DefaultRetention
	}
	if c.PurgeEvery <= 0 {
		c.PurgeEvery = time.Hour
	}
	if c.ProbeEvery <= 0 {
		c.ProbeEvery = time.Second
	}
	if c.IndexEvery <= 0 {
		c.IndexEvery = 250 * time.Millisecond
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
	if c.Now == nil {
		c.Now = time.Now
	}
}

// Recorder writes decisions to a Store before their answers are sent, with
// group commit. It implements decision.Recorder and is safe for concurrent
// use. Create it with New and stop it with Close.
type Recorder struct {
	cfg     Config
	store   Store
	m       *Metrics
	pending chan *call
	// health is nil while the store takes writes, else why it does not.
	health   atomic.Pointer[error]
	lastGood atomic.Int64 // unix nanos of the last successful write or probe
	// lastBatch is when (unix nanos) a commit last queued a group for the
	// index, and backlog how many decisions wait for it (-1: not known yet).
	lastBatch, backlog atomic.Int64
	lastCommit         atomic.Int64 // unix nanos of the last commit
	lastIndex          time.Time    // when the indexer last asked the store (its goroutine's)
	closing            chan struct{}
	wg                 sync.WaitGroup
	mu                 sync.RWMutex // held for reading by Record, for writing by Close
	closed             bool
}

var _ decision.Recorder = (*Recorder)(nil)

// call is one Record call waiting for its commit.
type call struct {
	groups    []Group
	decisions int
	buf       []byte // scratch for the documents
	done      chan error
	timer     *time.Timer // bounds the wait (Record's), stopped between uses
	state     atomic.Int32
}

var callPool = sync.Pool{New: func() any {
	t := time.NewTimer(time.Hour)
	t.Stop()
	return &call{done: make(chan error, 1), timer: t}
}}

var (
	// ErrStalled means a commit did not answer within twice WriteTimeout:
	// a disk or a connection that hangs rather than fails. The request
	// fails; the record reads unavailable until a commit succeeds again.
	ErrStalled = errors.New("record: the store did not answer in time")
	// ErrBacklogged means no writer reached the decisions within twice
	// WriteTimeout (a queue of commits ahead of them): they are not written,
	// and the request fails.
	ErrBacklogged = errors.New("record: the decisions waited too long to be written")
)

// New starts a Recorder over store: its writers, the purge and the probe.
func New(store Store, cfg Config) *Recorder {
	cfg.defaults()
	r := &Recorder{cfg: cfg, store: store, m: newMetrics(cfg.Registerer, store.Backend()),
		pending: make(chan *call, 4096), closing: make(chan struct{})}
	if j, ok := store.(interface{ JournalBacklog() int }); ok {
		registerJournal(cfg.Registerer, store.Backend(), j.JournalBacklog)
	}
	r.lastGood.Store(cfg.Now().UnixNano())
	r.backlog.Store(-1)
	for range cfg.Writers {
		r.wg.Add(1)
		go r.write()
	}
	r.wg.Add(3)
	go r.purgeLoop()
	go r.probeLoop()
	go r.indexLoop()
	return r
}

// Record writes ds durably and returns once they are committed. An error
// (always wrapping ErrUnavailable) means none of them are written and the
// request must fail.
func (r *Recorder) Record(ctx context.Context, ds []decision.Decision) error {
	if len(ds) == 0 {
		return nil
	}
	g := callPool.Get().(*call)
	g.groups, g.buf = encodeGroups(ds, g.buf)
	g.decisions = len(ds)
	g.state.Store(callQueued)
	r.mu.RLock()
	if r.closed {
		r.mu.RUnlock()
		return &UnavailableError{ErrClosed}
	}
	r.m.queued.Add(float64(len(ds)))
	// A store that hangs (an fdatasync that does not return) holds the
	// writer whatever WriteTimeout says, so the wait is bounded here: at
	// most waitBound in the queue, then at most waitBound for the commit.
	g.timer.Reset(r.waitBound())
	select {
	case r.pending <- g:
	case <-ctx.Done():
		r.mu.RUnlock()
		r.m.queued.Sub(float64(len(ds)))
		g.timer.Stop()
		return &UnavailableError{ctx.Err()}
	case <-g.timer.C:
		r.mu.RUnlock()
		r.m.queued.Sub(float64(len(ds)))
		return r.backlogged()
	}
	r.mu.RUnlock()
	var err error
	for waited := false; ; {
		select {
		case err = <-g.done:
		case <-g.timer.C:
			if g.state.CompareAndSwap(callQueued, callAbandoned) {
				// No writer has taken it: it never will, and nothing of
				// it is written. The writer drops it (g is not pooled).
				return r.backlogged()
			}
			if waited {
				// Its commit did not answer: the writer answers g
				// later, so g is not pooled.
				return r.stalled()
			}
			waited = true
			g.timer.Reset(r.waitBound())
			continue
		}
		break
	}
	g.timer.Stop()
	g.groups = nil
	if cap(g.buf) > 1<<20 { // a large batch's scratch is not kept
		g.buf = nil
	}
	callPool.Put(g)
	return err
}

// A call's states: queued until a writer takes it, or abandoned by a Record
// that stopped waiting first (the writer then drops it, unwritten).
const (
	callQueued int32 = iota
	callTaken
	callAbandoned
)

// write is one writer goroutine: it takes every call that has queued up
// (up to MaxGroup decisions), commits them in one transaction and answers
// each.
func (r *Recorder) write() {
	defer r.wg.Done()
	var (
		calls  []*call
		groups []Group
	)
	// take claims a queued call for this commit; an abandoned one is only
	// taken off the gauge.
	take := func(c *call) int {
		if !c.state.CompareAndSwap(callQueued, callTaken) {
			r.m.queued.Sub(float64(c.decisions))
			return 0
		}
		calls = append(calls, c)
		return c.decisions
	}
	for {
		first, ok := <-r.pending
		if !ok {
			return
		}
		calls = calls[:0]
		n := take(first)
	gather:
		for n < r.cfg.MaxGroup {
			select {
			case g, ok := <-r.pending:
				if !ok {
					break gather
				}
				n += take(g)
			default:
				break gather
			}
		}
		if len(calls) == 0 {
			continue
		}
		groups = groups[:0]
		for _, c := range calls {
			groups = append(groups, c.groups...)
		}
		err := r.commit(groups, n)
		r.m.queued.Sub(float64(n))
		for _, c := range calls {
			c.done <- err
		}
		clear(calls)
		clear(groups)
	}
}

func (r *Recorder) commit(groups []Group, decisions int) error {
	ctx, cancel := context.WithTimeout(context.Background(), r.cfg.WriteTimeout)
	defer cancel()
	start := time.Now()
	err := r.store.Append(ctx, groups)
	r.m.writeDuration.Observe(time.Since(start).Seconds())
	r.m.groupSize.Observe(float64(decisions))
	if err != nil {
		r.m.failures.Inc()
		r.m.failedRecords.Add(float64(decisions))
		r.setUnhealthy(err)
		return &UnavailableError{err}
	}
	r.m.written.Add(float64(decisions))
	r.setHealthy()
	r.lastCommit.Store(time.Now().UnixNano())
	queued := 0
	for _, g := range groups {
		if g.Decisions > inlineIndex {
			queued += g.Decisions
		}
	}
	if queued > 0 {
		r.lastBatch.Store(time.Now().UnixNano())
		if r.backlog.Load() >= 0 {
			r.m.indexBacklog.Set(float64(r.backlog.Add(int64(queued))))
		}
	}
	return nil
}

// indexChunk is about how many decisions one indexing transaction takes
// while no commit is being made: large, so entries for the same index pages
// are written together. While commits are being made (single predictions
// keep coming after a batch run) a chunk is sized from the last ones' rate
// to take about indexPause, so a prediction waits at most that behind it.
const (
	indexChunk = 16384
	indexPause = 4 * time.Millisecond
)

// Batches are indexed once they pause (no batch committed for indexQuiet),
// so a batch run keeps the writer to itself, or when the backlog reaches
// indexBacklogMax, which bounds what a lookup scans.
const (
	indexQuiet      = time.Second
	indexBacklogMax = 4 << 20
)

// indexDue reports whether the indexer should take a chunk now. The
// backlog is an estimate (a commit adds to it while the store counts), so
// the store is asked anyway every 10 s while batches pause.
func (r *Recorder) indexDue() bool {
	n := r.backlog.Load()
	quiet := time.Since(time.Unix(0, r.lastBatch.Load())) >= indexQuiet
	return n < 0 || (n > 0 && (quiet || n >= indexBacklogMax)) || (quiet && time.Since(r.lastIndex) > 10*time.Second)
}

// indexLoop adds queued groups to the application index, checking every
// IndexEvery (a backlog left by a previous run or another replica is taken
// up too). While it works it holds the writer at most half the time, a
// quarter while commits are being made, so requests keep the writer.
func (r *Recorder) indexLoop() {
	defer r.wg.Done()
	busyChunk := indexChunk / 16
	every(r.cfg.IndexEvery, r.closing, func() {
		for r.indexDue() {
			start := time.Now()
			ctx, cancel := context.WithTimeout(context.Background(), r.cfg.WriteTimeout)
			busy := start.Sub(time.Unix(0, r.lastCommit.Load())) < 100*time.Millisecond
			chunk := indexChunk
			if busy {
				chunk = busyChunk
			}
			n, backlog, err := r.store.Index(ctx, chunk)
			cancel()
			r.lastIndex = time.Now()
			if took := r.lastIndex.Sub(start); busy && n > 0 && took > 0 {
				busyChunk = min(max(int(float64(n)*float64(indexPause)/float64(took)), 512), indexChunk)
			}
			if err != nil {
				r.m.indexFailures.Inc()
				break // the next tick tries again; lookups still scan the queue
			}
			r.m.indexed.Add(float64(n))
			r.backlog.Store(int64(backlog))
			r.m.indexBacklog.Set(float64(backlog))
			if n == 0 {
				break
			}
			pause := time.Since(start) // half the time while the writer is idle,
			if busy {                  // a quarter while commits are being made
				pause *= 3
			}
			select {
			case <-r.closing:
				return
			case <-time.After(pause):
			}
		}
	})
}

// waitBound is how long a Record waits for a writer to take its call, and
// then for the commit, and how long the probe waits for the store: twice
// WriteTimeout, a commit in progress and the next.
func (r *Recorder) waitBound() time.Duration { return 2 * r.cfg.WriteTimeout }

// stalled fails a Record (or a probe) whose commit did not answer in time.
func (r *Recorder) stalled() error {
	err := fmt.Errorf("%w within %s", ErrStalled, r.waitBound())
	r.setUnhealthy(err)
	return &UnavailableError{err}
}

// backlogged fails a Record no writer took in time.
func (r *Recorder) backlogged() error {
	return &UnavailableError{fmt.Errorf("%w within %s", ErrBacklogged, r.waitBound())}
}

func (r *Recorder) setUnhealthy(err error) {
	if r.health.Swap(&err) == nil {
		r.cfg.Log.Error("decision record unavailable: decisions are refused until it takes writes again",
			"backend", r.store.Backend(), "error", err)
	}
	r.m.up.Set(0)
}

func (r *Recorder) setHealthy() {
	r.lastGood.Store(r.cfg.Now().UnixNano())
	if old := r.health.Swap(nil); old != nil {
		r.cfg.Log.Info("decision record available again", "backend", r.store.Backend())
	}
	r.m.up.Set(1)
}

// Health returns nil while the store takes writes, else why it does not
// (for /ready).
func (r *Recorder) Health() error {
	if p := r.health.Load(); p != nil {
		return &UnavailableError{*p}
	}
	return nil
}

// probeLoop checks the store with a write that is not a record: every
// ProbeEvery while unhealthy (so the record comes back without waiting for
// traffic /ready turns away), and after 5×ProbeEvery without a successful
// write while healthy (so an idle server notices a store that went away).
func (r *Recorder) probeLoop() {
	defer r.wg.Done()
	var probing atomic.Bool
	every(r.cfg.ProbeEvery, r.closing, func() {
		idle := r.cfg.Now().Sub(time.Unix(0, r.lastGood.Load()))
		if r.health.Load() == nil && idle < 5*r.cfg.ProbeEvery {
			return
		}
		// A probe that hangs (a stalled disk holds the journal's lock, which
		// no context reaches) still turns the record unavailable; the next
		// starts once it has returned.
		if !probing.CompareAndSwap(false, true) {
			return
		}
		result := make(chan error, 1)
		go func() {
			defer probing.Store(false)
			ctx, cancel := context.WithTimeout(context.Background(), r.cfg.WriteTimeout)
			defer cancel()
			result <- r.store.Probe(ctx)
		}()
		wait := time.NewTimer(r.waitBound())
		defer wait.Stop()
		select {
		case err := <-result:
			if err != nil {
				r.setUnhealthy(err)
			} else {
				r.setHealthy()
			}
		case <-wait.C:
			r.stalled()
		}
	})
}

// every calls fn every d until stop is closed (the Recorder's and the
// SQLite store's background loops).
func every(d time.Duration, stop <-chan struct{}, fn func()) {
	t := time.NewTicker(d)
	defer t.Stop()
	for {
		select {
		case <-stop:
			return
		case <-t.C:
			fn()
		}
	}
}

func (r *Recorder) purgeLoop() {
	defer r.wg.Done()
	for {
		r.Purge(context.Background())
		select {
		case <-r.closing:
			return
		case <-time.After(r.cfg.PurgeEvery):
		}
	}
}

// Purge deletes the decisions past retention (never those under legal hold)
// now, and counts them. It runs by itself every PurgeEvery.
func (r *Recorder) Purge(ctx context.Context) (int64, error) {
	cutoff := r.cfg.Retention.Cutoff(r.cfg.Now())
	n, err := r.store.Purge(ctx, cutoff)
	if err != nil {
		r.m.purgeRuns.WithLabelValues("failure").Inc()
		r.cfg.Log.Warn("decision record purge failed", "error", err)
		return n, err
	}
	r.m.purgeRuns.WithLabelValues("success").Inc()
	r.m.purged.Add(float64(n))
	if n > 0 {
		r.cfg.Log.Info("decision record purge", "deleted", n, "before", cutoff.UTC().Format(time.RFC3339),
			"retention", r.cfg.Retention.String())
	}
	return n, nil
}

// Store returns the backend, for the read routes.
func (r *Recorder) Store() Store { return r.store }

// Close stops taking decisions, commits what is queued and closes the store.
func (r *Recorder) Close() error {
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil
	}
	r.closed = true
	close(r.pending) // no Record can be sending: they hold mu for reading
	close(r.closing)
	r.mu.Unlock()
	r.wg.Wait()
	return r.store.Close()
}

// IsUnavailable reports whether err means the record could not be written.
func IsUnavailable(err error) bool { return errors.Is(err, ErrUnavailable) }
