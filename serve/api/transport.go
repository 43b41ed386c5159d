package api

import (
	"bytes"
	"sync"
	"sync/atomic"

	"github.com/valyala/fasthttp"

	"mlservice/serve/oip"
)

// protocolReads remembers which requests are on /v2, by their headers, while
// fasthttp reads their bodies. When a body fails to read (a chunked body
// over the limit, a body that does not arrive within the read timeout)
// fasthttp resets the request, path included, before the error handler
// runs, and the Open Inference Protocol's clients would get /v1's error
// shape, which they cannot read. An entry lives from the request's headers
// to its first middleware or its error, so there are at most as many as
// connections.
type protocolReads struct {
	n       atomic.Int64 // entries, so that /v1 requests skip the lock when there are none
	mu      sync.Mutex
	reading map[*fasthttp.RequestHeader]struct{}
}

func newProtocolReads() *protocolReads {
	return &protocolReads{reading: map[*fasthttp.RequestHeader]struct{}{}}
}

// headerReceived is fasthttp's hook between a request's headers and its body.
func (r *protocolReads) headerReceived(h *fasthttp.RequestHeader) fasthttp.RequestConfig {
	if oip.IsPath(rawPath(h.RequestURI())) {
		r.mu.Lock()
		if _, ok := r.reading[h]; !ok {
			r.reading[h] = struct{}{}
			r.n.Add(1)
		}
		r.mu.Unlock()
	}
	return fasthttp.RequestConfig{} // the server's own limits and timeouts
}

// done forgets the request on ctx and says whether its headers were on /v2.
func (r *protocolReads) done(ctx *fasthttp.RequestCtx) bool {
	if r.n.Load() == 0 {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.reading[&ctx.Request.Header]; !ok {
		return false
	}
	delete(r.reading, &ctx.Request.Header)
	r.n.Add(-1)
	return true
}

// rawPath is the path of a request line's target, which may be in absolute
// form ("http://host/v2/…") and may carry a query.
func rawPath(uri []byte) []byte {
	if i := bytes.Index(uri, []byte("://")); i >= 0 && bytes.IndexByte(uri[:i], '/') < 0 {
		uri = uri[i+3:]
		if j := bytes.IndexByte(uri, '/'); j >= 0 {
			uri = uri[j:]
		} else {
			uri = nil
		}
	}
	if i := bytes.IndexAny(uri, "?#"); i >= 0 {
		uri = uri[:i]
	}
	return uri
}
