// Command loadgen is the benchmark's HTTP load generator. It sends through
// fasthttp's HostClient (-c keep-alive connections, no retries, no
// per-request allocation) to keep its own cost low on a 2-core machine shared
// with the server under test, and it sends only to loopback addresses.
//
// Two modes:
//
//   - closed loop (-rate 0): each of -c connections sends its next request as
//     soon as the previous answer is read; the result is throughput.
//   - open loop (-rate R): requests are due at fixed times (start + i/R)
//     whatever happens to earlier ones, and each latency is measured from the
//     time the request was due, not from when a connection became free, so a
//     stall shows up in the percentiles instead of hiding in a lower send
//     rate (no coordinated omission).
//
// While it runs it may promote versions through the admin API at a fixed
// period (-promote-every) and sample the server's /metrics (-metrics-every).
// It prints one JSON object (see Result) and exits 0 unless the run itself
// could not be done; errors are counted in the result for the caller to judge.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/valyala/fasthttp"
)

// Result is what one run prints.
type Result struct {
	Label       string         `json:"label"`
	URL         string         `json:"url"`
	Mode        string         `json:"mode"` // closed | open
	Connections int            `json:"connections"`
	Rate        float64        `json:"rate,omitempty"`
	Seconds     float64        `json:"seconds"` // measured window, warm-up excluded
	Requests    int            `json:"requests"`
	Errors      int            `json:"errors"`
	ErrorKinds  map[string]int `json:"error_kinds,omitempty"`
	RowsPerReq  int            `json:"rows_per_request"`
	RPS         float64        `json:"rps"`
	RowsPerSec  float64        `json:"rows_per_s"`
	P50ms       float64        `json:"p50_ms"`
	P95ms       float64        `json:"p95_ms"`
	P99ms       float64        `json:"p99_ms"`
	P999ms      float64        `json:"p999_ms"`
	Maxms       float64        `json:"max_ms"`
	// Late counts open-loop requests that were sent more than 1 ms after
	// they were due (every connection busy): the generator or the server
	// could not keep the rate.
	Late int `json:"late,omitempty"`

	Promotes      int     `json:"promotes,omitempty"`
	PromoteErrors int     `json:"promote_errors,omitempty"`
	PromoteMaxms  float64 `json:"promote_max_ms,omitempty"`
	// SwapP99ms is the p99 of requests due within -swap-window after a
	// promote was sent; SteadyP99ms the p99 of all others.
	SwapRequests int     `json:"swap_requests,omitempty"`
	SwapP99ms    float64 `json:"swap_p99_ms,omitempty"`
	SteadyP99ms  float64 `json:"steady_p99_ms,omitempty"`

	Samples []Sample `json:"samples,omitempty"`
}

// Sample is one scrape of the server's /metrics.
type Sample struct {
	AtSeconds  float64 `json:"at_s"`
	RSSBytes   float64 `json:"rss_bytes"`
	Goroutines float64 `json:"goroutines"`
	Sessions   float64 `json:"sessions_open"`
	Live       float64 `json:"live_versions"`
}

type options struct {
	target       *url.URL
	bodies       [][]byte
	headers      []header
	conns        int
	duration     time.Duration
	warmup       time.Duration
	rate         float64
	rows         int
	expect       string
	timeout      time.Duration
	label        string
	promoteURL   string
	token        string
	versions     []string
	promoteEvery time.Duration
	swapWindow   time.Duration
	metricsURL   string
	metricsEvery time.Duration
}

func main() {
	if err := run(os.Args[1:], os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(2)
	}
}

func run(args []string, stdout io.Writer) error {
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	var o options
	rawURL := fs.String("url", "", "target URL (loopback only), e.g. http://127.0.0.1:8000/v1/predict")
	bodiesFile := fs.String("bodies", "", "file with one JSON request body per line, sent in turn")
	raw := fs.Bool("raw", false, "the -bodies file is one body sent as it is (binary tensors), not one body a line")
	fs.Func("header", "extra request header `Name: value` (repeatable), e.g. Inference-Header-Content-Length: 120", func(v string) error {
		name, value, ok := strings.Cut(v, ":")
		if !ok || strings.TrimSpace(name) == "" {
			return fmt.Errorf("-header %q: want Name: value", v)
		}
		o.headers = append(o.headers, header{strings.TrimSpace(name), strings.TrimSpace(value)})
		return nil
	})
	fs.IntVar(&o.conns, "c", 1, "connections")
	fs.DurationVar(&o.duration, "d", 10*time.Second, "measured duration")
	fs.DurationVar(&o.warmup, "warmup", 2*time.Second, "load sent before measuring (not counted)")
	fs.Float64Var(&o.rate, "rate", 0, "requests per second, open loop; 0 = closed loop")
	fs.IntVar(&o.rows, "rows", 1, "applications per request, for rows/s")
	fs.StringVar(&o.expect, "expect", "", "a 200 body must contain this string")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Second, "per-request timeout")
	fs.StringVar(&o.label, "label", "", "label copied into the result")
	fs.StringVar(&o.promoteURL, "promote-url", "", "admin promote URL; with -promote-every")
	fs.StringVar(&o.token, "admin-token", os.Getenv("SERVE_ADMIN_TOKEN"), "admin bearer token")
	versions := fs.String("promote-versions", "1,2", "versions promoted in turn")
	fs.DurationVar(&o.promoteEvery, "promote-every", 0, "promote period; 0 = no promotes")
	fs.DurationVar(&o.swapWindow, "swap-window", time.Second, "requests due this long after a promote count as 'during swap'")
	fs.StringVar(&o.metricsURL, "metrics-url", "", "server /metrics URL to sample")
	fs.DurationVar(&o.metricsEvery, "metrics-every", 0, "sampling period for -metrics-url")
	if err := fs.Parse(args); err != nil {
		return err
	}
	u, err := url.Parse(*rawURL)
	if err != nil || u.Scheme != "http" || u.Host == "" {
		return fmt.Errorf("-url %q: need http://127.0.0.1:PORT/path", *rawURL)
	}
	if err := loopbackOnly(u.Host); err != nil {
		return err
	}
	o.target = u
	if o.bodies, err = readBodies(*bodiesFile, *raw); err != nil {
		return err
	}
	if o.conns < 1 || o.duration <= 0 {
		return errors.New("-c must be ≥ 1 and -d > 0")
	}
	for _, v := range strings.Split(*versions, ",") {
		if v = strings.TrimSpace(v); v != "" {
			o.versions = append(o.versions, v)
		}
	}
	for _, extra := range []string{o.promoteURL, o.metricsURL} {
		if extra == "" {
			continue
		}
		eu, err := url.Parse(extra)
		if err != nil {
			return err
		}
		if err := loopbackOnly(eu.Host); err != nil {
			return err
		}
	}
	o.label = strings.TrimSpace(o.label)
	res, err := load(o)
	if err != nil {
		return err
	}
	enc := json.NewEncoder(stdout)
	return enc.Encode(res)
}

func loopbackOnly(host string) error {
	h, _, err := net.SplitHostPort(host)
	if err != nil {
		h = host
	}
	if h == "localhost" {
		return nil
	}
	ip := net.ParseIP(h)
	if ip == nil || !ip.IsLoopback() {
		return fmt.Errorf("target %q is not a loopback address; this tool only loads 127.0.0.0/8 or ::1", host)
	}
	return nil
}

// header is one extra request header (-header).
type header struct{ name, value string }

func readBodies(path string, whole bool) ([][]byte, error) {
	if path == "" {
		return nil, errors.New("-bodies is required")
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	if whole {
		if len(raw) == 0 {
			return nil, fmt.Errorf("%s is empty", path)
		}
		return [][]byte{raw}, nil
	}
	var out [][]byte
	for _, line := range bytes.Split(raw, []byte("\n")) {
		if line = bytes.TrimSpace(line); len(line) > 0 {
			out = append(out, line)
		}
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("%s has no bodies", path)
	}
	return out, nil
}

// recorder holds one connection's latencies (ns) and when each request was due (ns after start).
type recorder struct {
	lat  []int64
	due  []int64
	errs map[string]int
	late int
}

func (r *recorder) fail(kind string) {
	if r.errs == nil {
		r.errs = map[string]int{}
	}
	r.errs[kind]++
}

func load(o options) (*Result, error) {
	client := newClient(o)
	start := time.Now().Add(50 * time.Millisecond)
	end := start.Add(o.warmup + o.duration)
	measureFrom := int64(o.warmup)
	var ticket atomic.Int64
	interval := 0.0
	if o.rate > 0 {
		interval = float64(time.Second) / o.rate
	}

	recs := make([]*recorder, o.conns)
	var wg sync.WaitGroup
	for w := 0; w < o.conns; w++ {
		rec := &recorder{}
		recs[w] = rec
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			req, resp := fasthttp.AcquireRequest(), fasthttp.AcquireResponse()
			defer fasthttp.ReleaseRequest(req)
			defer fasthttp.ReleaseResponse(resp)
			prepare(req, o.target, o.headers)
			i := w
			for {
				var due time.Time
				if interval > 0 {
					n := ticket.Add(1) - 1
					due = start.Add(time.Duration(float64(n) * interval))
					if !due.Before(end) {
						return
					}
					if d := time.Until(due); d > 0 {
						sleepPrecise(d)
					} else if d < -time.Millisecond {
						rec.late++
					}
				} else {
					due = time.Now()
					if due.Before(start) {
						time.Sleep(start.Sub(due))
						due = time.Now()
					}
					if !due.Before(end) {
						return
					}
				}
				req.SetBodyRaw(o.bodies[i%len(o.bodies)])
				i += o.conns
				err := client.DoTimeout(req, resp, o.timeout)
				done := time.Now()
				status, body := resp.StatusCode(), resp.Body()
				offset := int64(due.Sub(start))
				if offset < measureFrom {
					continue
				}
				switch {
				case err != nil:
					rec.fail(errKind(err))
				case status != 200:
					rec.fail("http_" + strconv.Itoa(status))
				case o.expect != "" && !bytes.Contains(body, []byte(o.expect)):
					rec.fail("unexpected_body")
				default:
					rec.lat = append(rec.lat, int64(done.Sub(due)))
					rec.due = append(rec.due, offset)
				}
			}
		}(w)
	}

	stop := make(chan struct{})
	var side sync.WaitGroup
	var promoteAt []int64
	var promoteErrs int
	var promoteMax time.Duration
	if o.promoteEvery > 0 && o.promoteURL != "" {
		side.Add(1)
		// A fresh connection per promote: between promotes 30 s apart a
		// kept-alive connection went stale once in a soak (reset by peer).
		client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
		n := 0
		go every(&side, stop, end, o.promoteEvery, func(time.Time) {
			v := o.versions[n%len(o.versions)]
			n++
			body := fmt.Sprintf(`{"version":%q}`, v)
			req, _ := http.NewRequest(http.MethodPost, o.promoteURL, strings.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+o.token)
			t0 := time.Now()
			resp, err := client.Do(req)
			took := time.Since(t0)
			promoteMax = max(promoteMax, took)
			promoteAt = append(promoteAt, int64(t0.Sub(start)))
			if err != nil {
				promoteErrs++
				fmt.Fprintf(os.Stderr, "loadgen: promote %s: %v\n", v, err)
				return
			}
			msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			if resp.StatusCode != 200 {
				promoteErrs++
				fmt.Fprintf(os.Stderr, "loadgen: promote %s: %d %s\n", v, resp.StatusCode, msg)
			}
		})
	}
	var samples []Sample
	if o.metricsEvery > 0 && o.metricsURL != "" {
		side.Add(1)
		client := &http.Client{Timeout: 10 * time.Second}
		go every(&side, stop, end, o.metricsEvery, func(now time.Time) {
			if s, err := scrape(client, o.metricsURL); err == nil {
				s.AtSeconds = now.Sub(start).Seconds()
				samples = append(samples, s)
			} else {
				fmt.Fprintf(os.Stderr, "loadgen: scrape: %v\n", err)
			}
		})
	}
	wg.Wait()
	close(stop)
	side.Wait()

	res := &Result{Label: o.label, URL: o.target.String(), Connections: o.conns, Rate: o.rate,
		RowsPerReq: o.rows, Seconds: o.duration.Seconds(), Mode: "closed",
		Promotes: len(promoteAt), PromoteErrors: promoteErrs, PromoteMaxms: ms(int64(promoteMax)), Samples: samples}
	if o.rate > 0 {
		res.Mode = "open"
	}
	var all, swap, steady []int64
	for _, r := range recs {
		all = append(all, r.lat...)
		res.Late += r.late
		for k, n := range r.errs {
			if res.ErrorKinds == nil {
				res.ErrorKinds = map[string]int{}
			}
			res.ErrorKinds[k] += n
			res.Errors += n
		}
		if len(promoteAt) > 0 {
			for i, d := range r.due {
				if duringSwap(d, promoteAt, int64(o.swapWindow)) {
					swap = append(swap, r.lat[i])
				} else {
					steady = append(steady, r.lat[i])
				}
			}
		}
	}
	res.Requests = len(all) + res.Errors
	res.RPS = float64(len(all)) / o.duration.Seconds()
	res.RowsPerSec = res.RPS * float64(o.rows)
	slices.Sort(all)
	res.P50ms, res.P95ms, res.P99ms, res.P999ms = pct(all, 50), pct(all, 95), pct(all, 99), pct(all, 99.9)
	if len(all) > 0 {
		res.Maxms = ms(all[len(all)-1])
	}
	if len(promoteAt) > 0 {
		slices.Sort(swap)
		slices.Sort(steady)
		res.SwapRequests = len(swap)
		res.SwapP99ms, res.SteadyP99ms = pct(swap, 99), pct(steady, 99)
	}
	return res, nil
}

func duringSwap(due int64, promotes []int64, window int64) bool {
	for _, p := range promotes {
		if due >= p && due < p+window {
			return true
		}
	}
	return false
}

func pct(sorted []int64, p float64) float64 {
	if len(sorted) == 0 {
		return 0
	}
	i := int(float64(len(sorted))*p/100+0.5) - 1
	i = max(0, min(i, len(sorted)-1))
	return ms(sorted[i])
}

func ms(ns int64) float64 { return float64(ns) / 1e6 }

func errKind(err error) string {
	var ne net.Error
	switch {
	case errors.Is(err, fasthttp.ErrTimeout), errors.Is(err, fasthttp.ErrDialTimeout), errors.As(err, &ne) && ne.Timeout():
		return "timeout"
	case strings.Contains(err.Error(), "connection reset"):
		return "conn_reset"
	case strings.Contains(err.Error(), "connection refused"):
		return "conn_refused"
	case errors.Is(err, fasthttp.ErrNoFreeConns):
		return "no_free_conns"
	case errors.Is(err, fasthttp.ErrConnectionClosed), errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF),
		strings.Contains(err.Error(), "broken pipe"):
		return "conn_closed"
	}
	return "other"
}

// newClient is one HostClient with -c connections for all workers: each
// worker has at most one request in flight, so a connection is always free
// (MaxConnWaitTimeout only guards against a slow close). Nothing is retried:
// a failed request is counted, not hidden by a second attempt.
func newClient(o options) *fasthttp.HostClient {
	return &fasthttp.HostClient{
		Addr:                          o.target.Host,
		Name:                          "mlservice-loadgen",
		MaxConns:                      o.conns,
		MaxConnWaitTimeout:            o.timeout,
		MaxIdemponentCallAttempts:     1,
		RetryIfErr:                    func(*fasthttp.Request, int, error) (bool, bool) { return false, false },
		ReadTimeout:                   o.timeout,
		WriteTimeout:                  o.timeout,
		ReadBufferSize:                16 << 10,
		DisableHeaderNamesNormalizing: true,
	}
}

// prepare sets everything of a worker's request but the body, once.
func prepare(req *fasthttp.Request, u *url.URL, headers []header) {
	req.Header.SetMethod(fasthttp.MethodPost)
	req.SetRequestURI(u.String())
	req.Header.SetContentType("application/json")
	for _, h := range headers {
		req.Header.Set(h.name, h.value)
	}
}

// scrape reads the gauges the soak watches from a Prometheus exposition.
func scrape(client *http.Client, u string) (Sample, error) {
	resp, err := client.Get(u)
	if err != nil {
		return Sample{}, err
	}
	defer resp.Body.Close()
	var s Sample
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		name, value, ok := strings.Cut(line, " ")
		if !ok {
			continue
		}
		f, err := strconv.ParseFloat(strings.TrimSpace(value), 64)
		if err != nil {
			continue
		}
		switch {
		case name == "process_resident_memory_bytes":
			s.RSSBytes = f
		case name == "go_goroutines":
			s.Goroutines = f
		case name == "model_sessions_open":
			s.Sessions = f
		case strings.HasPrefix(name, "model_info{"):
			s.Live += f
		}
	}
	return s, sc.Err()
}

// sleepPrecise sleeps in a nanosleep system call rather than on a runtime
// timer: when every P is idle, Go rounds a timer wait below 1 ms up to a
// whole millisecond (epoll's resolution), which would add up to 1 ms of the
// generator's own lateness to open-loop latencies. The thread blocks in the
// kernel (about 50 µs of timer slack); the runtime lends its P to others.
func sleepPrecise(d time.Duration) {
	ts := syscall.NsecToTimespec(int64(d))
	for syscall.Nanosleep(&ts, &ts) == syscall.EINTR {
	}
}

// every calls fn at each tick of period until stop closes or end passes, then
// marks wg done. fn runs on this one goroutine, so it may keep state.
func every(wg *sync.WaitGroup, stop <-chan struct{}, end time.Time, period time.Duration, fn func(now time.Time)) {
	defer wg.Done()
	tick := time.NewTicker(period)
	defer tick.Stop()
	for {
		select {
		case <-stop:
			return
		case now := <-tick.C:
			if now.After(end) {
				return
			}
			fn(now)
		}
	}
}
