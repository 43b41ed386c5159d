// Package monitoring holds no code the server runs: it is the home of the
// Prometheus configuration and alert rules (prometheus/), the Grafana
// provisioning and dashboard (grafana/) and the tests that keep them honest.
//
// The tests check that the dashboard only names the provisioned datasource,
// that every alert has firing and non-firing promtool cases, that every
// PromQL expression in the dashboard, the alert rules and README.md parses
// and returns data (Debian's prometheus scraping a live server), and that
// README.md's metrics tables name exactly the families, types and labels a
// live server exports.
package monitoring
