package drift

import (
	"math"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"mlservice/schemas"
)

// DefaultWindow is how far back the live distribution reaches when the server
// is not told otherwise (SERVE_DRIFT_WINDOW).
const DefaultWindow = time.Hour

// slots is how many pieces the window is cut into: the window slides one
// piece at a time, so the oldest 1/slots of it leaves at once.
const slots = 12

// monitor counts one version's decisions into its baseline's bins over the
// sliding window. Safe for concurrent use.
type monitor struct {
	model, version string
	features       []schemas.Feature // the baseline's fields the contract knows, in a fixed order
	names          []string          // their JSON names, the metric's feature label
	dists          []Distribution    // their baselines, parallel to features
	score          Distribution
	slotLen        time.Duration

	mu sync.Mutex
	// ring[i] holds the counts of the slot whose number (time / slotLen) is
	// epoch[i]; a slot is cleared when time comes round to it again.
	ring  [slots]slotCounts
	epoch [slots]int64
}

type slotCounts struct {
	n      uint64
	fields [][]uint64 // per feature, per bin
	score  []uint64
}

func newMonitor(model, version string, b *Baseline, window time.Duration) *monitor {
	m := &monitor{model: model, version: version, score: b.Score, slotLen: window / slots}
	if m.slotLen <= 0 {
		m.slotLen = time.Nanosecond
	}
	for _, f := range schemas.Features {
		if d, ok := b.Features[f.String()]; ok {
			m.features = append(m.features, f)
			m.names = append(m.names, f.String())
			m.dists = append(m.dists, d)
		}
	}
	for i := range m.ring {
		m.ring[i].fields = make([][]uint64, len(m.dists))
		for j, d := range m.dists {
			m.ring[i].fields[j] = make([]uint64, len(d.Shares))
		}
		m.ring[i].score = make([]uint64, len(b.Score.Shares))
		m.epoch[i] = math.MinInt64
	}
	return m
}

// observe counts decisions 0..n-1 that at(i) says are this version's (ok),
// with their application and probability, into the slot of now: one lock
// for them all.
func (m *monitor) observe(now time.Time, n int, at Decisions) {
	e := now.UnixNano() / int64(m.slotLen)
	i := int(e % slots)
	m.mu.Lock()
	defer m.mu.Unlock()
	s := &m.ring[i]
	if m.epoch[i] != e {
		m.epoch[i] = e
		s.clear()
	}
	for k := range n {
		a, prob, ok := at(k)
		if !ok {
			continue
		}
		s.n++
		for j, f := range m.features {
			s.fields[j][m.dists[j].Bin(a.Value(f))]++
		}
		s.score[m.score.Bin(float64(prob))]++
	}
}

func (s *slotCounts) clear() {
	s.n = 0
	for _, c := range s.fields {
		clear(c)
	}
	clear(s.score)
}

// snapshot sums the slots still inside the window at now.
func (m *monitor) snapshot(now time.Time) (n uint64, fields [][]uint64, score []uint64) {
	e := now.UnixNano() / int64(m.slotLen)
	fields = make([][]uint64, len(m.dists))
	for j, d := range m.dists {
		fields[j] = make([]uint64, len(d.Shares))
	}
	score = make([]uint64, len(m.score.Shares))
	m.mu.Lock()
	defer m.mu.Unlock()
	for i := range m.ring {
		if m.epoch[i] <= e-slots || m.epoch[i] > e {
			continue
		}
		s := &m.ring[i]
		n += s.n
		for j := range fields {
			for k, c := range s.fields[j] {
				fields[j][k] += c
			}
		}
		for k, c := range s.score {
			score[k] += c
		}
	}
	return n, fields, score
}

type key struct{ model, version string }

// Tracker keeps a monitor per live model version and exports, on every
// scrape, model_feature_psi{model,version,feature}, model_score_psi and
// model_drift_window_decisions. Counting a decision is a few bin look-ups
// under a per-version lock; PSI is computed only when Prometheus scrapes.
// Safe for concurrent use.
type Tracker struct {
	window time.Duration
	now    func() time.Time

	mu       sync.Mutex  // guards users
	users    map[key]int // how many open versions use each monitor
	monitors sync.Map    // key → *monitor; read without the lock per decision

	featurePSI, scorePSI, decisions *prometheus.Desc
}

// NewTracker creates a Tracker over the given window and registers its
// metrics with reg. now is the clock (nil: time.Now).
func NewTracker(reg prometheus.Registerer, window time.Duration, now func() time.Time) *Tracker {
	if window <= 0 {
		window = DefaultWindow
	}
	if now == nil {
		now = time.Now
	}
	labels := []string{"model", "version"}
	t := &Tracker{
		window: window,
		now:    now,
		users:  map[key]int{},
		featurePSI: prometheus.NewDesc("model_feature_psi",
			"Population stability index of an input field's distribution over the drift window against the version's training distribution (> 0.25: significant shift).",
			append(labels, "feature"), nil),
		scorePSI: prometheus.NewDesc("model_score_psi",
			"Population stability index of the approval probabilities over the drift window against the training split's.",
			labels, nil),
		decisions: prometheus.NewDesc("model_drift_window_decisions",
			"Decisions counted in the drift window, so alerts can ask for enough of them.",
			labels, nil),
	}
	reg.MustRegister(t)
	return t
}

// Track starts watching a version against its baseline. A version loaded
// again while its earlier copy is still open (a promote back to it) shares
// the one monitor and its counts; each Track needs its Forget.
func (t *Tracker) Track(model, version string, b *Baseline) {
	k := key{model, version}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.users[k] == 0 {
		t.monitors.Store(k, newMonitor(model, version, b, t.window))
	}
	t.users[k]++
}

// Forget stops watching a version once its last copy has closed; its
// series disappear.
func (t *Tracker) Forget(model, version string) {
	k := key{model, version}
	t.mu.Lock()
	defer t.mu.Unlock()
	switch t.users[k] {
	case 0:
		return
	case 1:
		delete(t.users, k)
		t.monitors.Delete(k)
	default:
		t.users[k]--
	}
}

// Observe counts one decision of a version; versions not tracked (no
// baseline) are ignored.
func (t *Tracker) Observe(model, version string, a *schemas.Application, prob float32) {
	t.ObserveAll(model, version, 1, func(int) (*schemas.Application, float32, bool) { return a, prob, true })
}

// Decisions gives decision i's application and probability, and whether it
// is the version's being counted.
type Decisions func(i int) (a *schemas.Application, prob float32, ok bool)

// ObserveAll counts the decisions 0..n-1 of one version that at says are
// its, at one clock reading and under one lock.
func (t *Tracker) ObserveAll(model, version string, n int, at Decisions) {
	if n == 0 {
		return
	}
	if m, ok := t.monitors.Load(key{model, version}); ok {
		m.(*monitor).observe(t.now(), n, at)
	}
}

// Describe implements prometheus.Collector.
func (t *Tracker) Describe(ch chan<- *prometheus.Desc) {
	ch <- t.featurePSI
	ch <- t.scorePSI
	ch <- t.decisions
}

// Collect implements prometheus.Collector. A version with no decisions in
// the window reports its count (0) and no PSI: there is nothing to compare.
func (t *Tracker) Collect(ch chan<- prometheus.Metric) {
	now := t.now()
	t.monitors.Range(func(_, v any) bool {
		m := v.(*monitor)
		n, fields, score := m.snapshot(now)
		ch <- prometheus.MustNewConstMetric(t.decisions, prometheus.GaugeValue, float64(n), m.model, m.version)
		if n == 0 {
			return true
		}
		for j, counts := range fields {
			ch <- prometheus.MustNewConstMetric(t.featurePSI, prometheus.GaugeValue,
				PSI(counts, m.dists[j].Shares), m.model, m.version, m.names[j])
		}
		ch <- prometheus.MustNewConstMetric(t.scorePSI, prometheus.GaugeValue, PSI(score, m.score.Shares), m.model, m.version)
		return true
	})
}
