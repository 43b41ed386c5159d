// Command report turns the results directory bench/run.sh fills into
// BENCHMARKS.md: the machine, the targets with what was reached, the
// side-by-side table with MLflow's scoring server, swap and soak figures,
// the micro-benchmarks and the CPU profile with bench/notes.md. Stages of
// bench/run.sh may add rows to the targets table (results/targets/*.md) and
// sections of their own (results/sections/*.md), put in as they are, in
// file-name order.
//
//	report -results DIR -notes bench/notes.md -out BENCHMARKS.md
package main

import (
	"bufio"
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// result mirrors the fields of loadgen's Result that the report uses.
type result struct {
	Label        string         `json:"label"`
	Mode         string         `json:"mode"`
	Connections  int            `json:"connections"`
	Rate         float64        `json:"rate"`
	Seconds      float64        `json:"seconds"`
	Requests     int            `json:"requests"`
	Errors       int            `json:"errors"`
	ErrorKinds   map[string]int `json:"error_kinds"`
	RPS          float64        `json:"rps"`
	RowsPerSec   float64        `json:"rows_per_s"`
	P50          float64        `json:"p50_ms"`
	P95          float64        `json:"p95_ms"`
	P99          float64        `json:"p99_ms"`
	P999         float64        `json:"p999_ms"`
	Max          float64        `json:"max_ms"`
	Late         int            `json:"late"`
	Promotes     int            `json:"promotes"`
	PromoteErrs  int            `json:"promote_errors"`
	PromoteMax   float64        `json:"promote_max_ms"`
	SwapRequests int            `json:"swap_requests"`
	SwapP99      float64        `json:"swap_p99_ms"`
	SteadyP99    float64        `json:"steady_p99_ms"`
	Samples      []sample       `json:"samples"`
}

type sample struct {
	At         float64 `json:"at_s"`
	RSS        float64 `json:"rss_bytes"`
	Goroutines float64 `json:"goroutines"`
	Sessions   float64 `json:"sessions_open"`
	Live       float64 `json:"live_versions"`
}

type report struct {
	dir     string
	results map[string]*result
	machine map[string]string
	b       strings.Builder
}

func main() {
	dir := flag.String("results", "", "results directory written by bench/run.sh")
	notes := flag.String("notes", "", "markdown appended to the profile section")
	out := flag.String("out", "BENCHMARKS.md", "output file")
	flag.Parse()
	r := &report{dir: *dir, results: map[string]*result{}, machine: map[string]string{}}
	if err := r.load(); err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(1)
	}
	r.write(*notes)
	if err := os.WriteFile(*out, []byte(r.b.String()), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(1)
	}
}

func (r *report) load() error {
	files, err := filepath.Glob(filepath.Join(r.dir, "*.json"))
	if err != nil {
		return err
	}
	for _, f := range files {
		raw, err := os.ReadFile(f)
		if err != nil {
			return err
		}
		var res result
		if json.Unmarshal(raw, &res) == nil && res.Label != "" {
			r.results[res.Label] = &res
		}
	}
	for _, line := range strings.Split(r.text("machine.txt"), "\n") {
		if k, v, ok := strings.Cut(line, "="); ok {
			r.machine[k] = v
		}
	}
	return nil
}

func (r *report) text(name string) string {
	raw, err := os.ReadFile(filepath.Join(r.dir, name))
	if err != nil {
		return ""
	}
	return strings.TrimRight(string(raw), "\n")
}

func (r *report) p(format string, args ...any) { fmt.Fprintf(&r.b, format+"\n", args...) }

func (r *report) get(label string) *result {
	if res, ok := r.results[label]; ok {
		return res
	}
	return &result{Label: label}
}

func yes(ok bool) string {
	if ok {
		return "**met**"
	}
	return "**not met**"
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return math.NaN()
	}
	return a / b
}

func (r *report) write(notesPath string) {
	m := r.machine
	r.p("# Benchmarks")
	r.p("")
	r.p("Written by `make bench` (`bench/run.sh`); every figure below comes from the run described here. Everything runs on loopback on the")
	r.p("same machine: servers and the load generator share its cores.")
	r.p("")
	r.p("| | |")
	r.p("|---|---|")
	r.p("| machine | %s cores (`nproc`), %s, %s RAM, Linux %s |", m["nproc"], m["cpu"], m["mem"], m["kernel"])
	r.p("| date | %s |", m["date"])
	r.p("| commit | `%s` |", m["commit"])
	r.p("| command | `%s` |", m["command"])
	r.p("| software | %s, ONNX Runtime %s, MLflow %s (`mlflow models serve --env-manager local --workers %s`) |", m["go"], m["onnxruntime"], m["mlflow"], m["mlflow_workers"])
	r.p("| model | `loan-approval` version 2 (random forest, 150 trees, depth ≤ 10) from a throwaway MLflow server, registered from `artifacts/` the way the notebook registers; both servers load it from that registry |")
	if st := r.stages(); st != "" {
		r.p("| stages | %s |", st)
	}
	r.p("| load | `bench/loadgen`: fasthttp's HostClient over keep-alive connections, 1,000 distinct seeded applications sent in turn (`bench/bodies`), every 200 body checked; closed loop unless a rate is given; open loop measures from the time each request was due (no coordinated omission); 2 s warm-up not counted |")
	r.p("")
	if a := r.text("agreement.json"); a != "" {
		r.p("Before timing, both servers scored the same 1,000 applications: `%s` (labels equal, max |Δp|).", a)
		r.p("")
	}

	c32, f32, ml32 := r.get("ours-c32"), r.get("floor-c32"), r.get("mlflow-c32")
	rate := r.get("ours-rate")
	b2, b1 := r.get("ours-batch-v2"), r.get("ours-batch-v1")
	sw, st := r.get("swap"), r.get("swap-steady")
	r.p("## Targets")
	r.p("")
	r.p("| target | goal | reached | |")
	r.p("|---|---|---|---|")
	r.p("| predictions/s, 32 connections | ≥ 20,000 | %.0f | %s |", c32.RPS, yes(c32.RPS >= 20000 && c32.Errors == 0))
	r.p("| p99 at a fixed %.0f req/s | ≤ 2 ms | %.2f ms (p50 %.2f, p99.9 %.2f) | %s |", rate.Rate, rate.P99, rate.P50, rate.P999, yes(rate.P99 <= 2 && rate.Errors == 0))
	r.p("| batch rows/s (champion v2, random forest) | ≥ 500,000 | %.0f | %s |", b2.RowsPerSec, yes(b2.RowsPerSec >= 500000))
	r.p("| batch rows/s (v1, logistic regression) | ≥ 500,000 | %.0f | %s |", b1.RowsPerSec, yes(b1.RowsPerSec >= 500000))
	share := ratio(c32.RPS, f32.RPS)
	r.p("| share of the bare-Fiber floor, 32 connections | ≥ 40%% | %.0f%% (%.0f of %.0f req/s) | %s |", 100*share, c32.RPS, f32.RPS, yes(share >= 0.4))
	x := ratio(c32.RPS, ml32.RPS)
	r.p("| throughput vs `mlflow models serve`, 32 connections | ≥ 30× | %.1f× | %s |", x, yes(x >= 30))
	lower := true
	for _, c := range []string{"c1", "c8", "c32"} {
		lower = lower && r.get("ours-"+c).P99 < r.get("mlflow-"+c).P99 && r.get("ours-"+c).P99 > 0
	}
	r.p("| lower p99 than MLflow at 1, 8 and 32 connections | every level | see below | %s |", yes(lower))
	swapOK := sw.Errors == 0 && sw.PromoteErrs == 0 && sw.Promotes > 0 && sw.SwapP99 <= 2*st.P99
	r.p("| swap under load: errors; p99 during swaps vs steady | 0; ≤ 2× | %d errors, %d/%d promotes ok; %.2f ms vs %.2f ms (%.2f×) | %s |",
		sw.Errors, sw.Promotes-sw.PromoteErrs, sw.Promotes, sw.SwapP99, st.P99, ratio(sw.SwapP99, st.P99), yes(swapOK))
	offP99, onP99, pairs := r.shadowCost()
	r.p("| p99 at a fixed %.0f req/s with a shadow vs without (mean of %d alternating pairs) | ≤ +10%% | %.2f ms vs %.2f ms (%+.0f%%) | %s |",
		rate.Rate, pairs, onP99, offP99, 100*(ratio(onP99, offP99)-1), yes(pairs > 0 && onP99 <= 1.10*offP99))
	soakLine, soakOK := r.soakSummary()
	r.p("| soak: RSS and goroutines flat ±10%% after warm-up; sessions = live versions | flat; equal | %s | %s |", soakLine, yes(soakOK))
	for _, rows := range r.parts("targets") {
		r.p("%s", rows)
	}
	r.p("")

	r.p("## `/v1/predict` side by side with `mlflow models serve`")
	r.p("")
	r.p("Same applications (ours: our JSON; MLflow: `/invocations` with `dataframe_split`, one row), same load generator, closed loop, %s s each.", trim(c32.Seconds))
	r.p("")
	r.p("| connections | ours req/s | p50 / p95 / p99 ms | MLflow req/s | p50 / p95 / p99 ms | throughput × | p99 MLflow ÷ ours | floor req/s | ours ÷ floor |")
	r.p("|---|---|---|---|---|---|---|---|---|")
	for _, c := range []string{"1", "8", "32"} {
		o, ml, fl := r.get("ours-c"+c), r.get("mlflow-c"+c), r.get("floor-c"+c)
		r.p("| %s | %.0f | %.3f / %.3f / %.3f | %.0f | %.2f / %.2f / %.2f | %.1f× | %.1f× | %.0f | %.0f%% |", c,
			o.RPS, o.P50, o.P95, o.P99, ml.RPS, ml.P50, ml.P95, ml.P99, ratio(o.RPS, ml.RPS), ratio(ml.P99, o.P99), fl.RPS, 100*ratio(o.RPS, fl.RPS))
	}
	r.p("")
	errs := []string{}
	for _, l := range sortedKeys(r.results) {
		if e := r.results[l]; e.Errors > 0 {
			errs = append(errs, fmt.Sprintf("%s: %d %v", l, e.Errors, e.ErrorKinds))
		}
	}
	if len(errs) == 0 {
		r.p("No run had an error (every response 200 with the expected body).")
	} else {
		r.p("Errors: %s.", strings.Join(errs, "; "))
	}
	r.p("")
	r.p("Fixed rate: %.0f req/s for %s s over 32 connections, open loop: p50 %.3f, p95 %.3f, p99 %.3f, p99.9 %.3f, max %.2f ms; %d requests sent more than 1 ms late (all connections busy).",
		rate.Rate, trim(rate.Seconds), rate.P50, rate.P95, rate.P99, rate.P999, rate.Max, rate.Late)
	r.p("")
	r.p("### Batch")
	r.p("")
	r.p("1,000 applications a request, 2 connections.")
	r.p("")
	r.p("| server | model | rows/s | requests/s | p50 / p99 ms |")
	r.p("|---|---|---|---|---|")
	for _, row := range []struct{ label, server, model string }{
		{"ours-batch-v2", "ours `/v1/predict/batch`", "v2 random forest"},
		{"mlflow-batch-v2", "MLflow `/invocations`", "v2 random forest"},
		{"ours-batch-v1", "ours `/v1/predict/batch`", "v1 logistic regression"},
	} {
		e := r.get(row.label)
		r.p("| %s | %s | %.0f | %.1f | %.1f / %.1f |", row.server, row.model, e.RowsPerSec, e.RPS, e.P50, e.P99)
	}
	r.p("")
	r.p("Ours ÷ MLflow on batch (v2): %.1f×.", ratio(b2.RowsPerSec, r.get("mlflow-batch-v2").RowsPerSec))
	r.p("")

	r.p("## Shadow cost")
	r.p("")
	r.p("The fixed-rate run repeated in alternating pairs, without and with a shadow (version 1 mirrored off the request path through the bounded queue):")
	r.p("")
	r.p("| pair | without: p50 / p99 ms | with: p50 / p99 ms |")
	r.p("|---|---|---|")
	for i := 1; ; i++ {
		off, on := r.results[fmt.Sprintf("shadow-off-%d", i)], r.results[fmt.Sprintf("shadow-on-%d", i)]
		if off == nil || on == nil {
			break
		}
		r.p("| %d | %.3f / %.3f | %.3f / %.3f |", i, off.P50, off.P99, on.P50, on.P99)
	}
	r.p("")
	if m := r.text("shadow-metrics.txt"); m != "" {
		r.p("Shadow decisions recorded by the server:")
		r.p("")
		r.p("```")
		r.p("%s", strings.TrimSpace(m))
		r.p("```")
		r.p("")
	}

	r.p("## Swap under load")
	r.p("")
	r.p("Our server in MLflow mode, %.0f req/s open loop over 32 connections; `POST /admin/promote` every 5 s alternating versions 1 and 2 (each promote moves the `champion` alias in MLflow, loads and verifies the version, swaps, retires the old session).", sw.Rate)
	r.p("")
	r.p("| run | s | requests | errors | p50 | p99 | p99.9 | max (ms) |")
	r.p("|---|---|---|---|---|---|---|---|")
	for _, e := range []*result{st, sw} {
		r.p("| %s | %s | %d | %d | %.3f | %.3f | %.3f | %.2f |", e.Label, trim(e.Seconds), e.Requests, e.Errors, e.P50, e.P99, e.P999, e.Max)
	}
	r.p("")
	r.p("In the swap run: %d promotes (%d failed, slowest %.0f ms); %d requests were due within 1 s after a promote was sent: their p99 %.3f ms; the other requests' p99 %.3f ms.",
		sw.Promotes, sw.PromoteErrs, sw.PromoteMax, sw.SwapRequests, sw.SwapP99, sw.SteadyP99)
	r.p("")

	r.p("## Soak")
	r.p("")
	r.writeSoak()

	for _, sec := range r.parts("sections") {
		r.p("%s", sec)
		r.p("")
	}

	r.p("## Go micro-benchmarks")
	r.p("")
	r.p("`go test -run '^$' -bench . -benchmem -benchtime 2s ./bench` (one process; rows/s is rows scored per second of one core).")
	r.p("")
	r.p("```")
	r.p("%s", r.text("micro.txt"))
	r.p("```")
	r.p("")

	r.p("## CPU profile of `/v1/predict`")
	r.p("")
	r.p("Taken on the in-process harness (`BenchmarkPredictHTTP`: the real Fiber app, decoder, router, ONNX Runtime session, metrics and encoder on an in-memory listener, parallel clients), so the profile holds the server's work only. Top 30 by own time:")
	r.p("")
	r.p("```")
	r.p("%s", r.text("profile-flat.txt"))
	r.p("```")
	r.p("")
	if notes, err := os.ReadFile(notesPath); err == nil {
		r.p("%s", strings.TrimRight(string(notes), "\n"))
		r.p("")
	}
	if f := r.text("fuzz.txt"); f != "" {
		r.p("## Fuzzing")
		r.p("")
		r.p("```")
		r.p("%s", f)
		r.p("```")
	}
}

// parts is the text of each results/DIR/*.md, in file-name order, trimmed.
func (r *report) parts(dir string) []string {
	files, _ := filepath.Glob(filepath.Join(r.dir, dir, "*.md"))
	slices.Sort(files)
	var out []string
	for _, f := range files {
		if raw, err := os.ReadFile(f); err == nil && len(strings.TrimSpace(string(raw))) > 0 {
			out = append(out, strings.TrimSpace(string(raw)))
		}
	}
	return out
}

// stages summarises results/stages.txt ("NAME ok|failed SECONDS" lines).
func (r *report) stages() string {
	var ran, failed []string
	for _, line := range strings.Split(r.text("stages.txt"), "\n") {
		f := strings.Fields(line)
		if len(f) != 3 || (f[1] != "ok" && f[1] != "failed") {
			continue
		}
		ran = append(ran, fmt.Sprintf("%s %s s", f[0], f[2]))
		if f[1] != "ok" {
			failed = append(failed, f[0])
		}
	}
	if len(ran) == 0 {
		return ""
	}
	s := strings.Join(ran, ", ")
	if len(failed) > 0 {
		s += "; **failed: " + strings.Join(failed, ", ") + "**"
	}
	return s
}

func trim(f float64) string { return strings.TrimSuffix(fmt.Sprintf("%.1f", f), ".0") }

func sortedKeys(m map[string]*result) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// shadowCost is the mean p99 of the fixed-rate runs without and with a shadow.
func (r *report) shadowCost() (off, on float64, pairs int) {
	for i := 1; ; i++ {
		o, n := r.results[fmt.Sprintf("shadow-off-%d", i)], r.results[fmt.Sprintf("shadow-on-%d", i)]
		if o == nil || n == nil {
			break
		}
		off += o.P99
		on += n.P99
		pairs++
	}
	if pairs > 0 {
		off, on = off/float64(pairs), on/float64(pairs)
	}
	return off, on, pairs
}

// afterWarmup is the soak's samples past its warm-up, the first half of the
// run: new ONNX Runtime sessions every swap grow the allocator's arenas for
// minutes before they level off (see BENCHMARKS.md's soak plot of RSS).
func afterWarmup(s *result) []sample {
	warm := s.Seconds / 2
	var out []sample
	for _, x := range s.Samples {
		if x.At >= warm {
			out = append(out, x)
		}
	}
	return out
}

func spread(xs []float64) (lo, med, hi float64) {
	if len(xs) == 0 {
		return 0, 0, 0
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[0], s[len(s)/2], s[len(s)-1]
}

func within(lo, med, hi, tol float64) bool {
	return med > 0 && lo >= med*(1-tol) && hi <= med*(1+tol)
}

func (r *report) soakSeries() (rss, gor []float64, equal, n int) {
	s := r.get("soak")
	for _, x := range afterWarmup(s) {
		rss = append(rss, x.RSS)
		gor = append(gor, x.Goroutines)
		if x.Sessions == x.Live {
			equal++
		}
		n++
	}
	return
}

func (r *report) soakSummary() (string, bool) {
	rss, gor, equal, n := r.soakSeries()
	if n == 0 {
		return "not run", false
	}
	rl, rm, rh := spread(rss)
	gl, gm, gh := spread(gor)
	after := r.text("soak-after.txt")
	sessions, live := metricValue(after, "model_sessions_open"), countPrefix(after, "model_info{")
	ok := within(rl, rm, rh, 0.10) && within(gl, gm, gh, 0.10) && sessions == float64(live) && r.get("soak").Errors == 0
	return fmt.Sprintf("RSS %.0f–%.0f MiB (median %.0f), goroutines %.0f–%.0f (median %.0f); sessions = live in %d/%d samples, %0.f = %d after", rl/(1<<20), rh/(1<<20), rm/(1<<20), gl, gh, gm, equal, n, sessions, live), ok
}

func (r *report) writeSoak() {
	s := r.get("soak")
	if len(s.Samples) == 0 {
		r.p("Not run.")
		r.p("")
		return
	}
	r.p("%s s at %.0f req/s (32 connections, open loop), `POST /admin/promote` every 30 s alternating 1 and 2 (%d promotes, %d failed); `/metrics` read every 10 s. Requests: %d, errors %d, p50 %.3f, p99 %.3f, max %.2f ms.",
		trim(s.Seconds), s.Rate, s.Promotes, s.PromoteErrs, s.Requests, s.Errors, s.P50, s.P99, s.Max)
	r.p("")
	line, ok := r.soakSummary()
	r.p("After warm-up (the first half of the run): %s — %s.", line, yes(ok))
	r.p("`model_sessions_open` counts open ONNX Runtime sessions; live versions are the `model_info` series (one per live variant). They may differ for a moment while a retired session drains its in-flight requests.")
	r.p("")
	r.p("| t (s) | RSS (MiB) | goroutines | sessions open | live versions |")
	r.p("|---|---|---|---|---|")
	step := max(1, len(s.Samples)/20)
	for i, x := range s.Samples {
		if i%step == 0 || i == len(s.Samples)-1 {
			r.p("| %.0f | %.1f | %.0f | %.0f | %.0f |", x.At, x.RSS/(1<<20), x.Goroutines, x.Sessions, x.Live)
		}
	}
	r.p("")
	live, retired := r.text("log-live.txt"), r.text("log-retired.txt")
	r.p("Server log over the whole run: %s \"model version live\" lines, %s \"model version retired\" lines.", live, retired)
	r.p("")
}

func metricValue(text, name string) float64 {
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 2 && f[0] == name {
			var v float64
			fmt.Sscan(f[1], &v)
			return v
		}
	}
	return math.NaN()
}

func countPrefix(text, prefix string) int {
	n := 0
	for _, l := range strings.Split(text, "\n") {
		if strings.HasPrefix(l, prefix) && !strings.HasSuffix(l, " 0") {
			n++
		}
	}
	return n
}
