// Package metrics defines the model server's Prometheus metrics. HTTP metrics
// come from fiberprometheus; these are the ones only a model server has, with
// the labels model, version and variant so that every number says which model
// version it is about.
package metrics

import (
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Models holds the model metrics. Create it with New; it is safe for
// concurrent use.
type Models struct {
	predictions  *prometheus.CounterVec
	duration     *prometheus.HistogramVec
	probability  *prometheus.HistogramVec
	live         liveCollector
	swaps        *prometheus.CounterVec
	loadFailures *prometheus.CounterVec
	shadow       *prometheus.CounterVec
	syncSuccess  *prometheus.GaugeVec
	syncErrors   *prometheus.CounterVec
	adminActions *prometheus.CounterVec
	sessions     prometheus.Gauge
}

// New creates the model metrics and registers them with reg (tests pass a
// fresh registry, the server its own; never the global one).
func New(reg prometheus.Registerer) *Models {
	versionLabels := []string{"model", "version", "variant"}
	m := &Models{
		predictions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "model_predictions_total",
			Help: "Decisions made, by model version, variant and decision (approve/decline).",
		}, append(versionLabels, "decision")),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "model_inference_duration_seconds",
			Help:    "Time in ONNX Runtime per model run (one run may score a whole batch).",
			Buckets: []float64{.00001, .000025, .00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25},
		}, versionLabels),
		probability: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "model_prediction_probability",
			Help:    "Approval probabilities the model produced: a shift in this distribution is drift at a glance.",
			Buckets: prometheus.LinearBuckets(0.05, 0.05, 20),
		}, versionLabels),
		live: newLiveCollector(),
		sessions: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "model_sessions_open",
			Help: "Open ONNX Runtime sessions; equals the live variants' distinct versions once retired ones have drained.",
		}),
		swaps: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "model_swaps_total",
			Help: "Attempts to put a new version live in a variant, by result (success/failure).",
		}, []string{"model", "variant", "result"}),
		loadFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "model_load_failures_total",
			Help: "Versions that failed to load, by the pipeline step that failed.",
		}, []string{"model", "reason"}),
		shadow: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "model_shadow_predictions_total",
			Help: "Shadow decisions, by whether they agree with the decision served; agree=\"dropped\" counts requests the full shadow queue could not take, agree=\"error\" copies the shadow could not decide.",
		}, append(versionLabels, "agree")),
		syncSuccess: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "model_registry_sync_success",
			Help: "1 if the model's last reconciliation with the registry succeeded, else 0.",
		}, []string{"model"}),
		syncErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "model_registry_sync_errors_total",
			Help: "Reconciliations of the model with the registry that failed.",
		}, []string{"model"}),
		adminActions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "admin_actions_total",
			Help: "Admin API actions, by action and result.",
		}, []string{"action", "result"}),
	}
	reg.MustRegister(m.predictions, m.duration, m.probability, &m.live, m.swaps,
		m.loadFailures, m.shadow, m.syncSuccess, m.syncErrors, m.adminActions, m.sessions)
	return m
}

// Version is the metrics of one model version in one variant, bound to their
// labels once so that the request path does no label lookups.
type Version struct {
	approved, declined prometheus.Counter
	duration           prometheus.Observer
	probability        prometheus.Observer
	shadowAgree        prometheus.Counter
	shadowDisagree     prometheus.Counter
	shadowDropped      prometheus.Counter
	shadowError        prometheus.Counter
}

// ForVersion binds the per-version metrics.
func (m *Models) ForVersion(model, version, variant string) *Version {
	v := &Version{
		approved:    m.predictions.WithLabelValues(model, version, variant, "approve"),
		declined:    m.predictions.WithLabelValues(model, version, variant, "decline"),
		duration:    m.duration.WithLabelValues(model, version, variant),
		probability: m.probability.WithLabelValues(model, version, variant),
	}
	if variant == "shadow" { // only a shadow has agreement to report
		v.shadowAgree = m.shadow.WithLabelValues(model, version, variant, "true")
		v.shadowDisagree = m.shadow.WithLabelValues(model, version, variant, "false")
		v.shadowDropped = m.shadow.WithLabelValues(model, version, variant, "dropped")
		v.shadowError = m.shadow.WithLabelValues(model, version, variant, "error")
	}
	return v
}

// ObserveRun records the time of one model run.
func (v *Version) ObserveRun(d time.Duration) { v.duration.Observe(d.Seconds()) }

// ObserveDecision records one decision and its probability.
func (v *Version) ObserveDecision(approve bool, probability float32) {
	if approve {
		v.approved.Inc()
	} else {
		v.declined.Inc()
	}
	v.probability.Observe(float64(probability))
}

// ObserveShadow records whether a shadow decision agreed with the one served.
// Only call it on a shadow's metrics.
func (v *Version) ObserveShadow(agree bool) {
	if agree {
		v.shadowAgree.Inc()
	} else {
		v.shadowDisagree.Inc()
	}
}

// ObserveShadowDropped counts a request the shadow queue had no room for.
func (v *Version) ObserveShadowDropped() { v.shadowDropped.Inc() }

// ObserveShadowError counts a queued copy the shadow could not decide (its
// version retired meanwhile, a failed model run, a non-finite score, a failed
// record).
func (v *Version) ObserveShadowError() { v.shadowError.Inc() }

// Live describes one live variant for SetLive.
type Live struct {
	Variant, Version, SHA256 string
	Weight                   float64 // 0-1
}

// SetLive replaces the model's model_info and model_traffic_weight with its
// live table's, in one step: a scrape sees the old set or the new one, never
// a mix. Each served model has its own set.
func (m *Models) SetLive(model string, live []Live) {
	m.live.set(model, live)
}

// liveCollector reports model_info and model_traffic_weight from the last
// published snapshot.
type liveCollector struct {
	info, traffic *prometheus.Desc
	snapshot      atomic.Pointer[liveSnapshot]
}

// liveSnapshot is every served model's live variants; replaced whole.
type liveSnapshot map[string][]Live

func newLiveCollector() liveCollector {
	return liveCollector{
		info: prometheus.NewDesc("model_info",
			"1 for each live model version, with the sha256 of its ONNX file.",
			[]string{"model", "version", "variant", "sha256"}, nil),
		traffic: prometheus.NewDesc("model_traffic_weight",
			"Share of traffic (0-1) routed to each variant.",
			[]string{"model", "variant"}, nil),
	}
}

func (c *liveCollector) set(model string, live []Live) {
	for {
		old := c.snapshot.Load()
		next := liveSnapshot{}
		if old != nil {
			for k, v := range *old {
				next[k] = v
			}
		}
		next[model] = append([]Live(nil), live...)
		if c.snapshot.CompareAndSwap(old, &next) {
			return
		}
	}
}

// Describe implements prometheus.Collector.
func (c *liveCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.info
	ch <- c.traffic
}

// Collect implements prometheus.Collector.
func (c *liveCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.snapshot.Load()
	if s == nil {
		return
	}
	for model, live := range *s {
		for _, l := range live {
			ch <- prometheus.MustNewConstMetric(c.info, prometheus.GaugeValue, 1, model, l.Version, l.Variant, l.SHA256)
			ch <- prometheus.MustNewConstMetric(c.traffic, prometheus.GaugeValue, l.Weight, model, l.Variant)
		}
	}
}

// Swap counts one attempt to change a variant's version.
func (m *Models) Swap(model, variant string, ok bool) {
	m.swaps.WithLabelValues(model, variant, result(ok)).Inc()
}

// LoadFailure counts a failed version load.
func (m *Models) LoadFailure(model, reason string) {
	m.loadFailures.WithLabelValues(model, reason).Inc()
}

// Sync records the outcome of one reconciliation of the model with the
// registry.
func (m *Models) Sync(model string, ok bool) {
	// The error counter's series exists from the first sync on (at 0), so
	// increase() over it has data before anything fails.
	errs := m.syncErrors.WithLabelValues(model)
	if ok {
		m.syncSuccess.WithLabelValues(model).Set(1)
		return
	}
	m.syncSuccess.WithLabelValues(model).Set(0)
	errs.Inc()
}

// AdminAction counts one admin API action.
func (m *Models) AdminAction(action string, ok bool) {
	m.adminActions.WithLabelValues(action, result(ok)).Inc()
}

func result(ok bool) string {
	if ok {
		return "success"
	}
	return "failure"
}

// SessionOpened and SessionClosed track model_sessions_open.
func (m *Models) SessionOpened() { m.sessions.Inc() }

// SessionClosed is SessionOpened's counterpart.
func (m *Models) SessionClosed() { m.sessions.Dec() }
