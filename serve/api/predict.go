package api

import (
	"bytes"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"

	"mlservice/serve/decision"
)

var (
	errNotJSON = &Error{Status: http.StatusUnsupportedMediaType, Code: CodeUnsupportedMediaType,
		Message: "send the body as Content-Type: application/json"}
	errNotReady = &Error{Status: http.StatusServiceUnavailable, Code: CodeNotReady,
		Message: "no champion model is loaded yet"}
	errBusy = &Error{Status: http.StatusServiceUnavailable, Code: CodeOverloaded,
		Message: "too many batches in progress; retry after the Retry-After seconds"}
)

// isJSON accepts application/json with optional parameters (charset=utf-8).
func isJSON(c *fiber.Ctx) bool {
	ct := bytes.TrimSpace(c.Request().Header.ContentType())
	const want = "application/json"
	if len(ct) < len(want) || !bytes.EqualFold(ct[:len(want)], []byte(want)) {
		return false
	}
	rest := bytes.TrimSpace(ct[len(want):])
	return len(rest) == 0 || rest[0] == ';'
}

// predict is decode → decide → encode.
func (s *Server) predict(c *fiber.Ctx) error {
	if !isJSON(c) {
		return errNotJSON
	}
	body := c.Body()
	if len(body) > s.cfg.PredictBodyLimit {
		return &Error{Status: http.StatusRequestEntityTooLarge, Code: CodeBodyTooLarge,
			Message: fmt.Sprintf("a single application must be at most %d bytes; use /v1/predict/batch for many", s.cfg.PredictBodyLimit)}
	}
	app, err := s.decoder.Application(body)
	if err != nil {
		return err
	}
	var (
		in   = [1]decision.Input{{Application: app, JSON: bytes.TrimSpace(body)}}
		out  [1]decision.Decision
		errs [1]error
	)
	if err := s.deps.Decisions.Decide(c.UserContext(), requestID(c), in[:], out[:], errs[:]); err != nil {
		return err
	}
	if errs[0] != nil {
		return errs[0]
	}
	buf := bufPool.Get().(*[]byte)
	b := appendDecision((*buf)[:0], &out[0])
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	c.Response().SetBody(b) // copies: b goes back to the pool
	*buf = b
	bufPool.Put(buf)
	return nil
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

// predictBatch is admit → decode → decide → encode.
func (s *Server) predictBatch(c *fiber.Ctx) error {
	if !isJSON(c) {
		return errNotJSON
	}
	done, ok := s.batches.admit()
	if !ok {
		c.Set(fiber.HeaderRetryAfter, "1")
		return errBusy
	}
	defer done()
	items, err := s.decoder.Batch(c.Body())
	if err != nil {
		return err
	}
	// Decide the valid items; ins[j] is items[at[j]].
	at := make([]int, 0, len(items))
	for i := range items {
		if items[i].Err == nil {
			at = append(at, i)
		}
	}
	bufs := decision.GetBuffers(len(at))
	defer bufs.Put() // after the answer is written
	ins, out, errs := bufs.Ins, bufs.Out, bufs.Errs
	for j, i := range at {
		ins[j] = decision.Input{Application: items[i].Application, JSON: items[i].JSON}
	}
	if err := s.deps.Decisions.Decide(c.UserContext(), requestID(c), ins, out, errs); err != nil {
		return err
	}
	for j, i := range at {
		items[i].Application.ApplicationID = ins[j].Application.ApplicationID
		items[i].Err = errs[j]
	}
	accepted, j := 0, 0
	buf := batchBufPool.Get().(*[]byte)
	b := append((*buf)[:0], `{"results":[`...)
	for i := range items {
		if i > 0 {
			b = append(b, ',')
		}
		decided := j < len(at) && at[j] == i
		if decided {
			j++
		}
		if items[i].Err != nil {
			b = appendItemError(b, i, items[i].Application.ApplicationID, items[i].Err)
			continue
		}
		accepted++
		b = appendBatchDecision(b, i, &out[j-1])
	}
	b = append(b, `],"accepted":`...)
	b = appendInt(b, accepted)
	b = append(b, `,"rejected":`...)
	b = appendInt(b, len(items)-accepted)
	b = append(b, `,"request_id":`...)
	b = appendString(b, requestID(c))
	b = append(b, '}')
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	c.Response().SetBody(b) // copies: b goes back to the pool
	*buf = b
	batchBufPool.Put(buf)
	return nil
}

// batchBufPool holds the batch answers' buffers apart from the single
// answers', whose are small.
var batchBufPool = sync.Pool{New: func() any { b := make([]byte, 0, 64<<10); return &b }}

// admission bounds how many batches are decoded and decided at once, so a
// burst of batches can neither exhaust memory nor take the cores that single
// predictions need. A batch waits up to wait for a slot when at most queue
// others are waiting; otherwise it is refused at once.
type admission struct {
	slots   chan struct{}
	waiting chan struct{}
	wait    time.Duration
	counted func(admitted bool)
}

func newAdmission(concurrency, queue int, wait time.Duration, counted func(bool)) *admission {
	return &admission{slots: make(chan struct{}, concurrency), waiting: make(chan struct{}, queue), wait: wait, counted: counted}
}

// admit takes a slot; done gives it back.
func (a *admission) admit() (done func(), ok bool) {
	release := func() { <-a.slots }
	select {
	case a.slots <- struct{}{}:
		a.counted(true)
		return release, true
	default:
	}
	select {
	case a.waiting <- struct{}{}:
	default:
		a.counted(false)
		return nil, false
	}
	defer func() { <-a.waiting }()
	t := time.NewTimer(a.wait)
	defer t.Stop()
	select {
	case a.slots <- struct{}{}:
		a.counted(true)
		return release, true
	case <-t.C:
		a.counted(false)
		return nil, false
	}
}
