package main

import (
	"context"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// backend is one replica: its base URL, the proxy to it and whether its
// last health check passed. Safe for concurrent use.
type backend struct {
	url     *url.URL
	proxy   *httputil.ReverseProxy
	healthy atomic.Bool
}

// Pool round-robins requests over the healthy replicas of a service. The
// replica set is either fixed or re-resolved from DNS (one A record per
// replica, as compose's embedded DNS answers for a scaled service). Serving
// reads an immutable snapshot; only Refresh replaces it. Safe for concurrent use.
type Pool struct {
	healthPath string
	client     *http.Client
	log        *slog.Logger
	static     []string // fixed backend URLs, or nil
	resolve    string   // host:port to look up, or ""
	lookup     func(ctx context.Context, host string) ([]string, error)

	backends atomic.Pointer[[]*backend]
	next     atomic.Uint64
	mu       sync.Mutex // serialises Refresh
}

// NewPool returns a pool over the fixed URLs, or over the addresses that
// resolve (host:port) has when resolve is not empty.
func NewPool(static []string, resolve, healthPath string, timeout time.Duration, log *slog.Logger) *Pool {
	p := &Pool{healthPath: healthPath, static: static, resolve: resolve, log: log,
		client: &http.Client{Timeout: timeout},
		lookup: net.DefaultResolver.LookupHost}
	p.backends.Store(&[]*backend{})
	return p
}

func (p *Pool) targets(ctx context.Context) ([]string, error) {
	if p.resolve == "" {
		return p.static, nil
	}
	host, port, err := net.SplitHostPort(p.resolve)
	if err != nil {
		return nil, err
	}
	addrs, err := p.lookup(ctx, host)
	if err != nil {
		return nil, err
	}
	slices.Sort(addrs)
	out := make([]string, 0, len(addrs))
	for _, a := range addrs {
		out = append(out, "http://"+net.JoinHostPort(a, port))
	}
	return out, nil
}

// Refresh re-reads the replica set (keeping the state of replicas already
// known) and health-checks every replica in parallel.
func (p *Pool) Refresh(ctx context.Context) {
	p.mu.Lock()
	defer p.mu.Unlock()
	urls, err := p.targets(ctx)
	if err != nil {
		p.log.Warn("resolving replicas failed; keeping the last set", "resolve", p.resolve, "err", err)
		urls = nil
		for _, b := range *p.backends.Load() {
			urls = append(urls, b.url.String())
		}
	}
	known := map[string]*backend{}
	for _, b := range *p.backends.Load() {
		known[b.url.String()] = b
	}
	next := make([]*backend, 0, len(urls))
	for _, raw := range urls {
		if b, ok := known[raw]; ok {
			next = append(next, b)
			continue
		}
		u, err := url.Parse(raw)
		if err != nil {
			p.log.Error("bad backend URL", "url", raw, "err", err)
			continue
		}
		next = append(next, p.newBackend(u))
	}
	var wg sync.WaitGroup
	for _, b := range next {
		wg.Go(func() { p.check(ctx, b) })
	}
	wg.Wait()
	p.backends.Store(&next)
}

func (p *Pool) newBackend(u *url.URL) *backend {
	b := &backend{url: u}
	b.proxy = &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(u)
			r.SetXForwarded()
		},
		ErrorHandler: func(w http.ResponseWriter, r *http.Request, err error) {
			if b.healthy.Swap(false) {
				p.log.Warn("replica failed a request; out of rotation until its next good check", "backend", u.String(), "err", err)
			}
			writeError(w, http.StatusBadGateway, "bad_gateway", "the replica did not answer; retry")
		},
	}
	return b
}

func (p *Pool) check(ctx context.Context, b *backend) {
	ok := false
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, b.url.JoinPath(p.healthPath).String(), nil)
	if err == nil {
		if resp, err := p.client.Do(req); err == nil {
			resp.Body.Close()
			ok = resp.StatusCode == http.StatusOK
		}
	}
	if was := b.healthy.Swap(ok); was != ok {
		p.log.Info("replica health changed", "backend", b.url.String(), "healthy", ok)
	}
}

// Run refreshes the pool every interval until ctx ends.
func (p *Pool) Run(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			p.Refresh(ctx)
		}
	}
}

// pick returns the next healthy replica in turn, or nil if none is.
func (p *Pool) pick() *backend {
	var healthy []*backend
	for _, b := range *p.backends.Load() {
		if b.healthy.Load() {
			healthy = append(healthy, b)
		}
	}
	if len(healthy) == 0 {
		return nil
	}
	return healthy[p.next.Add(1)%uint64(len(healthy))]
}

// ServeHTTP proxies to the next healthy replica; /-/lb reports the pool.
func (p *Pool) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/-/lb" {
		p.status(w)
		return
	}
	b := p.pick()
	if b == nil {
		writeError(w, http.StatusServiceUnavailable, "not_ready", "no healthy replica")
		return
	}
	b.proxy.ServeHTTP(w, r)
}

func (p *Pool) status(w http.ResponseWriter) {
	w.Header().Set("Content-Type", "application/json")
	healthy := 0
	body := `{"backends":[`
	for i, b := range *p.backends.Load() {
		if i > 0 {
			body += ","
		}
		h := b.healthy.Load()
		if h {
			healthy++
		}
		body += `{"url":` + strconv.Quote(b.url.String()) + `,"healthy":` + strconv.FormatBool(h) + `}`
	}
	body += `],"healthy":` + strconv.Itoa(healthy) + "}\n"
	_, _ = w.Write([]byte(body))
}

// writeError answers in the API's error shape.
func writeError(w http.ResponseWriter, status int, code, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_, _ = w.Write([]byte(`{"error":{"code":` + strconv.Quote(code) + `,"message":` + strconv.Quote(msg) + "}}\n"))
}
