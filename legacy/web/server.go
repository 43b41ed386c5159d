// Package web is the loan officer's form: one application keyed in during
// the day, sent to the decision service, and the decision shown with the
// reference and the model version that made it. It is plain server-rendered
// HTML (no JavaScript needed). Every application is written to the on-disk
// queue before the service is called, so an outage, a timeout or a restart
// of this program never loses it; the queue's Retrier decides it later and
// its page shows the decision then.
package web

import (
	"errors"
	"log/slog"
	"net/http"
	"time"

	"mlservice/legacy/queue"
)

// Config wires the form to its queue and the decision service.
type Config struct {
	Queue   *queue.Queue
	Decider queue.Decider
	Log     *slog.Logger
	// RefreshSeconds makes a waiting application's page reload itself
	// (default 5; the officer can always reload by hand).
	RefreshSeconds int
	// Now is the clock for generated references (default time.Now).
	Now func() time.Time
}

// Server serves the form. It is safe for concurrent use.
type Server struct {
	cfg     Config
	pages   pages
	mux     *http.ServeMux
	handler http.Handler // mux behind the cross-origin check
}

// maxFormBytes caps a submitted form: six short fields.
const maxFormBytes = 16 << 10

// New builds the form's handler.
func New(cfg Config) (*Server, error) {
	if cfg.Queue == nil || cfg.Decider == nil {
		return nil, errors.New("web: a queue and a decider are required")
	}
	if cfg.Log == nil {
		cfg.Log = slog.Default()
	}
	if cfg.RefreshSeconds <= 0 {
		cfg.RefreshSeconds = 5
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	p, err := newPages()
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, pages: p, mux: http.NewServeMux()}
	s.mux.Handle("GET /{$}", s.handle(s.newApplication))
	s.mux.Handle("POST /applications", s.handle(s.submit))
	s.mux.Handle("GET /applications/{id}", s.handle(s.application))
	s.mux.Handle("GET /static/", staticHandler())
	s.mux.Handle("/", s.handle(func(http.ResponseWriter, *http.Request) error {
		return &pageError{Status: http.StatusNotFound, Title: "Page not found", Message: "There is no such page."}
	}))
	// A form post from another site (a page the officer happens to have
	// open elsewhere) is refused: browsers say where a request comes from
	// (Sec-Fetch-Site, Origin), and only this form's own pages may post.
	cop := http.NewCrossOriginProtection()
	cop.SetDenyHandler(s.handle(func(http.ResponseWriter, *http.Request) error {
		return &pageError{Status: http.StatusForbidden, Title: "Form refused",
			Message: "This form can only be submitted from the loan application pages themselves. Open the form again and submit it from there."}
	}))
	s.handler = cop.Handler(s.mux)
	return s, nil
}

// ServeHTTP serves the form with headers that keep it to itself.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("Cache-Control", "no-store")
	s.handler.ServeHTTP(w, r)
}

// pageError is an error the officer should see as it is, with its status.
type pageError struct {
	Status  int
	Title   string
	Message string
}

func (e *pageError) Error() string { return e.Title + ": " + e.Message }

// handle adapts a handler that returns an error: a *pageError is shown as
// it is; anything else is logged and shown as a 500 that says what the
// officer needs to know and nothing about internals.
func (s *Server) handle(h func(http.ResponseWriter, *http.Request) error) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		err := h(w, r)
		if err == nil {
			return
		}
		var pe *pageError
		if !errors.As(err, &pe) {
			s.cfg.Log.Error("request failed", "method", r.Method, "path", r.URL.Path, "error", err)
			pe = &pageError{Status: http.StatusInternalServerError, Title: "Something went wrong",
				Message: "The application could not be saved. Nothing was sent for decision: please submit it again, and call IT support if this persists."}
		}
		if rerr := s.pages.render(w, pe.Status, "problem", pe); rerr != nil {
			s.cfg.Log.Error("render error page", "error", rerr)
			http.Error(w, pe.Message, pe.Status)
		}
	})
}
