package rollout

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"mlservice/registry"
	"mlservice/serve/decision"
	"mlservice/serve/metrics"
	"mlservice/serve/models"
	"mlservice/serve/routing"
)

// fakeRegistry is an in-memory registry.Source. Version "bad-*" ships a
// serving check that its model disagrees with.
type fakeRegistry struct {
	mu        sync.Mutex
	key       string
	state     registry.State
	down      bool
	downloads map[string]int
}

func newFakeRegistry(key string, aliases map[string]string) *fakeRegistry {
	return &fakeRegistry{key: key, state: registry.State{Aliases: aliases, Tags: map[string]string{}}, downloads: map[string]int{}}
}

func (f *fakeRegistry) Key() string      { return f.key }
func (f *fakeRegistry) Kind() string     { return f.key }
func (f *fakeRegistry) Describe() string { return "fake " + f.key }

func (f *fakeRegistry) set(fn func(s *registry.State)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(&f.state)
}

func (f *fakeRegistry) State(context.Context, string) (registry.State, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.down {
		return registry.State{}, fmt.Errorf("%w: connection refused", registry.ErrUnavailable)
	}
	s := registry.State{Aliases: map[string]string{}, Tags: map[string]string{}}
	for k, v := range f.state.Aliases {
		s.Aliases[k] = v
	}
	for k, v := range f.state.Tags {
		s.Tags[k] = v
	}
	return s, nil
}

func (f *fakeRegistry) Download(_ context.Context, model, version, dir string) error {
	f.mu.Lock()
	f.downloads[version]++
	f.mu.Unlock()
	mlmodel := "flavors:\n  onnx:\n    data: model.onnx\nsignature:\n  inputs: '[{\"type\": \"float\", \"name\": \"income\"}]'\n"
	p := 0.6
	if strings.HasPrefix(version, "bad") {
		p = 0.9 // the fake scorer says 0.6
	}
	check, _ := json.Marshal(models.ServingCheck{Tolerance: 1e-5, Cases: []models.ServingCase{
		{Input: map[string]float64{"income": 60000, "credit_score": 700, "loan_amount": 1, "years_employed": 1, "points": 1}, Probability: p, Approve: true}}})
	for name, content := range map[string][]byte{"MLmodel": []byte(mlmodel), "model.onnx": []byte("model " + version), "serving_check.json": check} {
		if err := os.WriteFile(filepath.Join(dir, name), content, 0o644); err != nil {
			return err
		}
	}
	return nil
}

func (f *fakeRegistry) downloadsOf(v string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.downloads[v]
}

type fakeScorer struct{ closed chan struct{} }

func (s *fakeScorer) Columns() int { return 1 }
func (s *fakeScorer) Score(x, probs []float32, approve []bool) error {
	for i := range probs {
		probs[i] = x[i] / 100000
		approve[i] = probs[i] > 0.5
	}
	return nil
}
func (s *fakeScorer) Close() error { close(s.closed); return nil }

type harness struct {
	ctrl     *Controller
	router   *routing.Router
	registry *prometheus.Registry
	cancel   context.CancelFunc
	done     chan struct{}
}

func start(t *testing.T, src, fallback registry.Source, options ...func(*Config)) *harness {
	t.Helper()
	h := &harness{router: &routing.Router{}, registry: prometheus.NewRegistry(), done: make(chan struct{})}
	cfg := Config{
		Model: "loan-approval", Source: src, Router: h.router, Metrics: metrics.New(h.registry),
		Log: slog.New(slog.NewTextHandler(testWriter{t}, nil)), Changes: NewChanges(h.registry),
		Loader: &models.Loader{Cache: &registry.Cache{Dir: t.TempDir()},
			Open:  func(string) (models.Scorer, error) { return &fakeScorer{closed: make(chan struct{})}, nil },
			Check: decision.ServingCheck},
		AllowWithoutReasons: true, // fake versions without reasons; the rule is tested in serve/record
	}
	if fallback != nil {
		cfg.Fallbacks = []registry.Source{fallback}
	}
	for _, o := range options {
		o(&cfg)
	}
	h.ctrl = New(cfg)
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { defer close(h.done); h.ctrl.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-h.done })
	return h
}

func (h *harness) sync(t *testing.T) error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return h.ctrl.Sync(ctx)
}

func (h *harness) champion() string { return h.router.Current().Champion.Version.Number }

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func TestFollowsTheChampionAlias(t *testing.T) {
	reg := newFakeRegistry("mlflow", map[string]string{"champion": "1"})
	h := start(t, reg, nil)
	if err := h.sync(t); err != nil {
		t.Fatal(err)
	}
	if h.champion() != "1" || !h.ctrl.Status().Ready || h.ctrl.Status().Source != "mlflow" {
		t.Fatalf("champion %s, status %+v", h.champion(), h.ctrl.Status())
	}
	// An unchanged registry does no work.
	for range 3 {
		if err := h.sync(t); err != nil {
			t.Fatal(err)
		}
	}
	if n := reg.downloadsOf("1"); n != 1 {
		t.Fatalf("version 1 downloaded %d times", n)
	}

	// A request holding version 1 keeps it open across the swap.
	_, held := h.router.Acquire("A-1")
	old := held.Version
	reg.set(func(s *registry.State) { s.Aliases["champion"] = "2" })
	if err := h.sync(t); err != nil {
		t.Fatal(err)
	}
	if h.champion() != "2" {
		t.Fatalf("champion %s after the alias moved", h.champion())
	}
	if old.Closed() {
		t.Fatal("version 1 closed while a request still used it")
	}
	held.Version.Release()
	if !old.Closed() {
		t.Fatal("version 1 not closed after its last request")
	}
	if got := metricValue(t, h, "model_swaps_total", map[string]string{"variant": "champion", "result": "success"}); got != 2 {
		t.Fatalf("model_swaps_total{success} = %v, want 2", got)
	}
}

func TestBadVersionKeepsTheOldOneServing(t *testing.T) {
	reg := newFakeRegistry("mlflow", map[string]string{"champion": "1"})
	h := start(t, reg, nil)
	if err := h.sync(t); err != nil {
		t.Fatal(err)
	}
	reg.set(func(s *registry.State) { s.Aliases["champion"] = "bad-2" })
	err := h.sync(t)
	var le *models.LoadError
	if !errors.As(err, &le) || le.Reason != models.ReasonServingCheck {
		t.Fatalf("want a serving check failure, got %v", err)
	}
	if h.champion() != "1" {
		t.Fatalf("champion %s: a failed version went live", h.champion())
	}
	if v := metricValue(t, h, "model_registry_sync_success", map[string]string{"model": "loan-approval"}); v != 0 {
		t.Fatalf("model_registry_sync_success = %v after a failed load", v)
	}
	if v := metricValue(t, h, "model_load_failures_total", map[string]string{"reason": "serving_check"}); v != 1 {
		t.Fatalf("model_load_failures_total{reason=serving_check} = %v", v)
	}
	// The poll does not download the bad version again until the registry moves on.
	_ = h.sync(t)
	_ = h.sync(t)
	if n := reg.downloadsOf("bad-2"); n != 1 {
		t.Fatalf("bad version downloaded %d times", n)
	}
	reg.set(func(s *registry.State) { s.Aliases["champion"] = "3" })
	if err := h.sync(t); err != nil || h.champion() != "3" {
		t.Fatalf("champion %s, err %v after moving on to version 3", h.champion(), err)
	}
	if v := metricValue(t, h, "model_registry_sync_success", map[string]string{"model": "loan-approval"}); v != 1 {
		t.Fatalf("model_registry_sync_success = %v after recovering", v)
	}
}

func TestChallengerAndWeights(t *testing.T) {
	reg := newFakeRegistry("mlflow", map[string]string{"champion": "1", "challenger": "2", "shadow": "3"})
	reg.set(func(s *registry.State) { s.Tags[registry.TrafficTag] = `{"champion":90,"challenger":10}` })
	h := start(t, reg, nil)
	if err := h.sync(t); err != nil {
		t.Fatal(err)
	}
	tab := h.router.Current()
	if tab.Challenger.Version.Number != "2" || tab.Shadow.Version.Number != "3" || tab.Weights.Challenger != 10 {
		t.Fatalf("table %+v", tab)
	}
	reg.set(func(s *registry.State) { s.Tags[registry.TrafficTag] = `{"champion":90,"challenger":20}` })
	if err := h.sync(t); err == nil {
		t.Fatal("weights summing to 110 accepted")
	}
	if h.router.Current().Weights.Challenger != 10 {
		t.Fatal("bad weights changed the live split")
	}
}

func TestRegistryDownAtStartServesTheFallback(t *testing.T) {
	reg := newFakeRegistry("mlflow", map[string]string{"champion": "5"})
	reg.down = true
	fallback := newFakeRegistry("artifacts", map[string]string{"champion": "2"})
	h := start(t, reg, fallback)
	if err := h.sync(t); !errors.Is(err, registry.ErrUnavailable) {
		t.Fatalf("want ErrUnavailable, got %v", err)
	}
	st := h.ctrl.Status()
	if h.champion() != "2" || !st.Ready || st.Source != "artifacts" || !strings.Contains(st.Reason, "degraded") {
		t.Fatalf("champion %s, status %+v", h.champion(), st)
	}
	reg.mu.Lock()
	reg.down = false
	reg.mu.Unlock()
	if err := h.sync(t); err != nil {
		t.Fatal(err)
	}
	if st := h.ctrl.Status(); h.champion() != "5" || st.Source != "mlflow" || st.Reason != "" {
		t.Fatalf("did not converge to the registry: champion %s, status %+v", h.champion(), st)
	}
}

func TestNoChampionIsNotReady(t *testing.T) {
	reg := newFakeRegistry("mlflow", map[string]string{})
	h := start(t, reg, nil)
	if err := h.sync(t); !errors.Is(err, ErrNoChampion) {
		t.Fatalf("want ErrNoChampion, got %v", err)
	}
	if st := h.ctrl.Status(); st.Ready || !strings.Contains(st.Reason, "no champion") {
		t.Fatalf("status %+v", st)
	}
}

// metricValue sums the series of name whose labels include want.
func metricValue(t *testing.T, h *harness, name string, want map[string]string) float64 {
	t.Helper()
	mfs, err := h.registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	sum := 0.0
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			match := true
			for k, v := range want {
				match = match && labels[k] == v
			}
			if match {
				sum += m.GetCounter().GetValue() + m.GetGauge().GetValue()
			}
		}
	}
	return sum
}

// A version without reasons named champion or challenger by the registry
// itself (an alias moved in MLflow's UI, not through /admin) is refused as
// a failed load: it never decides for an applicant. It may be shadow.
func TestVersionWithoutReasonsNeverDecides(t *testing.T) {
	reg := newFakeRegistry("mlflow", map[string]string{"champion": "1"})
	h := start(t, reg, nil, func(c *Config) {
		c.AllowWithoutReasons = false
		// The fakes have no reasons table; all but the nr-* ones are
		// taken to have one.
		c.Loader.Check = func(v *models.Version, sc models.ServingCheck) error {
			if !strings.HasPrefix(v.Number, "nr-") {
				v.NoReasons = nil
			}
			return decision.ServingCheck(v, sc)
		}
	})
	if err := h.sync(t); err != nil {
		t.Fatal(err)
	}
	reg.set(func(s *registry.State) {
		s.Aliases["champion"], s.Aliases["challenger"], s.Aliases["shadow"] = "nr-2", "nr-3", "nr-4"
		s.Tags[registry.TrafficTag] = `{"champion":90,"challenger":10}`
	})
	for range 3 {
		err := h.sync(t)
		if err == nil || !strings.Contains(err.Error(), "may not be champion") || !strings.Contains(err.Error(), "may not be challenger") {
			t.Fatalf("want both refusals, got %v", err)
		}
	}
	tab := h.router.Current()
	if tab.Champion.Version.Number != "1" || tab.Challenger != nil || tab.Shadow == nil || tab.Shadow.Version.Number != "nr-4" {
		t.Fatalf("live: %v", tab.Live())
	}
	if v := metricValue(t, h, "model_load_failures_total", map[string]string{"reason": "reasons"}); v != 2 {
		t.Fatalf("model_load_failures_total{reason=reasons} = %v, want 2", v)
	}
	if n := reg.downloadsOf("nr-2"); n != 1 {
		t.Fatalf("a refused version was downloaded %d times", n)
	}
}

// registeredAgain is a registry whose registered model can be deleted and
// created again (gen): its version numbers then name other versions, as in
// MLflow, which numbers a new registered model's versions from 1.
type registeredAgain struct {
	*fakeRegistry
	gen string
}

func (r *registeredAgain) State(ctx context.Context, model string) (registry.State, error) {
	s, err := r.fakeRegistry.State(ctx, model)
	s.Generation = r.gen
	return s, err
}

func (r *registeredAgain) Identity(_ context.Context, _, version string) (string, error) {
	return r.gen + "/" + version, nil
}

// TestModelRegisteredAgainIsLoadedAgain: the registered model deleted and
// created again under the same name, with the champion alias on its own
// version 1, is another model: the server loads it, and stops serving the
// old version 1 it had loaded, without a restart.
func TestModelRegisteredAgainIsLoadedAgain(t *testing.T) {
	reg := &registeredAgain{fakeRegistry: newFakeRegistry("mlflow", map[string]string{"champion": "1"}), gen: "created-1"}
	h := start(t, reg, nil)
	if err := h.sync(t); err != nil {
		t.Fatal(err)
	}
	old := h.router.Current().Champion.Version
	reg.gen = "created-2"
	if err := h.sync(t); err != nil {
		t.Fatal(err)
	}
	if now := h.router.Current().Champion.Version; now == old || reg.downloadsOf("1") != 2 || !old.Closed() {
		t.Fatalf("after the model was registered again: the same version 1 serves (%v), %d downloads of 1, old closed %v",
			now == old, reg.downloadsOf("1"), old.Closed())
	}
	for range 2 { // and an unchanged registry does no work again
		if err := h.sync(t); err != nil {
			t.Fatal(err)
		}
	}
	if n := reg.downloadsOf("1"); n != 2 {
		t.Fatalf("version 1 downloaded %d times", n)
	}
}

// A damaged split does not take the champion with it: a server that starts
// (a new replica, a restart) serves the champion with all the traffic and
// says it is degraded, rather than serving nothing; one that serves keeps
// its split and still follows the aliases.
func TestDamagedSplitStillServesTheChampion(t *testing.T) {
	reg := newFakeRegistry("mlflow", map[string]string{"champion": "1", "challenger": "2"})
	reg.set(func(s *registry.State) { s.Tags[registry.TrafficTag] = `{"champion":90,"challenger":20}` })
	h := start(t, reg, nil)
	if err := h.sync(t); !errors.Is(err, ErrBadTraffic) {
		t.Fatalf("sync: %v, want ErrBadTraffic", err)
	}
	tab := h.router.Current()
	if tab == nil || tab.Champion.Version.Number != "1" || tab.ChallengerShare() != 0 {
		t.Fatalf("a new server with a damaged split serves %+v", tab)
	}
	if st := h.ctrl.Status(); !st.Ready || !strings.Contains(st.Reason, "degraded") {
		t.Errorf("status %+v", st)
	}
	reg.set(func(s *registry.State) { s.Aliases["champion"] = "3" })
	if err := h.sync(t); !errors.Is(err, ErrBadTraffic) || h.champion() != "3" {
		t.Fatalf("the champion moved with the split still damaged: serving %s, %v", h.champion(), err)
	}
}
