// Package rollout owns model changes. One goroutine reconciles what the
// registry's aliases say with the live routing table; the poll, webhooks and
// admin actions all send it requests and wait for the answer, so two swaps
// never race. A swap is one transaction: load and verify the new version,
// publish a new routing table in one atomic store, then retire the old version
// once its in-flight requests finish. A failure leaves the old version serving.
package rollout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync/atomic"
	"time"

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

// ErrNoChampion means the registry has no champion alias for the model.
var ErrNoChampion = errors.New("the registry has no champion alias for the model")

// DesiredFrom reads the aliases and the traffic tag of a registry state.
func DesiredFrom(s registry.State) (Desired, error) {
	d := Desired{Weights: routing.DefaultWeights}
	for _, v := range registry.Variants() {
		*d.field(v) = s.Version(v)
	}
	if d.Champion == "" {
		return d, ErrNoChampion
	}
	if raw := s.Tags[registry.TrafficTag]; raw != "" {
		var w routing.Weights
		if err := json.Unmarshal([]byte(raw), &w); err != nil {
			return d, fmt.Errorf("tag %s=%q: %w", registry.TrafficTag, raw, err)
		}
		if err := w.Validate(); err != nil {
			return d, fmt.Errorf("tag %s: %w", registry.TrafficTag, err)
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

// Config wires a Controller.
type Config struct {
	Model    string
	Source   registry.Source
	Loader   *models.Loader
	Router   *routing.Router
	Metrics  *metrics.Models
	Log      *slog.Logger
	Interval time.Duration // reconciliation poll; 0 disables the poll
	// Fallbacks serve, in order, while Source cannot be reached and nothing
	// is live: the remembered state over the verified cache, then the
	// artifacts embedded in the binary.
	Fallbacks []registry.Source
	// Writer is where admin actions write (nil: the registry is read-only).
	Writer Writer
}

// Controller reconciles the registry with the routing table. Create it with
// New and start Run in its own goroutine; its other methods are safe for
// concurrent use.
type Controller struct {
	cfg      Config
	requests chan request
	triggers chan struct{}
	status   atomic.Pointer[Status]
	// Owned by the Run goroutine:
	live    map[string]*models.Version // version → the controller's reference
	failed  map[string]error           // versions that failed to load, until the registry moves on
	desired Desired
}

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
	c := &Controller{
		cfg:      cfg,
		requests: make(chan request),
		triggers: make(chan struct{}, 1),
		live:     map[string]*models.Version{},
		failed:   map[string]error{},
	}
	c.status.Store(&Status{Reason: "starting: no champion loaded yet", Registry: cfg.Source.Describe()})
	return c
}

// Status returns the current status.
func (c *Controller) Status() Status { return *c.status.Load() }

// Run reconciles once, then on every poll tick and request, until ctx ends.
// On return every version the controller held has been released.
func (c *Controller) Run(ctx context.Context) {
	defer c.releaseAll()
	c.reconcile(ctx)
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
			c.reconcile(ctx)
		case r := <-c.requests:
			r.done <- r.fn(r.ctx)
		case <-c.triggers:
			c.reconcile(ctx)
		}
	}
}

// Do runs fn on the controller's goroutine and returns its error; it is how
// webhooks and admin actions change the live state without racing the poll.
func (c *Controller) Do(ctx context.Context, fn func(ctx context.Context) error) error {
	r := request{ctx: ctx, fn: fn, done: make(chan error, 1)}
	select {
	case c.requests <- r:
	case <-ctx.Done():
		return ctx.Err()
	}
	select {
	case err := <-r.done:
		return err
	case <-ctx.Done():
		return ctx.Err()
	}
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
	return c.Do(ctx, func(ctx context.Context) error { return c.reconcile(ctx) })
}

// reconcile brings the routing table in line with the registry; when the
// registry cannot be reached and nothing is live yet, it serves the fallback.
// It runs only on the Run goroutine.
func (c *Controller) reconcile(ctx context.Context) error {
	err := c.reconcileFrom(ctx, c.cfg.Source)
	c.cfg.Metrics.Sync(err == nil)
	if err != nil {
		c.cfg.Log.Warn("registry sync failed", "model", c.cfg.Model, "registry", c.cfg.Source.Describe(), "error", err)
		for _, fb := range c.cfg.Fallbacks {
			if c.cfg.Router.Current() != nil {
				break
			}
			if ferr := c.reconcileFrom(ctx, fb); ferr != nil {
				c.cfg.Log.Warn("fallback failed", "model", c.cfg.Model, "fallback", fb.Describe(), "error", ferr)
			}
		}
	}
	c.setStatus(err)
	return err
}

func (c *Controller) setStatus(syncErr error) {
	st := Status{Registry: c.cfg.Source.Describe(), LastSync: time.Now().UTC(), SyncedOnce: true}
	if syncErr != nil {
		st.LastError = syncErr.Error()
	}
	t := c.cfg.Router.Current()
	switch {
	case t == nil:
		st.Reason = "no champion loaded: " + st.LastError
	case syncErr != nil:
		st.Ready = true
		st.Source = t.Champion.Version.Source
		st.Reason = fmt.Sprintf("degraded: serving champion %s from %s; the last sync with %s failed",
			t.Champion.Version.Version, st.Source, st.Registry)
	default:
		st.Ready = true
		st.Source = t.Champion.Version.Source
	}
	c.status.Store(&st)
}

func (c *Controller) reconcileFrom(ctx context.Context, src registry.Source) error {
	state, err := src.State(ctx, c.cfg.Model)
	if err != nil {
		return err
	}
	want, err := DesiredFrom(state)
	if err != nil {
		return err
	}
	return c.apply(ctx, src, want)
}

// apply makes the routing table serve want, loading what is missing. A
// variant whose version fails to load keeps what it had.
func (c *Controller) apply(ctx context.Context, src registry.Source, want Desired) error {
	cur := c.cfg.Router.Current()
	if want != c.desired {
		clear(c.failed) // a new registry state deserves a new try
	} else if cur != nil && len(c.failed) == 0 && c.liveFrom(src) {
		c.retireUnused(cur) // e.g. a version an admin action prepared in vain
		return nil          // unchanged: no other work
	}
	var errs []error
	routes := map[registry.Variant]*routing.Route{}
	for _, variant := range registry.Variants() {
		version := want.Version(variant)
		if version == "" {
			continue
		}
		old := currentRoute(cur, variant)
		v, err := c.version(ctx, src, variant, version)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("%s version %s: %w", variant, version, err))
			if old != nil {
				routes[variant] = old // keep serving what we had
			}
		case old != nil && old.Version == v:
			routes[variant] = old
		default:
			routes[variant] = &routing.Route{Variant: variant, Version: v,
				Metrics: c.cfg.Metrics.ForVersion(c.cfg.Model, v.Version, variant.String())}
			c.cfg.Metrics.Swap(c.cfg.Model, variant.String(), true)
			c.cfg.Log.Info("model version live", "model", c.cfg.Model, "variant", variant,
				"version", v.Version, "sha256", v.SHA256, "source", v.Source)
		}
	}
	if routes[registry.Champion] == nil {
		return errors.Join(append(errs, ErrNoChampion)...)
	}
	t, err := routing.NewTable(c.cfg.Model, routes[registry.Champion], routes[registry.Challenger], routes[registry.Shadow], want.Weights)
	if err != nil {
		return errors.Join(append(errs, err)...)
	}
	if !sameTable(cur, t) {
		c.cfg.Router.Publish(t)
		c.cfg.Metrics.SetLive(c.cfg.Model, t.Live())
	}
	c.desired = want
	c.retireUnused(t)
	return errors.Join(errs...)
}

// liveFrom reports whether every live version came from src, so that a
// registry that comes back replaces what a fallback had loaded.
func (c *Controller) liveFrom(src registry.Source) bool {
	for key := range c.live {
		if !strings.HasPrefix(key, liveKey(src, "")) {
			return false
		}
	}
	return true
}

// version returns a loaded Version: one already live, or a fresh load. A
// version that failed for the current registry state is not retried until
// the state changes, so a bad artifact costs one download, not one per poll.
func (c *Controller) version(ctx context.Context, src registry.Source, variant registry.Variant, version string) (*models.Version, error) {
	key := liveKey(src, version)
	if v, ok := c.live[key]; ok {
		return v, nil
	}
	if err, ok := c.failed[key]; ok {
		return nil, err
	}
	v, err := c.cfg.Loader.Load(ctx, src, c.cfg.Model, version)
	if err != nil {
		reason := "unknown"
		var le *models.LoadError
		if errors.As(err, &le) {
			reason = le.Reason
		}
		c.cfg.Metrics.LoadFailure(c.cfg.Model, reason)
		c.cfg.Metrics.Swap(c.cfg.Model, variant.String(), false)
		c.cfg.Log.Error("model version rejected", "model", c.cfg.Model, "version", version, "reason", reason, "error", err)
		c.failed[key] = err
		return nil, err
	}
	c.live[key] = v
	return v, nil
}

// liveKey names a loaded version by where it came from: the same version from
// the registry and from the offline cache are loaded separately, so /ready
// says "mlflow" again once the registry is back.
func liveKey(src registry.Source, version string) string {
	return src.Kind() + ":" + src.Key() + "/" + version
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
			c.cfg.Log.Info("model version retired", "model", c.cfg.Model, "version", v.Version, "source", v.Source)
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
