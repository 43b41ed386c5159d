package rollout

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"mlservice/registry"
	"mlservice/serve/decision"
	"mlservice/serve/models"
	"mlservice/serve/routing"
)

// writable is a fakeRegistry that admin actions can write, whose downloads
// of "slow-*" versions hang until cancelled, and whose writes can be made to
// fail one by one.
type writable struct {
	*fakeRegistry
	mu       sync.Mutex
	fail     map[string]error // "SetAlias", "SetModelTag", "DeleteAlias": fail the next call
	failNth  map[string]int   // fail only the nth call from now (1: the next)
	writes   []string
	stalled  chan struct{} // closed when a slow download starts
	canceled chan struct{} // closed when it is cancelled
}

func newWritable(aliases map[string]string) *writable {
	return &writable{fakeRegistry: newFakeRegistry("mlflow", aliases), fail: map[string]error{}, failNth: map[string]int{},
		stalled: make(chan struct{}), canceled: make(chan struct{})}
}

func (w *writable) Download(ctx context.Context, model, version, dir string) error {
	if strings.HasPrefix(version, "slow") {
		close(w.stalled)
		<-ctx.Done()
		close(w.canceled)
		return fmt.Errorf("mlflow: download: %w", ctx.Err())
	}
	return w.fakeRegistry.Download(ctx, model, version, dir)
}

func (w *writable) write(op string, fn func(s *registry.State)) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.writes = append(w.writes, op)
	if err := w.fail[op]; err != nil {
		delete(w.fail, op)
		return err
	}
	if n, ok := w.failNth[op]; ok {
		if w.failNth[op] = n - 1; n == 1 {
			delete(w.failNth, op)
			return errors.New(op + " failed")
		}
	}
	w.set(fn)
	return nil
}

func (w *writable) HasVersion(_ context.Context, _, version string) error {
	if version == "99" {
		return registry.ErrNotFound
	}
	return nil
}
func (w *writable) SetAlias(_ context.Context, _, alias, version string) error {
	return w.write("SetAlias", func(s *registry.State) { s.Aliases[alias] = version })
}
func (w *writable) DeleteAlias(_ context.Context, _, alias string) error {
	return w.write("DeleteAlias", func(s *registry.State) { delete(s.Aliases, alias) })
}
func (w *writable) SetModelTag(_ context.Context, _, key, value string) error {
	return w.write("SetModelTag", func(s *registry.State) { s.Tags[key] = value })
}
func (w *writable) DeleteModelTag(_ context.Context, _, key string) error {
	return w.write("DeleteModelTag", func(s *registry.State) { delete(s.Tags, key) })
}

func (w *writable) snapshot(t *testing.T) registry.State {
	t.Helper()
	st, err := w.fakeRegistry.State(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func withWriter(w registry.Writer) func(*Config) { return func(c *Config) { c.Writer = w } }

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// Issue 13 item 2, issue 12 item 8: while a background load hangs, reads
// answer at once, and an admin action cancels the load instead of waiting
// for it.
func TestReadsNeverWaitAndAnAdminActionCancelsAStalledLoad(t *testing.T) {
	reg := newWritable(map[string]string{"champion": "1"})
	h := start(t, reg, nil, withWriter(reg))
	if err := h.sync(t); err != nil {
		t.Fatal(err)
	}
	reg.set(func(s *registry.State) { s.Aliases["challenger"] = "slow-2" })
	h.ctrl.Trigger()
	select {
	case <-reg.stalled:
	case <-time.After(5 * time.Second):
		t.Fatal("the slow download never started")
	}
	start := time.Now()
	for range 100 {
		if d := h.ctrl.Desired(); d.Champion != "1" {
			t.Fatalf("desired %+v", d)
		}
		if st := h.ctrl.Status(); !st.Ready {
			t.Fatalf("status %+v", st)
		}
	}
	if took := time.Since(start); took > 100*time.Millisecond {
		t.Fatalf("100 reads took %v while a load hangs", took)
	}
	// The rollback-free action of the moment: promote version 3 to champion.
	start = time.Now()
	ch, err := h.ctrl.Promote(ctxFor(t, 10*time.Second), "champion", "3")
	took := time.Since(start)
	if err != nil {
		t.Fatalf("promote during a stalled load: %v", err)
	}
	select {
	case <-reg.canceled:
	default:
		t.Fatal("the stalled load was not cancelled")
	}
	t.Logf("promote during a stalled load answered in %v; warning: %s", took, ch.Warning)
	if took > 2*time.Second || h.champion() != "3" || ch.After.Champion != "3" || !strings.Contains(ch.Warning, "cancelled") {
		t.Fatalf("took %v, champion %s, change %+v", took, h.champion(), ch)
	}
	if v := metricValue(t, h, "model_load_failures_total", nil); v != 0 {
		t.Fatalf("a cancelled load counted as a load failure: %v", v)
	}
	// The cancelled background sync is not a sync error; the sync after the
	// promote is (the challenger the registry names is not live).
	if v := metricValue(t, h, "model_registry_sync_errors_total", map[string]string{"model": "loan-approval"}); v != 1 {
		t.Fatalf("sync errors %v, want 1", v)
	}
}

// Issue 12 item 8: a load has a bounded deadline, and running out of it is
// "unavailable" (503), not a verification failure.
func TestLoadDeadline(t *testing.T) {
	reg := newWritable(map[string]string{"champion": "1"})
	h := start(t, reg, nil, withWriter(reg), func(c *Config) { c.LoadTimeout = 200 * time.Millisecond })
	if err := h.sync(t); err != nil {
		t.Fatal(err)
	}
	_, err := h.ctrl.Promote(ctxFor(t, 10*time.Second), "challenger", "slow-2")
	var verify *VerifyError
	if !errors.Is(err, registry.ErrUnavailable) || errors.As(err, &verify) {
		t.Fatalf("promote of a version whose load times out: %v", err)
	}
	if v := metricValue(t, h, "model_load_failures_total", map[string]string{"reason": "timeout"}); v != 1 {
		t.Fatalf("model_load_failures_total{reason=timeout} = %v", v)
	}
	if st := reg.snapshot(t); st.Aliases["challenger"] != "" {
		t.Fatalf("the alias was written: %v", st.Aliases)
	}
}

// Issue 13 item 2, issue 12 item 12: the alias write fails after the
// history write; the registry and the rollback history are as they were,
// and the next rollback is not a rollback from 1 to 1.
func TestFailedAliasWriteLeavesTheRegistryAsItWas(t *testing.T) {
	reg := newWritable(map[string]string{"champion": "1"})
	reg.set(func(s *registry.State) { s.Tags[HistoryTag] = `["0","1"]` })
	h := start(t, reg, nil, withWriter(reg))
	if err := h.sync(t); err != nil {
		t.Fatal(err)
	}
	before := reg.snapshot(t)
	reg.fail["SetAlias"] = fmt.Errorf("%w: 503 from MLflow", registry.ErrUnavailable)
	if _, err := h.ctrl.Promote(ctxFor(t, 5*time.Second), "champion", "2"); err == nil {
		t.Fatal("promote succeeded with a failing alias write")
	}
	after := reg.snapshot(t)
	if !maps.Equal(before.Aliases, after.Aliases) || !maps.Equal(before.Tags, after.Tags) {
		t.Fatalf("registry before %+v, after the failed promote %+v (writes %v)", before, after, reg.writes)
	}
	if got := championHistory(after); !slices.Equal(got, []string{"0", "1"}) {
		t.Fatalf("history %v", got)
	}

	// Worse: the alias write and the restore both fail. The tag then names
	// a champion the alias never reached, and still reads as before.
	reg.fail["SetAlias"] = errors.New("alias write failed")
	reg.failNth["SetModelTag"] = 2 // the restore
	if _, err := h.ctrl.Promote(ctxFor(t, 5*time.Second), "champion", "2"); err == nil {
		t.Fatal("promote succeeded")
	}
	st := reg.snapshot(t)
	if st.Tags[HistoryTag] != `{"champions":["0","1","2"]}` || st.Aliases["champion"] != "1" {
		t.Fatalf("the restore should have failed: %+v", st)
	}
	if got := championHistory(st); !slices.Equal(got, []string{"0", "1"}) {
		t.Fatalf("dangling history entry read as %v", got)
	}
	if err := h.sync(t); err != nil || h.champion() != "1" {
		t.Fatalf("after the half-written promote: champion %s, %v", h.champion(), err)
	}

	// A rollback goes to the previous champion, 0, never "from 1 to 1".
	ch, err := h.ctrl.Rollback(ctxFor(t, 5*time.Second))
	if err != nil || ch.Before.Champion != "1" || ch.After.Champion != "0" || h.champion() != "0" {
		t.Fatalf("rollback: %+v %v", ch, err)
	}
	if got := championHistory(reg.snapshot(t)); !slices.Equal(got, []string{"0"}) {
		t.Fatalf("history after the rollback: %v", got)
	}
}

// Issue 12 item 12: a history left by the old failed-promote bug (the
// current champion as the only previous one) is no history.
func TestRollbackToTheCurrentChampionIsRefused(t *testing.T) {
	for _, tag := range []string{`["1"]`, `["1","1"]`} {
		reg := newWritable(map[string]string{"champion": "1"})
		reg.set(func(s *registry.State) { s.Tags[HistoryTag] = tag })
		h := start(t, reg, nil, withWriter(reg))
		if err := h.sync(t); err != nil {
			t.Fatal(err)
		}
		if _, err := h.ctrl.Rollback(ctxFor(t, 5*time.Second)); !errors.Is(err, ErrNoHistory) {
			t.Fatalf("history %s: rollback %v, want ErrNoHistory", tag, err)
		}
		if len(reg.writes) != 0 {
			t.Fatalf("history %s: a refused rollback wrote %v", tag, reg.writes)
		}
	}
}

// Issue 12 item 7: retiring the challenger sets its share to 0, so the
// next challenger starts with no traffic.
func TestRetireResetsTheChallengersShare(t *testing.T) {
	reg := newWritable(map[string]string{"champion": "1", "challenger": "2"})
	reg.set(func(s *registry.State) { s.Tags[registry.TrafficTag] = `{"champion":90,"challenger":10}` })
	h := start(t, reg, nil, withWriter(reg))
	if err := h.sync(t); err != nil {
		t.Fatal(err)
	}
	ctx := ctxFor(t, 5*time.Second)
	if _, err := h.ctrl.Retire(ctx, "challenger"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.ctrl.Promote(ctx, "challenger", "3"); err != nil {
		t.Fatal(err)
	}
	if tab := h.router.Current(); tab.Challenger == nil || tab.ChallengerShare() != 0 {
		t.Fatalf("a new challenger after a retire gets %d%%", tab.ChallengerShare())
	}
	// The split first, then the alias: a failing alias delete leaves a
	// challenger with no traffic, and repeating converges.
	if _, err := h.ctrl.SetWeights(ctx, routing.Weights{Champion: 80, Challenger: 20}); err != nil {
		t.Fatal(err)
	}
	reg.fail["DeleteAlias"] = errors.New("delete failed")
	if _, err := h.ctrl.Retire(ctx, "challenger"); err == nil {
		t.Fatal("retire succeeded with a failing delete")
	}
	if d, _ := DesiredFrom(reg.snapshot(t)); d.Challenger != "3" || d.Weights.Challenger != 0 {
		t.Fatalf("after a half-done retire: %+v", d)
	}
	if _, err := h.ctrl.Retire(ctx, "challenger"); err != nil {
		t.Fatal(err)
	}
	if d := h.ctrl.Desired(); d.Challenger != "" || d.Weights != routing.ChampionOnly() {
		t.Fatalf("after the repeated retire: %+v", d)
	}
}

// Issue 12 item 5: a champion moved outside /admin is audited, counted and
// added to the rollback history; one moved through /admin is not.
func TestChampionChangedOutsideAdmin(t *testing.T) {
	reg := newWritable(map[string]string{"champion": "1"})
	var audit bytes.Buffer
	h := start(t, reg, nil, withWriter(reg), func(c *Config) {
		c.Audit = slog.New(slog.NewJSONHandler(&audit, nil))
	})
	if err := h.sync(t); err != nil {
		t.Fatal(err)
	}
	ctx := ctxFor(t, 5*time.Second)
	if _, err := h.ctrl.Promote(ctx, "champion", "2"); err != nil {
		t.Fatal(err)
	}
	replica := start(t, reg, nil) // read-only, and slower to notice
	if err := replica.sync(t); err != nil {
		t.Fatal(err)
	}
	reg.set(func(s *registry.State) { s.Aliases["champion"] = "3" }) // someone with an MLflow account
	if err := h.sync(t); err != nil {
		t.Fatal(err)
	}
	// The history this server wrote still tells the replica it was an outside change.
	if err := replica.sync(t); err != nil {
		t.Fatal(err)
	}
	if got := metricValue(t, replica, "model_champion_changes_total", map[string]string{"origin": "outside"}); got != 1 {
		t.Fatalf("the replica counted %v outside changes", got)
	}
	line := audit.String()
	if !strings.Contains(line, `"msg":"champion changed outside /admin"`) || !strings.Contains(line, `"from":"2","to":"3"`) {
		t.Fatalf("audit: %s", line)
	}
	if strings.Count(line, "\n") != 1 {
		t.Fatalf("want one audit line (the promote came through /admin): %s", line)
	}
	if got := metricValue(t, h, "model_champion_changes_total", map[string]string{"origin": "outside"}); got != 1 {
		t.Fatalf("outside changes = %v", got)
	}
	if got := metricValue(t, h, "model_champion_changes_total", map[string]string{"origin": "admin"}); got != 1 {
		t.Fatalf("admin changes = %v", got)
	}
	if got := championHistory(reg.snapshot(t)); !slices.Equal(got, []string{"1", "2", "3"}) {
		t.Fatalf("history %v", got)
	}
	if ch, err := h.ctrl.Rollback(ctx); err != nil || ch.After.Champion != "2" {
		t.Fatalf("rollback from an outside change: %+v %v", ch, err)
	}
	// An outside move back to the previous champion is a change too, not a
	// half-done admin write.
	reg.set(func(s *registry.State) { s.Aliases["champion"] = "1" })
	if err := h.sync(t); err != nil {
		t.Fatal(err)
	}
	if got := championHistory(reg.snapshot(t)); !slices.Equal(got, []string{"1", "2", "1"}) {
		t.Fatalf("history after an outside revert %v", got)
	}
	if ch, err := h.ctrl.Rollback(ctx); err != nil || ch.After.Champion != "2" {
		t.Fatalf("rollback of an outside revert: %+v %v", ch, err)
	}
}

// Issue 13 item 2: model_swaps_total{result="success"} counts only versions
// that went live in a published table.
func TestSwapsCountedOnlyOncePublished(t *testing.T) {
	reg := newFakeRegistry("mlflow", map[string]string{"champion": "bad-1", "challenger": "2"})
	h := start(t, reg, nil)
	if err := h.sync(t); err == nil {
		t.Fatal("a table without a champion was accepted")
	}
	if got := metricValue(t, h, "model_swaps_total", map[string]string{"variant": "challenger", "result": "success"}); got != 0 {
		t.Fatalf("challenger swap counted as a success with no table published: %v", got)
	}
}

type rememberedStates struct {
	mu     sync.Mutex
	states []registry.State
}

func (r *rememberedStates) Save(_ string, st registry.State) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.states = append(r.states, st)
	return nil
}

func (r *rememberedStates) Load(string) (registry.State, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.states) == 0 {
		return registry.State{}, registry.ErrNotFound
	}
	return r.states[len(r.states)-1], nil
}

// Issue 12 item 5: a champion moved outside /admin while the server was down
// is noticed at its first sync after the restart.
func TestOutsideChangeWhileDownIsNoticedAfterARestart(t *testing.T) {
	reg := newWritable(map[string]string{"champion": "1"})
	rem := &rememberedStates{}
	h := start(t, reg, nil, func(c *Config) { c.Remembered = rem })
	if err := h.sync(t); err != nil {
		t.Fatal(err)
	}
	h.cancel()
	<-h.done
	reg.set(func(s *registry.State) { s.Aliases["champion"] = "2" })
	restarted := start(t, reg, nil, func(c *Config) { c.Remembered = rem })
	if err := restarted.sync(t); err != nil {
		t.Fatal(err)
	}
	if got := metricValue(t, restarted, "model_champion_changes_total", map[string]string{"origin": "outside"}); got != 1 {
		t.Fatalf("outside changes after the restart = %v", got)
	}
}

// Issue 12 item 3: only versions that loaded are remembered, with their
// sha256; a remembered pin that does not match refuses the version.
func TestRemembersOnlyVersionsThatLoaded(t *testing.T) {
	reg := newFakeRegistry("mlflow", map[string]string{"champion": "1", "challenger": "bad-2"})
	rem := &rememberedStates{}
	h := start(t, reg, nil, func(c *Config) { c.Remembered = rem })
	_ = h.sync(t)
	if len(rem.states) != 1 {
		t.Fatalf("remembered %d states", len(rem.states))
	}
	st := rem.states[0]
	if !maps.Equal(st.Aliases, map[string]string{"champion": "1"}) || st.SHA256["1"] != h.router.Current().Champion.Version.SHA256 || st.SHA256["1"] == "" {
		t.Fatalf("remembered %+v", st)
	}

	pinned := newFakeRegistry("cache", map[string]string{"champion": "1"})
	pinnedState := func(sum string) *pinnedRegistry {
		return &pinnedRegistry{fakeRegistry: pinned, pins: map[string]string{"1": sum}}
	}
	down := newFakeRegistry("mlflow", nil)
	down.down = true
	h2 := start(t, down, pinnedState("0000"))
	if err := h2.sync(t); !errors.Is(err, registry.ErrUnavailable) || h2.router.Current() != nil {
		t.Fatalf("a version whose sha256 differs from the pin served: %v", err)
	}
	if st := h2.ctrl.Status(); st.Ready || !strings.Contains(st.Reason, "sha256") {
		t.Fatalf("status %+v", st)
	}
	h3 := start(t, down, pinnedState(st.SHA256["1"]))
	_ = h3.sync(t)
	if h3.router.Current() == nil || h3.ctrl.Status().Source != "cache" {
		t.Fatalf("the pinned version did not serve: %+v", h3.ctrl.Status())
	}
}

type pinnedRegistry struct {
	*fakeRegistry
	pins map[string]string
}

func (p *pinnedRegistry) State(ctx context.Context, model string) (registry.State, error) {
	st, err := p.fakeRegistry.State(ctx, model)
	st.SHA256 = p.pins
	return st, err
}

// Issue 12 item 9: the cache keeps the live versions and the recent
// champions, and nothing else.
func TestCachePrunedToLiveAndRecentChampions(t *testing.T) {
	reg := newWritable(map[string]string{"champion": "1"})
	cache := &registry.Cache{Dir: t.TempDir()}
	h := start(t, reg, nil, withWriter(reg), func(c *Config) {
		c.Cache, c.KeepChampions = cache, 3
		c.Loader = &models.Loader{Cache: cache, Open: func(string) (models.Scorer, error) { return &fakeScorer{closed: make(chan struct{})}, nil }, Check: decision.ServingCheck}
	})
	if err := h.sync(t); err != nil {
		t.Fatal(err)
	}
	ctx := ctxFor(t, 10*time.Second)
	if _, err := h.ctrl.Promote(ctx, "shadow", "bad-9"); err == nil {
		t.Fatal("a bad shadow was promoted")
	}
	for _, v := range []string{"2", "3", "4", "5", "6"} {
		if _, err := h.ctrl.Promote(ctx, "champion", v); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := h.ctrl.Promote(ctx, "challenger", "7"); err != nil {
		t.Fatal(err)
	}
	got, err := cache.Versions(reg, "loan-approval")
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(got)
	if want := []string{"4", "5", "6", "7"}; !slices.Equal(got, want) {
		t.Fatalf("cached versions %v, want %v", got, want)
	}
	if _, err := os.Stat(filepath.Join(cache.Dir, "versions")); err != nil {
		t.Fatal(err)
	}
}

// A split written outside /admin that does not add up (or does not parse)
// must not lock ops out: setting the split repairs it, and every other
// action is refused with ErrBadTraffic, writing nothing, rather than
// failing like an outage.
func TestDamagedSplitIsRepairedBySettingTheSplit(t *testing.T) {
	reg := newWritable(map[string]string{"champion": "1", "challenger": "2"})
	reg.set(func(s *registry.State) {
		s.Tags[registry.TrafficTag] = `{"champion":90,"challenger":10}`
		s.Tags[HistoryTag] = `{"champions":["0","1"]}`
	})
	h := start(t, reg, nil, withWriter(reg))
	if err := h.sync(t); err != nil {
		t.Fatal(err)
	}
	for _, damaged := range []string{`{"champion":90,"challenger":20}`, `90/10`} {
		reg.set(func(s *registry.State) { s.Tags[registry.TrafficTag] = damaged })
		reg.writes = nil
		ctx := ctxFor(t, 5*time.Second)
		for name, act := range map[string]func() (Change, error){
			"rollback": func() (Change, error) { return h.ctrl.Rollback(ctx) },
			"promote":  func() (Change, error) { return h.ctrl.Promote(ctx, "champion", "3") },
			"retire":   func() (Change, error) { return h.ctrl.Retire(ctx, "challenger") },
		} {
			if _, err := act(); !errors.Is(err, ErrBadTraffic) {
				t.Errorf("split %s: %s answered %v, want ErrBadTraffic", damaged, name, err)
			}
		}
		if len(reg.writes) != 0 {
			t.Errorf("split %s: refused actions wrote %v", damaged, reg.writes)
		}
		ch, err := h.ctrl.SetWeights(ctx, routing.Weights{Champion: 80, Challenger: 20})
		if err != nil || ch.Warning != "" || h.router.Current().ChallengerShare() != 20 {
			t.Fatalf("split %s: setting the split: %+v %v, challenger share %d", damaged, ch, err, h.router.Current().ChallengerShare())
		}
	}
}

// lostReply is a registry that makes an alias write but whose reply never
// arrives before the action's deadline (MLflow slow to answer after its
// commit).
type lostReply struct{ *writable }

func (l lostReply) SetAlias(ctx context.Context, model, alias, version string) error {
	if err := l.writable.SetAlias(ctx, model, alias, version); err != nil {
		return err
	}
	<-ctx.Done()
	return fmt.Errorf("%w: mlflow: set alias: %v (after 1 attempts)", registry.ErrUnavailable, ctx.Err())
}

// A write the registry made but did not confirm in time is a change that
// stands: the action answers so (not "timed out, nothing was changed"),
// and the rollback history names it as the admin's, not as a change from
// outside /admin.
func TestWriteWhoseReplyIsLostIsAnsweredAsMade(t *testing.T) {
	reg := newWritable(map[string]string{"champion": "1"})
	h := start(t, reg, nil, withWriter(lostReply{reg}))
	if err := h.sync(t); err != nil {
		t.Fatal(err)
	}
	ch, err := h.ctrl.Promote(ctxFor(t, 300*time.Millisecond), "champion", "2")
	if err != nil {
		t.Fatalf("promote answered %v; the registry has champion %s", err, reg.snapshot(t).Aliases["champion"])
	}
	if ch.Before.Champion != "1" || ch.After.Champion != "2" || h.champion() != "2" {
		t.Errorf("change %+v, serving %s", ch, h.champion())
	}
	if got := championHistory(reg.snapshot(t)); !slices.Equal(got, []string{"1", "2"}) {
		t.Errorf("history %v, want [1 2]", got)
	}
	if err := h.sync(t); err != nil || h.champion() != "2" {
		t.Fatalf("after the next sync: champion %s, %v", h.champion(), err)
	}
	if n := testutil.ToFloat64(h.ctrl.cfg.Changes.total.WithLabelValues("loan-approval", "outside")); n != 0 {
		t.Errorf("the admin's promote counted as %v changes from outside /admin", n)
	}
}
