package record

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// Metrics are the decision record's; every series exists from the start (at
// zero), so dashboards and alerts have data before the first failure.
type Metrics struct {
	written       prometheus.Counter
	failures      prometheus.Counter
	failedRecords prometheus.Counter
	writeDuration prometheus.Histogram
	groupSize     prometheus.Histogram
	queued        prometheus.Gauge
	up            prometheus.Gauge
	purged        prometheus.Counter
	purgeRuns     *prometheus.CounterVec
	indexed       prometheus.Counter
	indexBacklog  prometheus.Gauge
	indexFailures prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, backend string) *Metrics {
	labels := prometheus.Labels{"backend": backend}
	m := &Metrics{
		written: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "decision_records_written_total", ConstLabels: labels,
			Help: "Decisions written to the decision record (served and shadow).",
		}),
		failures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "decision_record_write_failures_total", ConstLabels: labels,
			Help: "Commits to the decision record that failed; their requests were answered 503 record_unavailable.",
		}),
		failedRecords: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "decision_record_failed_decisions_total", ConstLabels: labels,
			Help: "Decisions that could not be recorded (and so were not answered).",
		}),
		writeDuration: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "decision_record_write_duration_seconds", ConstLabels: labels,
			Help:    "Time of one group commit to the decision record (SQLite: its journal frame and fsync; PostgreSQL: the insert and commit).",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5},
		}),
		groupSize: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "decision_record_group_size", ConstLabels: labels,
			Help:    "Decisions per commit: how many requests share one fsync.",
			Buckets: []float64{1, 2, 4, 8, 16, 32, 64, 128, 256, 1024, 4096, 16384},
		}),
		queued: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "decision_record_queue_depth", ConstLabels: labels,
			Help: "Decisions waiting to be written to the decision record.",
		}),
		up: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "decision_record_up", ConstLabels: labels,
			Help: "1 while the decision record takes writes, 0 while decisions are refused because it does not.",
		}),
		purged: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "decision_records_purged_total", ConstLabels: labels,
			Help: "Decisions deleted by the retention purge (never those under legal hold).",
		}),
		purgeRuns: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "decision_record_purge_runs_total", ConstLabels: labels,
			Help: "Retention purge runs, by result.",
		}, []string{"result"}),
		indexed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "decision_record_indexed_total", ConstLabels: labels,
			Help: "Decisions of batches added to the application index after their commit.",
		}),
		indexBacklog: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "decision_record_index_backlog", ConstLabels: labels,
			Help: "Recorded decisions not yet in the application index (lookups find them by scanning).",
		}),
		indexFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "decision_record_index_failures_total", ConstLabels: labels,
			Help: "Indexing steps that failed (retried every second).",
		}),
	}
	m.up.Set(1)
	m.purgeRuns.WithLabelValues("success")
	m.purgeRuns.WithLabelValues("failure")
	if reg != nil {
		reg.MustRegister(m.written, m.failures, m.failedRecords, m.writeDuration, m.groupSize,
			m.queued, m.up, m.purged, m.purgeRuns, m.indexed, m.indexBacklog, m.indexFailures)
	}
	return m
}

// registerJournal adds the SQLite journal's backlog, read when scraped.
func registerJournal(reg prometheus.Registerer, backend string, backlog func() int) {
	if reg == nil {
		return
	}
	reg.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{
		Name: "decision_record_journal_backlog_bytes", ConstLabels: prometheus.Labels{"backend": backend},
		Help: fmt.Sprintf("Commits the SQLite journal holds that the database does not yet (loaded every %s; past %d MiB commits wait).",
			loadEvery, maxLoadBacklog>>20),
	}, func() float64 { return float64(backlog()) }))
}
