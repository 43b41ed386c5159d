// Package rollout owns model changes. One goroutine reconciles what the
// registry's aliases say with the live routing table; the poll, webhooks and
// admin actions all send it requests and wait for the answer, so two swaps
// never race. A swap is one transaction: load and verify the new version,
// publish a new routing table in one atomic store, then retire the old version
// once its in-flight requests finish. A failure leaves the old version serving.
//
// What the controller only reports (Status, Desired) is published atomically
// after every change, so reads never wait behind a load. Loads have a bounded
// deadline, and an admin action cancels a background load that is still
// running, so a stalled download never blocks ops.
package rollout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"mlservice/registry"
	"mlservice/serve/metrics"
	"mlservice/serve/models"
	"mlservice/serve/routing"
)

// Desired is the state the registry asks for: a version per variant ("" for
// none) and the traffic split.
type Desired struct {
	Champion   string          `json:"champion"`
	Challenger string          `json:"challenger,omitempty"`
	Shadow     string          `json:"shadow,omitempty"`
	Weights    routing.Weights `json:"weights"`
}

// Version returns the version asked for the variant ("" for none).
func (d Desired) Version(v registry.Variant) string { return *d.field(v) }

func (d *Desired) field(v registry.Variant) *string {
	switch v {
	case registry.Challenger:
		return &d.Challenger
	case registry.Shadow:
		return &d.Shadow
	}
	return &d.Champion
}

// Errors of the controller and its actions; serve/admin maps them to HTTP
// statuses.
var (
	// ErrNoChampion means the registry has no champion alias for the model.
	ErrNoChampion = errors.New("the registry has no champion alias for the model")
	// ErrInvalid means the request itself is wrong (422).
	ErrInvalid = errors.New("invalid request")
	// ErrUnknownVersion means the registry has no such version (422).
	ErrUnknownVersion = errors.New("unknown version")
	// ErrNoHistory means there is no previous champion to roll back to (409).
	ErrNoHistory = errors.New("no previous champion to roll back to")
	// ErrBadTraffic means the registry's traffic tag does not parse or
	// does not add up (written outside /admin): only setting the split,
	// which repairs it, may act until then (409).
	ErrBadTraffic = errors.New("the registry's traffic split is damaged")
	// ErrReadOnly means the registry cannot be written.
	ErrReadOnly = errors.New("the registry is read-only")
	// ErrPreempted means a background load was cancelled so that an admin
	// action could run; the next poll tries again.
	ErrPreempted = errors.New("load cancelled by an admin action; the next sync tries again")
	// ErrPinMismatch means a version's files are not the ones that verified
	// here before (the remembered sha256 differs).
	ErrPinMismatch = errors.New("the version's sha256 is not the one that was verified here")
)

// DesiredFrom reads the aliases and the traffic tag of a registry state.
func DesiredFrom(s registry.State) (Desired, error) {
	d := Desired{Weights: routing.ChampionOnly()}
	for _, v := range registry.Variants() {
		*d.field(v) = s.Version(v)
	}
	if d.Champion == "" {
		return d, ErrNoChampion
	}
	if raw := s.Tags[registry.TrafficTag]; raw != "" {
		var w routing.Weights
		if err := json.Unmarshal([]byte(raw), &w); err != nil {
			return d, fmt.Errorf("%w: tag %s=%q: %w", ErrBadTraffic, registry.TrafficTag, raw, err)
		}
		if err := w.Validate(); err != nil {
			return d, fmt.Errorf("%w: tag %s: %w", ErrBadTraffic, registry.TrafficTag, err)
		}
		d.Weights = w
	}
	return d, nil
}

// Status is what /ready and /admin report about the live state.
type Status struct {
	Ready bool `json:"ready"`
	// Reason says why the server is not ready, or what is degraded.
	Reason string `json:"reason,omitempty"`
	// Source says where the live champion came from ("mlflow", "cache", "artifacts").
	Source     string    `json:"source,omitempty"`
	Registry   string    `json:"registry"`
	LastSync   time.Time `json:"last_sync,omitzero"`
	LastError  string    `json:"last_error,omitempty"`
	SyncedOnce bool      `json:"synced_once"`
}

// Remembered is where the controller records what loaded and verified from
// its registry, so that a restart while the registry is down serves only
// those versions (registry/lastserved). Load also tells a restarted server
// which champion it served, so a champion moved outside /admin while it was
// down is noticed.
type Remembered interface {
	Save(model string, st registry.State) error
	Load(model string) (registry.State, error)
}

// Config wires a Controller.
type Config struct {
	Model    string
	Source   registry.Source
	Loader   *models.Loader
	Router   *routing.Router
	Metrics  *metrics.Models
	Log      *slog.Logger
	Interval time.Duration // reconciliation poll; 0 disables the poll
	// LoadTimeout bounds one version's load, download included (default 5m).
	LoadTimeout time.Duration
	// Fallbacks serve, in order, while Source cannot be reached and nothing
	// is live: the remembered state over the verified cache, and the
	// embedded artifacts only where the configuration allows them.
	Fallbacks []registry.Source
	// Writer is where admin actions write (nil: the registry is read-only).
	Writer registry.Writer
	// Remembered records the live versions after every change from Source
	// (nil: nothing is remembered).
	Remembered Remembered
	// Changes counts champion changes by origin (nil: not counted).
	Changes *Changes
	// Audit receives a line for every champion change that did not come
	// through /admin (default Log).
	Audit *slog.Logger
	// Cache, when set, is pruned after every change from Source of the
	// versions that are neither live nor among the last KeepChampions
	// champions (default 5).
	Cache         Pruner
	KeepChampions int
	// AllowWithoutReasons lets a version that cannot give reasons for a
	// decline (serve/reasons) be champion or challenger; by default such a
	// version may serve only as shadow: admin actions answer 409, and an
	// alias the registry moves to it is refused as a failed load.
	AllowWithoutReasons bool
}

// Pruner removes cached versions of a model except those kept.
type Pruner interface {
	Prune(src registry.Source, model string, keep []string) error
}

// Changes counts champion changes. Create it once per process with
// NewChanges; it is safe for concurrent use.
type Changes struct{ total *prometheus.CounterVec }

// NewChanges creates model_champion_changes_total and registers it with reg.
func NewChanges(reg prometheus.Registerer) *Changes {
	c := &Changes{total: prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "model_champion_changes_total",
		Help: "Champion alias changes this server saw in the registry, by origin: admin (through /admin on any replica) or outside (anyone else who can write to the registry).",
	}, []string{"model", "origin"})}
	reg.MustRegister(c.total)
	return c
}

func (c *Changes) inc(model, origin string) {
	if c != nil {
		c.total.WithLabelValues(model, origin).Inc()
	}
}

// Controller reconciles the registry with the routing table. Create it with
// New and start Run in its own goroutine; its other methods are safe for
// concurrent use.
type Controller struct {
	cfg      Config
	requests chan request
	triggers chan struct{}
	status   atomic.Pointer[Status]
	desired  atomic.Pointer[Desired]

	mu           sync.Mutex
	cancelReload context.CancelFunc // cancels the running background reconcile

	// Owned by the Run goroutine:
	live       map[string]*models.Version // version → the controller's reference
	failed     map[string]error           // versions that failed to load, until the registry moves on
	preempted  map[string]bool            // loads an admin action cancelled, until the next background sync
	applied    Desired                    // what the live table was built from
	champion   string                     // the champion the registry last named, "" before the first sync
	generation string                     // the registered model Source last named (registry.State.Generation)
	remembered *routing.Table             // the table last remembered
}

// loadMode says who a load is for, which decides what a cancellation means.
type loadMode int

const (
	// loadBackground: a sync nobody waits for; an admin action may cancel
	// it, and the cancelled load waits for the next background sync.
	loadBackground loadMode = iota
	// loadForAction: the version an admin action asked for.
	loadForAction
	// loadAfterAction: the sync after an admin action's write; it skips the
	// loads the action cancelled rather than stall on them again.
	loadAfterAction
)

type request struct {
	ctx  context.Context
	fn   func(ctx context.Context) error
	done chan error
}

// New creates a Controller.
func New(cfg Config) *Controller {
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.Audit == nil {
		cfg.Audit = cfg.Log
	}
	if cfg.LoadTimeout <= 0 {
		cfg.LoadTimeout = 5 * time.Minute
	}
	if cfg.KeepChampions <= 0 {
		cfg.KeepChampions = 5
	}
	c := &Controller{
		cfg:       cfg,
		requests:  make(chan request),
		triggers:  make(chan struct{}, 1),
		live:      map[string]*models.Version{},
		failed:    map[string]error{},
		preempted: map[string]bool{},
	}
	if cfg.Remembered != nil {
		if st, err := cfg.Remembered.Load(cfg.Model); err == nil {
			c.champion = st.Version(registry.Champion)
		}
	}
	c.status.Store(&Status{Reason: "starting: no champion loaded yet", Registry: cfg.Source.Describe()})
	c.desired.Store(&Desired{})
	return c
}

// Status returns the current status. It never waits.
func (c *Controller) Status() Status { return *c.status.Load() }

// Desired returns the state the live table was built from. It never waits.
func (c *Controller) Desired() Desired { return *c.desired.Load() }

// Run reconciles once, then on every poll tick and request, until ctx ends.
// On return every version the controller held has been released.
func (c *Controller) Run(ctx context.Context) {
	defer c.releaseAll()
	c.background(ctx)
	var tick <-chan time.Time
	if c.cfg.Interval > 0 {
		t := time.NewTicker(c.cfg.Interval)
		defer t.Stop()
		tick = t.C
	}
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick:
			c.background(ctx)
		case r := <-c.requests:
			r.done <- r.fn(r.ctx)
		case <-c.triggers:
			c.background(ctx)
		}
	}
}

// background is a reconciliation nobody waits for (start, poll, webhook): an
// admin action may cancel it.
func (c *Controller) background(ctx context.Context) {
	ctx, cancel := context.WithCancel(ctx)
	c.mu.Lock()
	c.cancelReload = cancel
	c.mu.Unlock()
	clear(c.preempted)
	_ = c.reconcile(ctx, loadBackground)
	c.mu.Lock()
	c.cancelReload = nil
	c.mu.Unlock()
	cancel()
}

// preempt cancels the running background reconciliation, if any.
func (c *Controller) preempt() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cancelReload != nil {
		c.cancelReload()
	}
}

// Do runs fn on the controller's goroutine and returns its error; it is how
// webhooks and admin actions change the live state without racing the poll.
func (c *Controller) Do(ctx context.Context, fn func(ctx context.Context) error) error {
	return c.do(ctx, false, fn)
}

// do is Do; with preempt it cancels any background reconciliation that runs
// while the request waits to be taken (a poll may start in between).
func (c *Controller) do(ctx context.Context, preempt bool, fn func(ctx context.Context) error) error {
	r := request{ctx: ctx, fn: fn, done: make(chan error, 1)}
	var again <-chan time.Time
	if preempt {
		t := time.NewTicker(20 * time.Millisecond)
		defer t.Stop()
		again = t.C
		c.preempt()
	}
wait:
	for {
		select {
		case c.requests <- r:
			break wait
		case <-again:
			c.preempt()
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	// Once taken, the answer is fn's, even past the deadline (fn stops at
	// it): a write fn made just before it must not be answered as a
	// timeout that changed nothing.
	return <-r.done
}

// Trigger asks for a reconciliation soon without waiting (webhooks). Triggers
// that arrive while one is pending are merged into it.
func (c *Controller) Trigger() {
	select {
	case c.triggers <- struct{}{}:
	default:
	}
}

// Sync asks for an immediate reconciliation and waits for it.
func (c *Controller) Sync(ctx context.Context) error {
	return c.Do(ctx, func(ctx context.Context) error { return c.reconcile(ctx, loadBackground) })
}

// reconcile brings the routing table in line with the registry; when the
// registry cannot be reached and nothing is live yet, it serves the first
// fallback that works. It runs only on the Run goroutine.
func (c *Controller) reconcile(ctx context.Context, mode loadMode) error {
	err := c.reconcileFrom(ctx, c.cfg.Source, mode)
	if err != nil && ctx.Err() != nil {
		// Cancelled (an admin action preempted it, or shutdown): not a
		// result, so neither counted nor reported; the next sync decides.
		return err
	}
	c.cfg.Metrics.Sync(c.cfg.Model, err == nil)
	var fallbackErrs []string
	if err != nil {
		c.cfg.Log.Warn("registry sync failed", "model", c.cfg.Model, "registry", c.cfg.Source.Describe(), "error", err)
		for _, fb := range c.cfg.Fallbacks {
			if c.cfg.Router.Current() != nil {
				break
			}
			if ferr := c.reconcileFrom(ctx, fb, mode); ferr != nil {
				c.cfg.Log.Warn("fallback failed", "model", c.cfg.Model, "fallback", fb.Describe(), "error", ferr)
				fallbackErrs = append(fallbackErrs, fb.Describe()+": "+ferr.Error())
			}
		}
	}
	c.setStatus(err, fallbackErrs)
	return err
}

func (c *Controller) setStatus(syncErr error, fallbackErrs []string) {
	st := Status{Registry: c.cfg.Source.Describe(), LastSync: time.Now().UTC(), SyncedOnce: true}
	if syncErr != nil {
		st.LastError = syncErr.Error()
	}
	t := c.cfg.Router.Current()
	switch {
	case t == nil:
		st.Reason = "no champion loaded: " + st.LastError
		if len(fallbackErrs) > 0 {
			st.Reason += "; and no fallback could serve: " + strings.Join(fallbackErrs, "; ")
		}
	case syncErr != nil:
		st.Ready = true
		st.Source = t.Champion.Version.Source
		st.Reason = fmt.Sprintf("degraded: serving champion %s from %s; the last sync with %s failed",
			t.Champion.Version.Number, st.Source, st.Registry)
	default:
		st.Ready = true
		st.Source = t.Champion.Version.Source
	}
	c.status.Store(&st)
}

func (c *Controller) reconcileFrom(ctx context.Context, src registry.Source, mode loadMode) error {
	state, err := src.State(ctx, c.cfg.Model)
	if err != nil {
		return err
	}
	want, err := DesiredFrom(state)
	var splitErr error
	if errors.Is(err, ErrBadTraffic) {
		// A damaged split must not take the champion with it: what serves
		// keeps its split (on a new server the champion takes everything),
		// the aliases are followed, and the sync reports the split.
		splitErr, err = err, nil
		want.Weights = routing.ChampionOnly()
		if cur := c.cfg.Router.Current(); cur != nil {
			want.Weights = cur.Weights
		}
	}
	if err != nil {
		return err
	}
	primary := src == c.cfg.Source
	if primary {
		c.generation = state.Generation
		c.noticeChampion(ctx, state)
	}
	t, err := c.apply(ctx, src, state, want, mode)
	if primary && t != nil && t != c.remembered {
		c.remember(state, t)
		c.remembered = t
	}
	return errors.Join(splitErr, err)
}

// noticeChampion audits and counts a champion change; one that did not come
// through /admin is added to the rollback history. An admin action writes
// the history naming the new champion before it moves the alias, so a
// champion the history does not end with was moved by someone else.
func (c *Controller) noticeChampion(ctx context.Context, st registry.State) {
	now, before := st.Version(registry.Champion), c.champion
	c.champion = now
	if before == "" || now == before || now == "" {
		return
	}
	if h := historyTag(st); len(h.Champions) > 0 && h.Champions[len(h.Champions)-1] == now && !h.Outside {
		c.cfg.Changes.inc(c.cfg.Model, "admin")
		return
	}
	c.cfg.Changes.inc(c.cfg.Model, "outside")
	// This server saw before as the champion, so the tag up to it is true
	// (even when now is the entry before it, which would otherwise read as an
	// admin write that never reached the alias).
	champions := historyTag(st).Champions
	if len(champions) == 0 || champions[len(champions)-1] != before {
		champions = append(champions, before)
	}
	champions = append(champions, now)
	champions = champions[max(0, len(champions)-maxHistory):]
	attrs := []any{"audit", true, "action", "outside_change", "model", c.cfg.Model, "variant", registry.Champion.String(),
		"from", before, "to", now, "registry", c.cfg.Source.Describe(), "history", champions}
	if c.cfg.Writer != nil {
		// Best effort: with the history tag written, the change survives
		// further outside changes; without it, the history still reads it.
		if err := c.cfg.Writer.SetModelTag(ctx, c.cfg.Model, HistoryTag, history{Champions: champions, Outside: true}.String()); err != nil {
			attrs = append(attrs, "history_error", err.Error())
		}
	}
	c.cfg.Audit.Warn("champion changed outside /admin", attrs...)
}

// remember records the live table's versions, with their sha256, as the
// state to serve after a restart while the registry is down, and prunes the
// cache of versions nobody will ask for.
func (c *Controller) remember(st registry.State, t *routing.Table) {
	if c.cfg.Remembered != nil {
		rem := registry.State{Aliases: map[string]string{}, Tags: map[string]string{}, SHA256: map[string]string{}}
		for _, r := range t.Routes() {
			rem.Aliases[r.Variant.String()] = r.Version.Number
			rem.SHA256[r.Version.Number] = r.Version.SHA256
		}
		rem.Tags[registry.TrafficTag] = mustJSON(t.Weights)
		if err := c.cfg.Remembered.Save(c.cfg.Model, rem); err != nil {
			c.cfg.Log.Warn("could not remember the live versions", "model", c.cfg.Model, "error", err)
		}
	}
	if c.cfg.Cache != nil {
		keep := map[string]bool{}
		for _, r := range t.Routes() {
			keep[r.Version.Number] = true
		}
		for _, v := range registry.Variants() {
			if v := st.Version(v); v != "" {
				keep[v] = true // e.g. a challenger still downloading
			}
		}
		h := championHistory(st)
		for _, v := range h[max(0, len(h)-c.cfg.KeepChampions):] {
			keep[v] = true
		}
		list := make([]string, 0, len(keep))
		for v := range keep {
			list = append(list, v)
		}
		sort.Strings(list)
		if err := c.cfg.Cache.Prune(c.cfg.Source, c.cfg.Model, list); err != nil {
			c.cfg.Log.Warn("cache prune failed", "model", c.cfg.Model, "error", err)
		}
	}
}

// apply makes the routing table serve want, loading what is missing. A
// variant whose version fails to load keeps what it had. It returns the
// table that is live from src (nil when none is).
func (c *Controller) apply(ctx context.Context, src registry.Source, st registry.State, want Desired, mode loadMode) (*routing.Table, error) {
	cur := c.cfg.Router.Current()
	if want != c.applied {
		clear(c.failed) // a new registry state deserves a new try
	} else if cur != nil && len(c.failed) == 0 && c.liveFrom(src) {
		c.retireUnused(cur) // e.g. a version an admin action prepared in vain
		return cur, nil     // unchanged: no other work
	}
	var errs []error
	routes := map[registry.Variant]*routing.Route{}
	var swapped []*routing.Route
	for _, variant := range registry.Variants() {
		version := want.Version(variant)
		if version == "" {
			continue
		}
		old := currentRoute(cur, variant)
		v, err := c.version(ctx, src, variant, version, st.SHA256[version], mode)
		if err == nil {
			err = c.mayServe(src, variant, v)
		}
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("%s version %s: %w", variant, version, err))
			if old != nil {
				routes[variant] = old // keep serving what we had
			}
		case old != nil && old.Version == v:
			routes[variant] = old
		default:
			r := &routing.Route{Variant: variant, Version: v,
				Metrics: c.cfg.Metrics.ForVersion(c.cfg.Model, v.Number, variant.String())}
			routes[variant] = r
			swapped = append(swapped, r)
		}
	}
	failSwaps := func() {
		for _, r := range swapped {
			c.cfg.Metrics.Swap(c.cfg.Model, r.Variant.String(), false)
		}
		if cur != nil {
			c.retireUnused(cur)
		}
	}
	if routes[registry.Champion] == nil {
		failSwaps()
		return nil, errors.Join(append(errs, ErrNoChampion)...)
	}
	t, err := routing.NewTable(c.cfg.Model, routes[registry.Champion], routes[registry.Challenger], routes[registry.Shadow], want.Weights)
	if err != nil {
		failSwaps()
		return nil, errors.Join(append(errs, err)...)
	}
	if !sameTable(cur, t) {
		c.cfg.Router.Publish(t)
		c.cfg.Metrics.SetLive(c.cfg.Model, t.Live())
	} else {
		t = cur
	}
	// Counted only now: until the table is published a swap can still fail.
	for _, r := range swapped {
		c.cfg.Metrics.Swap(c.cfg.Model, r.Variant.String(), true)
		c.cfg.Log.Info("model version live", "model", c.cfg.Model, "variant", r.Variant,
			"version", r.Version.Number, "sha256", r.Version.SHA256, "source", r.Version.Source)
	}
	c.applied = want
	c.desired.Store(&want)
	c.retireUnused(t)
	return t, errors.Join(errs...)
}

// liveFrom reports whether every live version came from src, so that a
// registry that comes back replaces what a fallback had loaded.
func (c *Controller) liveFrom(src registry.Source) bool {
	for key := range c.live {
		if !strings.HasPrefix(key, c.liveKey(src, "")) {
			return false
		}
	}
	return true
}

// version returns a loaded Version: one already live, or a fresh load within
// the load deadline. A version that failed for the current registry state is
// not retried until the state changes, so a bad artifact costs one download,
// not one per poll; a load that timed out, found the registry unavailable or
// was cancelled is retried at the next sync. pin, when set, is the sha256 the
// version's model file must have.
func (c *Controller) version(ctx context.Context, src registry.Source, variant registry.Variant, version, pin string, mode loadMode) (*models.Version, error) {
	key := c.liveKey(src, version)
	if v, ok := c.live[key]; ok {
		return v, nil
	}
	if err, ok := c.failed[key]; ok {
		return nil, err
	}
	if mode == loadAfterAction && c.preempted[key] {
		return nil, ErrPreempted
	}
	lctx, cancel := context.WithTimeout(ctx, c.cfg.LoadTimeout)
	v, err := c.cfg.Loader.Load(lctx, src, c.cfg.Model, version)
	timedOut := errors.Is(lctx.Err(), context.DeadlineExceeded)
	cancel()
	if err == nil && pin != "" && v.SHA256 != pin {
		v.Release()
		err = &models.LoadError{Model: c.cfg.Model, Version: version, Reason: models.ReasonVerify,
			Err: fmt.Errorf("%w: model file sha256 %s, remembered %s", ErrPinMismatch, v.SHA256, pin)}
	}
	if err != nil {
		if ctx.Err() != nil {
			// Cancelled from outside (an admin action preempting a poll, an
			// action's own deadline, shutdown): not the version's fault, not
			// counted, tried again at the next sync.
			if mode == loadBackground {
				c.preempted[key] = true
				return nil, fmt.Errorf("%w: %v", ErrPreempted, err)
			}
			return nil, fmt.Errorf("loading %s version %s: %w", c.cfg.Model, version, ctx.Err())
		}
		reason := "unknown"
		var le *models.LoadError
		if errors.As(err, &le) {
			reason = le.Reason
		}
		if timedOut {
			reason = "timeout"
			err = fmt.Errorf("%w: loading took longer than %s: %w", registry.ErrUnavailable, c.cfg.LoadTimeout, err)
		}
		return nil, c.reject(key, variant, version, reason, err)
	}
	c.live[key] = v
	return v, nil
}

// reject counts and logs a version that failed to load or may not serve
// where the registry names it, and remembers it for the current registry
// state (keyed by liveKey), so it is not tried again until the state
// changes; a registry that was unavailable is tried at the next sync.
func (c *Controller) reject(key string, variant registry.Variant, version, reason string, err error) error {
	c.cfg.Metrics.LoadFailure(c.cfg.Model, reason)
	c.cfg.Log.Error("model version rejected", "model", c.cfg.Model, "variant", variant, "version", version, "reason", reason, "error", err)
	if !errors.Is(err, registry.ErrUnavailable) {
		c.failed[key] = err
	}
	return err
}

// liveKey names a loaded version by where it came from: the same version from
// the registry and from the offline cache are loaded separately, so /ready
// says "mlflow" again once the registry is back; and, from the registry, by
// the registered model it is a version of, so that a model deleted and
// created again (its versions numbered from 1 again) is loaded anew, not
// served from the old model's version of the same number.
func (c *Controller) liveKey(src registry.Source, version string) string {
	key := src.Kind() + ":" + src.Key() + "/"
	if src == c.cfg.Source && c.generation != "" {
		key += c.generation + "/"
	}
	return key + version
}

func currentRoute(t *routing.Table, v registry.Variant) *routing.Route {
	if t == nil {
		return nil
	}
	return t.Route(v)
}

func sameTable(a, b *routing.Table) bool {
	if a == nil || b == nil {
		return a == b
	}
	same := func(x, y *routing.Route) bool {
		if x == nil || y == nil {
			return x == y
		}
		return x.Version == y.Version
	}
	return a.Weights == b.Weights && same(a.Champion, b.Champion) && same(a.Challenger, b.Challenger) && same(a.Shadow, b.Shadow)
}

// retireUnused drops the controller's reference to every version the live
// table no longer uses; each closes once its last in-flight request ends.
func (c *Controller) retireUnused(t *routing.Table) {
	inUse := map[*models.Version]bool{}
	for _, r := range t.Routes() {
		inUse[r.Version] = true
	}
	keys := make([]string, 0, len(c.live))
	for k := range c.live {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if v := c.live[k]; !inUse[v] {
			delete(c.live, k)
			c.cfg.Log.Info("model version retired", "model", c.cfg.Model, "version", v.Number, "source", v.Source)
			v.Release()
		}
	}
}

func (c *Controller) releaseAll() {
	c.cfg.Router.Publish(nil)
	for k, v := range c.live {
		delete(c.live, k)
		v.Release()
	}
}
