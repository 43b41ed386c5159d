package api

import (
	"bytes"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/gofiber/fiber/v2"

	"mlservice/schemas"
	"mlservice/serve/routing"
)

var (
	errNotJSON = &Error{Status: http.StatusUnsupportedMediaType, Code: CodeUnsupportedMediaType,
		Message: "send the body as Content-Type: application/json"}
	errNotReady = &Error{Status: http.StatusServiceUnavailable, Code: CodeNotReady,
		Message: "no champion model is loaded yet"}
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
	t, route := s.deps.Router.Acquire(app.ApplicationID)
	if t == nil {
		return errNotReady
	}
	var (
		x       [8]float32
		prob    [1]float32
		approve [1]bool
	)
	apps := [1]*schemas.Application{&app}
	start := time.Now()
	err = route.Version.Decide(apps[:], x[:0], prob[:], approve[:])
	elapsed := time.Since(start)
	route.Version.Release()
	if err != nil {
		return err
	}
	route.Metrics.ObserveRun(elapsed)
	route.Metrics.ObserveDecision(approve[0], prob[0])
	if t.Shadow != nil && s.deps.Shadow != nil {
		s.deps.Shadow.Offer(t, &app, approve[0])
	}
	buf := bufPool.Get().(*[]byte)
	b := appendDecision((*buf)[:0], app.ApplicationID, approve[0], prob[0], t.Model, route, requestID(c))
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	c.Response().SetBody(b) // copies: b goes back to the pool
	*buf = b
	bufPool.Put(buf)
	return nil
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}

func (s *Server) predictBatch(c *fiber.Ctx) error {
	if !isJSON(c) {
		return errNotJSON
	}
	items, err := s.decoder.Batch(c.Body())
	if err != nil {
		return err
	}
	t, release := s.deps.Router.AcquireAll()
	defer release()
	if t == nil {
		return errNotReady
	}
	// Group the valid items by route so each model version runs once.
	groups := map[*routing.Route][]int{}
	for i := range items {
		if items[i].Err == nil {
			r := t.Pick(items[i].Application.ApplicationID)
			groups[r] = append(groups[r], i)
		}
	}
	probs := make([]float32, len(items))
	approve := make([]bool, len(items))
	routes := make([]*routing.Route, len(items))
	for route, idx := range groups {
		apps := make([]*schemas.Application, len(idx))
		for j, i := range idx {
			apps[j] = &items[i].Application
		}
		p := make([]float32, len(idx))
		a := make([]bool, len(idx))
		start := time.Now()
		if err := route.Version.Decide(apps, nil, p, a); err != nil {
			return err
		}
		route.Metrics.ObserveRun(time.Since(start))
		for j, i := range idx {
			probs[i], approve[i], routes[i] = p[j], a[j], route
			route.Metrics.ObserveDecision(a[j], p[j])
		}
	}
	accepted := 0
	b := make([]byte, 0, 160*len(items)+64)
	b = append(b, `{"results":[`...)
	for i := range items {
		if i > 0 {
			b = append(b, ',')
		}
		if items[i].Err != nil {
			b = appendItemError(b, i, items[i].Application.ApplicationID, items[i].Err)
			continue
		}
		accepted++
		b = appendBatchDecision(b, i, items[i].Application.ApplicationID, approve[i], probs[i], t.Model, routes[i])
	}
	b = append(b, `],"accepted":`...)
	b = appendInt(b, accepted)
	b = append(b, `,"rejected":`...)
	b = appendInt(b, len(items)-accepted)
	b = append(b, `,"request_id":`...)
	b = appendString(b, requestID(c))
	b = append(b, '}')
	c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	return c.Send(b)
}
