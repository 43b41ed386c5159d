// Package decision is the one decision path. Every decision the server makes
// — a POST /v1/predict, each item of a batch, an Open Inference Protocol
// request, a shadow copy and each case of a version's serving check — goes
// through one method, Path.decide: pick and acquire the version, score
// (timed, in one model run per version), check the score, derive the reasons
// of a decline, record, observe, release. The decision record, the reasons
// and the drift and outcome observers attach here, once.
package decision

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"

	"mlservice/internal/jsonw"
	"mlservice/schemas"
	"mlservice/serve/models"
	"mlservice/serve/reasons"
	"mlservice/serve/routing"
)

// Reason is one reason for a decline, in the applicant's words.
type Reason struct{ Code, Feature, Text string }

// Decision is one decision, served or shadow, as it is recorded.
type Decision struct {
	ID                             string    // decision id, generated, time-ordered (uuid v7)
	RequestID                      string    // the HTTP request's id
	ApplicationID                  string    // the client's, or generated when it sent none
	Time                           time.Time // UTC
	Variant                        string    // "champion" | "challenger" | "shadow" (routing.Variant)
	Served                         bool      // false for shadow decisions
	Model, Version, SHA256, Source string
	// Inputs is the application's JSON object as received (an owned copy).
	Inputs []byte
	// Application holds the decoded values the model was given (drift
	// monitoring counts them).
	Application schemas.Application
	Probability float32
	Approve     bool
	Threshold   float32
	// Characteristics names the Contributions: the version's, shared by
	// all its decisions (read only).
	Characteristics []string
	// Contributions are each characteristic's log-odds contribution, from
	// the same model run, aligned with Characteristics; nil when the
	// version has none. A call's decisions share one backing array.
	Contributions []float32
	// Reasons explain a decline of a version with a reasons table, most
	// important first.
	Reasons []Reason
	// Latency is the model run's duration (one run may score a whole batch).
	Latency time.Duration
}

// ContributionsByName returns the contributions keyed by characteristic
// (nil when there are none), for readers off the hot path.
func (d *Decision) ContributionsByName() map[string]float32 {
	if d.Contributions == nil {
		return nil
	}
	m := make(map[string]float32, len(d.Contributions))
	for i, name := range d.Characteristics {
		m[name] = d.Contributions[i]
	}
	return m
}

// AppendContributionsJSON appends d's contributions as the JSON object the
// record carries, keys sorted: {"credit_score":…,"income":…}.
func (d *Decision) AppendContributionsJSON(b []byte) []byte {
	var buf [8]int
	order := buf[:0]
	for i := range d.Contributions {
		k := len(order)
		order = append(order, i)
		for ; k > 0 && d.Characteristics[order[k-1]] > d.Characteristics[i]; k-- {
			order[k] = order[k-1]
		}
		order[k] = i
	}
	b = append(b, '{')
	for n, i := range order {
		if n > 0 {
			b = append(b, ',')
		}
		b = jsonw.AppendString(b, d.Characteristics[i])
		b = append(b, ':')
		b = jsonw.AppendFloat32(b, d.Contributions[i])
	}
	return append(b, '}')
}

// Recorder writes decisions durably before any answer is sent; an error fails
// the request (503 code "record_unavailable"). It must not keep ds once it
// returns: callers reuse it (Buffers).
type Recorder interface {
	Record(ctx context.Context, ds []Decision) error
}

// Observer sees every decision after it is recorded (metrics, drift); must
// not block, nor keep ds once it returns.
type Observer interface {
	Observe(ds []Decision)
}

// Mirror takes a copy of each served decision for the live table's shadow
// (serve/shadow); Offer must not block.
type Mirror interface {
	Offer(t *routing.Table, app *schemas.Application, served *Decision)
}

// NopRecorder keeps nothing: the Recorder until the decision record is configured.
type NopRecorder struct{}

// Record implements Recorder.
func (NopRecorder) Record(context.Context, []Decision) error { return nil }

// Input is one application to decide.
type Input struct {
	// Application is the decoded, validated application. Decide sets its
	// ApplicationID when the client sent none.
	Application schemas.Application
	// JSON is the application's JSON object as the client sent it; Decide
	// copies it into Decision.Inputs, so it may be a request buffer.
	JSON []byte
}

// Buffers are one call's inputs, decisions and errors, pooled: a 1,000-row
// call's decisions alone are ~350 KB the collector would otherwise scan and
// clear per request. Take them with GetBuffers, fill Ins, decide into Out and
// Errs, answer, then Put them: nothing of them may be used after Put (a
// decision's strings, inputs and reasons may: they are not pooled).
type Buffers struct {
	Ins  []Input
	Out  []Decision
	Errs []error
}

var buffersPool = sync.Pool{New: func() any { return new(Buffers) }}

// GetBuffers returns Buffers of n inputs, decisions and errors, zeroed.
func GetBuffers(n int) *Buffers {
	b := buffersPool.Get().(*Buffers)
	b.Ins, b.Out, b.Errs = grow(b.Ins, n), grow(b.Out, n), grow(b.Errs, n)
	return b
}

// Put clears b, so the pool keeps no request's data alive, and gives it back.
func (b *Buffers) Put() {
	clear(b.Ins)
	clear(b.Out)
	clear(b.Errs)
	buffersPool.Put(b)
}

// The errors of the path. A per-item error (ErrBadScore, ErrNoReasons) is
// one input's, in errs; the others fail the whole call.
var (
	// ErrNotReady means no routing table is live yet.
	ErrNotReady = errors.New("decision: no champion model is loaded")
	// ErrUnrecorded means the Recorder failed: no record, no decision.
	ErrUnrecorded = errors.New("decision: the decision record is unavailable")
	// ErrBadScore means the model's output for this application (its
	// probability or a contribution) is not a finite number: it is refused,
	// never written as NaN.
	ErrBadScore = errors.New("decision: the model gave no finite score for this application")
	// ErrNoReasons means the model declined the application but its
	// reasons table gives no reason (every characteristic in its best
	// band): a decline must carry its reasons, so there is none.
	ErrNoReasons = errors.New("decision: the model declined this application with no reason it can give")
	// errRetired means a picked version was retired before it was acquired:
	// read the routing table again.
	errRetired = errors.New("decision: version retired")
)

// UnrecordedAnswer is what a client is told of ErrUnrecorded, on /v1 and
// /v2 alike.
const UnrecordedAnswer = "the decision could not be recorded, so none is given; retry later"

// Config wires a Path.
type Config struct {
	Router *routing.Router
	// Recorder writes every decision before the answer (default NopRecorder).
	Recorder Recorder
	// Observers see every recorded decision.
	Observers []Observer
	// Mirror, when set, receives the served decisions for the shadow.
	Mirror Mirror
	// NewIDs fills ids with new decision ids, in order, for decisions made
	// at the given time (default NewIDs).
	NewIDs func(ids []string, at time.Time)
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Path is the decision path. It is safe for concurrent use.
type Path struct {
	cfg Config
}

// New makes a Path.
func New(cfg Config) *Path {
	if cfg.Recorder == nil {
		cfg.Recorder = NopRecorder{}
	}
	if cfg.NewIDs == nil {
		cfg.NewIDs = NewIDs
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Path{cfg: cfg}
}

// uuid's random pool reads the system's randomness 256 bytes at a time
// instead of once per id. Ids are references, not secrets (nothing in this
// server draws a secret from uuid), so randomness kept on the heap is
// acceptable.
func init() { uuid.EnableRandPool() }

// NewIDs fills ids with UUIDs (version 7) that carry at, the time their
// decisions are recorded at: its millisecond, then its fraction of a
// millisecond in 1/4096ths (RFC 9562 §6.2, method 3), so a decision is
// found by its id (IDTime) and ids sort by time. The rest is random, counted
// up by one per id (method 2, the counter's top bit cleared so it cannot
// roll over): a call's ids sort in order, and two calls in one 244 ns step
// share none unless 61 random bits meet. The time is the caller's, not
// uuid.NewV7's: its ids never go back, so after the clock is stepped back
// they run ahead of the decisions' times until the clock catches up, and a
// lookup by the id's time misses. All the strings share one allocation.
func NewIDs(ids []string, at time.Time) {
	if len(ids) == 0 {
		return
	}
	random, err := uuid.NewRandom()
	if err != nil { // the system's random source failed; v4 says the same thing
		for i := range ids {
			ids[i] = uuid.NewString()
		}
		return
	}
	fraction := uint64(at.Nanosecond()%1e6) * 4096 / 1e6
	hi := uint64(at.UnixMilli())<<16 | 0x7000 | fraction
	lo := binary.BigEndian.Uint64(random[8:])&^(3<<62|1<<61) | 1<<63 // variant 10, counter below
	var sb strings.Builder
	sb.Grow(len(ids) * idLen)
	for range ids {
		appendUUID(&sb, hi, lo)
		lo++
	}
	all := sb.String()
	for i := range ids {
		ids[i] = all[i*idLen : (i+1)*idLen]
	}
}

// idLen is the length of a UUID's text form.
const idLen = 36

// IDTime reads a decision id as NewIDs makes it: a UUID version 7 in its
// 36-character text form, any case. It returns the id as the record holds
// it (lower case) and the millisecond it carries, in which the decision's
// recorded time falls, so a decision can be found by its id without an
// index of ids.
func IDTime(id string) (canonical string, at time.Time, ok bool) {
	u, err := uuid.Parse(id)
	if err != nil || len(id) != idLen || u.Version() != 7 || u.Variant() != uuid.RFC4122 {
		return "", time.Time{}, false
	}
	return u.String(), time.UnixMilli(int64(binary.BigEndian.Uint64(u[:8]) >> 16)).UTC(), true
}

// appendUUID writes a UUID's canonical text form, xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx.
func appendUUID(sb *strings.Builder, hi, lo uint64) {
	const hex = "0123456789abcdef"
	var b [idLen]byte
	put := func(at int, v uint64, digits int) {
		for i := digits - 1; i >= 0; i-- {
			b[at+i] = hex[v&0xf]
			v >>= 4
		}
	}
	put(0, hi>>32, 8)
	b[8] = '-'
	put(9, hi>>16, 4)
	b[13] = '-'
	put(14, hi, 4)
	b[18] = '-'
	put(19, lo>>48, 4)
	b[23] = '-'
	put(24, lo, 12)
	sb.Write(b[:])
}

// assignIDs gives every decision its id, and an application the client sent
// without an id its decision's id: one id per row, and the record can still
// be read by application id. It reads the clock once and returns that time:
// the decisions' (call.now) as well as their ids'.
func (p *Path) assignIDs(ins []Input, out []Decision) time.Time {
	now := p.cfg.Now().UTC()
	sc := scratchPool.Get().(*scratch)
	defer scratchPool.Put(sc)
	ids := grow(sc.ids, len(out))
	sc.ids = ids
	defer clear(ids)
	p.cfg.NewIDs(ids, now)
	for i := range out {
		out[i].ID = ids[i]
		if ins[i].Application.ApplicationID == "" {
			ins[i].Application.ApplicationID = ids[i]
		}
	}
	return now
}

// Decide decides ins with the live routing table: each application goes to
// its variant (by application id), each variant's share is scored in one
// model run. out[i] is the decision on ins[i], or errs[i] says why there is
// none (ErrBadScore, ErrNoReasons). The returned error fails the whole call:
// ErrNotReady, ErrUnrecorded, or a model run that failed. out and errs have
// len(ins).
func (p *Path) Decide(ctx context.Context, requestID string, ins []Input, out []Decision, errs []error) error {
	return p.DecideWith(ctx, requestID, Options{}, ins, out, errs)
}

// Options change how DecideWith picks the version.
type Options struct {
	// Version pins the live champion or challenger for every input:
	// ErrUnknownVersion when neither has it, ErrShadowOnly when it is live
	// only as the shadow (whose decisions are never served).
	Version string
	// Together sends every input to one variant, picked by RouteKey as an
	// application id is ("" picks at random), and decides them all or none:
	// the Open Inference Protocol answers a request with one model version.
	Together bool
	RouteKey string
	// Fits, when set, says whether a version can decide these inputs (the
	// caller parsed them for one version; another may read other fields).
	// A routed pick that does not fit falls back to the champion; when the
	// champion does not fit either, or a pinned version does not, the call
	// fails with ErrNoVersionFits.
	Fits func(*models.Version) bool
}

var (
	// ErrUnknownVersion means a pinned version is not live.
	ErrUnknownVersion = errors.New("decision: the version is not live")
	// ErrShadowOnly means a pinned version is live only as the shadow.
	ErrShadowOnly = errors.New("decision: the version is live only as the shadow; its decisions are not served")
	// ErrNoVersionFits means the live versions changed since the inputs
	// were read, and none that may answer reads them: the caller retries.
	ErrNoVersionFits = errors.New("decision: no live version reads these inputs")
)

// DecideWith is Decide with a pinned version or one variant for all inputs.
func (p *Path) DecideWith(ctx context.Context, requestID string, opt Options, ins []Input, out []Decision, errs []error) error {
	if len(out) != len(ins) || len(errs) != len(ins) {
		return fmt.Errorf("decision: %d inputs, %d decisions, %d errors", len(ins), len(out), len(errs))
	}
	now := p.assignIDs(ins, out)
	fits := func(r *routing.Route) bool { return opt.Fits == nil || opt.Fits(r.Version) }
	for {
		t := p.cfg.Router.Current()
		if t == nil {
			return ErrNotReady
		}
		c := call{requestID: requestID, now: now, ins: ins, out: out, errs: errs, pick: pickByID, together: opt.Together}
		switch {
		case opt.Version != "":
			var r *routing.Route
			for _, candidate := range []*routing.Route{t.Champion, t.Challenger} {
				if candidate != nil && candidate.Version.Number == opt.Version {
					r = candidate
				}
			}
			switch {
			case r == nil && t.Shadow != nil && t.Shadow.Version.Number == opt.Version:
				return ErrShadowOnly
			case r == nil:
				return ErrUnknownVersion
			case !fits(r):
				return ErrNoVersionFits
			}
			c.pick, c.pinned = func(*routing.Table, *schemas.Application) *routing.Route { return r }, true
		case opt.Together:
			r := t.Pick(opt.RouteKey)
			if !fits(r) {
				r = t.Champion
			}
			if !fits(r) {
				return ErrNoVersionFits
			}
			c.pick = func(*routing.Table, *schemas.Application) *routing.Route { return r }
		}
		err := p.decide(ctx, t, c)
		if !errors.Is(err, errRetired) {
			return err
		}
		// A swap retired a picked version between the load and the
		// acquire: a newer table is already published.
	}
}

// DecideOne is Decide for one application; a per-item error is returned.
func (p *Path) DecideOne(ctx context.Context, requestID string, in *Input) (Decision, error) {
	var (
		out  [1]Decision
		errs [1]error
	)
	ins := [1]Input{*in}
	err := p.Decide(ctx, requestID, ins[:], out[:], errs[:])
	in.Application.ApplicationID = ins[0].Application.ApplicationID
	if err != nil {
		return Decision{}, err
	}
	return out[0], errs[0]
}

// Shadow decides copies of served decisions with t's shadow variant
// (serve/shadow's worker calls it). apps[i] is served[i]'s application. A
// shadow version retired since the copies were queued, a bad score or a
// failed record is counted on the shadow's metrics and returned.
func (p *Path) Shadow(ctx context.Context, t *routing.Table, apps []schemas.Application, served []Decision) error {
	r := t.Shadow
	if r == nil {
		return nil
	}
	ins := make([]Input, len(apps))
	for i := range apps {
		ins[i] = Input{Application: apps[i], JSON: served[i].Inputs}
	}
	out, errs := make([]Decision, len(ins)), make([]error, len(ins))
	now := p.assignIDs(ins, out)
	err := p.decide(ctx, t, call{now: now, ins: ins, out: out, errs: errs, served: served,
		pick: func(*routing.Table, *schemas.Application) *routing.Route { return r }})
	failed := 0
	for _, e := range errs {
		if e != nil {
			failed++
		}
	}
	switch {
	case err != nil:
		failed = len(ins)
	case failed > 0:
		err = ErrBadScore
	}
	if r.Metrics != nil {
		for range failed {
			r.Metrics.ObserveShadowError()
		}
	}
	return err
}

// call is one use of the path: the inputs, where their decisions go, and how
// each input's route is picked.
type call struct {
	requestID string
	// now is the decisions' time, and their ids' (assignIDs).
	now  time.Time
	ins  []Input
	out  []Decision
	errs []error
	// served, for a shadow call, are the decisions the copies were made of.
	served []Decision
	// pinned: the client chose the version; its answers are not mirrored.
	pinned bool
	// together: one input without a finite score fails the whole call,
	// before anything is recorded.
	together bool
	pick     func(t *routing.Table, a *schemas.Application) *routing.Route
}

func pickByID(t *routing.Table, a *schemas.Application) *routing.Route {
	return t.Pick(a.ApplicationID)
}

// scratch is one call's working buffers, pooled so a single decision
// allocates none of them.
type scratch struct {
	x, probs []float32
	approve  []bool
	member   []uint8  // the route of each input
	order    []int    // input indexes, grouped by route
	ids      []string // the call's new ids
	// The reasons of the declines being derived: ranked, their texts in
	// one buffer (text[ends[k-1]:ends[k]] is reason k's), and which
	// reasons are each decline's.
	ranked   []reasons.Ranked
	reasons  []Reason
	text     []byte
	ends     []int
	declines []decline
}

// decline is one declined decision's share of scratch.reasons.
type decline struct{ out, from, to int }

var scratchPool = sync.Pool{New: func() any { return new(scratch) }}

func grow[T any](s []T, n int) []T {
	if cap(s) < n {
		return make([]T, n)
	}
	return s[:n]
}

// decide is the one decision path: acquire → score (timed) → release →
// check → reasons → record → observe → offer to the shadow.
func (p *Path) decide(ctx context.Context, t *routing.Table, c call) error {
	n := len(c.ins)
	if n == 0 {
		return nil
	}
	sc := scratchPool.Get().(*scratch)
	defer scratchPool.Put(sc)

	// Pick each input's route; a table has at most three.
	routes := [3]*routing.Route{t.Champion, t.Challenger, t.Shadow}
	var counts [3]int
	sc.member = grow(sc.member, n)
	for i := range c.ins {
		r := c.pick(t, &c.ins[i].Application)
		k := 0
		for k < 2 && routes[k] != r {
			k++
		}
		if routes[k] != r {
			return fmt.Errorf("decision: picked a route that is not in the table")
		}
		sc.member[i] = uint8(k)
		counts[k]++
	}
	// Acquire every version the call uses; a retired one sends the caller
	// back to the current table.
	var held [3]bool
	release := func() {
		for k, h := range held {
			if h {
				routes[k].Version.Release()
				held[k] = false
			}
		}
	}
	defer release()
	for k, cnt := range counts {
		if cnt == 0 {
			continue
		}
		if !routes[k].Version.Acquire() {
			return errRetired
		}
		held[k] = true
	}

	// Group the inputs by route (a counting sort), then score each group
	// in one model run.
	var start [4]int
	for k := range 3 {
		start[k+1] = start[k] + counts[k]
	}
	sc.order = grow(sc.order, n)
	next := start
	for i, k := range sc.member {
		sc.order[next[k]] = i
		next[k]++
	}
	ownInputs(c.ins, c.out)
	var runs [3]time.Duration
	for k, r := range routes {
		if counts[k] == 0 {
			continue
		}
		idx := sc.order[start[k]:start[k+1]]
		elapsed, err := p.score(sc, r, c, idx)
		if err != nil {
			return err
		}
		runs[k] = elapsed
	}
	release()

	// Only decided inputs are recorded and observed; a call decided
	// together is decided whole or not at all.
	decided := c.out
	if c.together {
		for i, e := range c.errs {
			if e != nil {
				return fmt.Errorf("%w: input %d", e, i)
			}
		}
	}
	if bad := countErrs(c.errs); bad > 0 {
		decided = make([]Decision, 0, n-bad)
		for i := range c.out {
			if c.errs[i] == nil {
				decided = append(decided, c.out[i])
			}
		}
	}
	if len(decided) > 0 {
		if err := p.cfg.Recorder.Record(ctx, decided); err != nil {
			return fmt.Errorf("%w: %w", ErrUnrecorded, err)
		}
	}
	for k, r := range routes {
		if counts[k] == 0 || r.Metrics == nil {
			continue
		}
		r.Metrics.ObserveRun(runs[k])
		for _, i := range sc.order[start[k]:start[k+1]] {
			if c.errs[i] != nil {
				continue
			}
			d := &c.out[i]
			if c.served != nil { // a shadow's metric is its agreement
				r.Metrics.ObserveShadow(d.Approve == c.served[i].Approve)
				continue
			}
			r.Metrics.ObserveDecision(d.Approve, d.Probability)
		}
	}
	for _, o := range p.cfg.Observers {
		o.Observe(decided)
	}
	if p.cfg.Mirror != nil && t.Shadow != nil && c.served == nil && !c.pinned {
		for i := range c.out {
			if c.errs[i] == nil {
				p.cfg.Mirror.Offer(t, &c.ins[i].Application, &c.out[i])
			}
		}
	}
	return nil
}

// score runs route r's share idx of the call in one model run and fills
// their decisions (or per-item errors). The decisions' ids are set.
func (p *Path) score(sc *scratch, r *routing.Route, c call, idx []int) (time.Duration, error) {
	v := r.Version
	rows, width, k := len(idx), len(v.Features), len(v.Characteristics)
	sc.x = grow(sc.x, rows*width)
	sc.probs = grow(sc.probs, rows)
	sc.approve = grow(sc.approve, rows)
	var contrib []float32 // the decisions keep it: not scratch
	if k > 0 {
		contrib = make([]float32, rows*k)
	}
	for j, i := range idx {
		v.FillRow(&c.ins[i].Application, sc.x[j*width:(j+1)*width])
	}
	started := time.Now()
	err := v.Score(sc.x, sc.probs, sc.approve, contrib)
	elapsed := time.Since(started)
	if err != nil {
		return 0, fmt.Errorf("decision: scoring with %s: %w", v, err)
	}
	served := r.Variant != routing.Shadow
	for j, i := range idx {
		d := &c.out[i]
		*d = Decision{
			ID:            d.ID,
			RequestID:     c.requestID,
			ApplicationID: c.ins[i].Application.ApplicationID,
			Time:          c.now,
			Variant:       string(r.Variant),
			Served:        served,
			Model:         v.Name,
			Version:       v.Number,
			SHA256:        v.SHA256,
			Source:        v.Source,
			Inputs:        d.Inputs,
			Application:   c.ins[i].Application,
			Probability:   sc.probs[j],
			Approve:       sc.approve[j],
			Threshold:     v.Threshold,
			Latency:       elapsed,
		}
		if c.served != nil {
			d.RequestID = c.served[i].RequestID
		}
		c.errs[i] = nil
		if !isFinite(sc.probs[j]) {
			c.errs[i] = ErrBadScore
			continue
		}
		if k > 0 {
			row := contrib[j*k : (j+1)*k : (j+1)*k]
			d.Characteristics, d.Contributions = v.Characteristics, row
			for _, x := range row {
				if !isFinite(x) {
					c.errs[i] = ErrBadScore
				}
			}
			if c.errs[i] != nil {
				continue
			}
		}
		if !d.Approve && v.Reasons != nil && !sc.rank(v.Reasons, i, &c.ins[i].Application, d.Contributions) {
			c.errs[i] = ErrNoReasons
		}
	}
	sc.attachReasons(c.out)
	return elapsed, nil
}

// rank ranks the reasons of decline i (of the call's outputs) and writes
// their texts into the scratch; false when there is none.
func (sc *scratch) rank(t *reasons.Table, i int, a *schemas.Application, contributions []float32) bool {
	sc.ranked = t.Rank(sc.ranked[:0], contributions)
	if len(sc.ranked) == 0 {
		return false
	}
	from := len(sc.reasons)
	for _, r := range sc.ranked {
		sc.text = t.AppendText(sc.text, r, a)
		sc.ends = append(sc.ends, len(sc.text))
		sc.reasons = append(sc.reasons, Reason(t.Reason(r, "")))
	}
	sc.declines = append(sc.declines, decline{out: i, from: from, to: len(sc.reasons)})
	return true
}

// attachReasons gives the ranked declines their reasons: one slice and one
// string hold all of them, so a decline costs no allocation of its own.
func (sc *scratch) attachReasons(out []Decision) {
	if len(sc.declines) > 0 {
		text := string(sc.text)
		rs := slices.Clone(sc.reasons)
		start := 0
		for k, end := range sc.ends {
			rs[k].Text = text[start:end]
			start = end
		}
		for _, dl := range sc.declines {
			out[dl.out].Reasons = rs[dl.from:dl.to:dl.to]
		}
	}
	sc.reasons, sc.text, sc.ends, sc.declines = sc.reasons[:0], sc.text[:0], sc.ends[:0], sc.declines[:0]
}

// ownInputs copies every input's JSON into one buffer the decisions own.
// Input with a line break (a pretty-printed body) is compacted: the record's
// export is one decision per line.
func ownInputs(ins []Input, out []Decision) {
	total := 0
	for i := range ins {
		total += len(ins[i].JSON)
	}
	buf := make([]byte, 0, total)
	for i := range ins {
		start := len(buf)
		if j := ins[i].JSON; bytes.IndexByte(j, '\n') >= 0 || bytes.IndexByte(j, '\r') >= 0 { // IndexByte is vectorised, IndexAny is not
			compact := bytes.NewBuffer(buf)
			if json.Compact(compact, ins[i].JSON) == nil {
				buf = compact.Bytes()
			} else {
				buf = append(buf[:start], ins[i].JSON...) // not JSON: kept as it came
			}
		} else {
			buf = append(buf, ins[i].JSON...)
		}
		out[i].Inputs = nil
		if len(ins[i].JSON) > 0 {
			out[i].Inputs = buf[start:len(buf):len(buf)]
		}
	}
}

func countErrs(errs []error) int {
	n := 0
	for _, e := range errs {
		if e != nil {
			n++
		}
	}
	return n
}

func isFinite(f float32) bool {
	return !math.IsNaN(float64(f)) && !math.IsInf(float64(f), 0)
}

// AppendReasonsJSON appends rs as the JSON array the answers and the record
// both carry: [{"code","feature","text"}, …].
func AppendReasonsJSON(b []byte, rs []Reason) []byte {
	b = append(b, '[')
	for i, r := range rs {
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, `{"code":`...)
		b = jsonw.AppendString(b, r.Code)
		b = append(b, `,"feature":`...)
		b = jsonw.AppendString(b, r.Feature)
		b = append(b, `,"text":`...)
		b = jsonw.AppendString(b, r.Text)
		b = append(b, '}')
	}
	return append(b, ']')
}
