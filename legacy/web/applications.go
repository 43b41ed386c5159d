package web

import (
	"errors"
	"net/http"
	"net/url"

	"mlservice/legacy/queue"
)

// newApplication shows an empty form with a fresh draft reference.
func (s *Server) newApplication(w http.ResponseWriter, r *http.Request) error {
	return s.pages.render(w, http.StatusOK, "form", newFormPage(url.Values{}, newDraftID(s.cfg.Now()), nil))
}

// submit keeps the application on disk, then asks the service once. The
// officer sees the decision, the service's field messages, or that the
// application is queued; in every case it is already safe on disk.
func (s *Server) submit(w http.ResponseWriter, r *http.Request) error {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if err := r.ParseForm(); err != nil {
		return &pageError{Status: http.StatusBadRequest, Title: "Form not readable", Message: "The form could not be read; please fill it in again."}
	}
	app, problems := parseApplication(r.PostForm)
	if len(problems) > 0 {
		return s.pages.render(w, http.StatusUnprocessableEntity, "form", newFormPage(r.PostForm, app.ApplicationID, problems))
	}
	id := app.ApplicationID

	kept, err := s.cfg.Queue.Get(id)
	switch {
	case errors.Is(err, queue.ErrNotFound):
	case err != nil:
		return err
	case !sameFigures(kept.Application, app) && (kept.Status == queue.Refused || kept.Status == queue.Failed):
		// A corrected resubmission of a refused or failed application.
		if err := s.cfg.Queue.Forget(id); err != nil {
			return err
		}
	case !sameFigures(kept.Application, app):
		return s.pages.render(w, http.StatusConflict, "form", newFormPage(r.PostForm, newDraftID(s.cfg.Now()), map[string]string{
			"application_id": "is already used by another application; leave it empty to get a new reference",
		}))
	}

	rec, err := s.cfg.Queue.Keep(app)
	if err != nil {
		return err
	}
	rec, err = queue.Attempt(r.Context(), s.cfg.Queue, s.cfg.Decider, rec)
	if err != nil {
		s.cfg.Log.Warn("application queued", "application_id", id, "error", err)
	}
	if rec.Status == queue.Refused {
		return s.pages.render(w, http.StatusUnprocessableEntity, "form", newFormPage(formValuesFor(r.PostForm, rec), id, rec.Refusal.Fields))
	}
	http.Redirect(w, r, pageURL(rec), http.StatusSeeOther)
	return nil
}

// pageURL is the address of an application's page: the reference and the
// application's secret, without which the page shows nothing.
func pageURL(rec queue.Record) string {
	return "/applications/" + url.PathEscape(rec.Application.ApplicationID) + "?key=" + url.QueryEscape(rec.Key)
}

// formValuesFor shows the officer what they typed, with the reference the
// service saw, so the corrected form keeps the same reference.
func formValuesFor(typed url.Values, rec queue.Record) url.Values {
	v := url.Values{}
	for k, vs := range typed {
		v[k] = vs
	}
	if v.Get("application_id") == "" {
		v.Set("application_id", rec.Application.ApplicationID)
	}
	return v
}

// applicationPage is the application page's view model.
type applicationPage struct {
	Record         queue.Record
	URL            string // this page's address, key included
	RefreshSeconds int
}

// application shows a kept application: its decision, or that it waits.
// Only with the application's key: a reference alone (A-1001 is easy to
// guess) shows nothing, not even whether such an application exists.
func (s *Server) application(w http.ResponseWriter, r *http.Request) error {
	id := r.PathValue("id")
	rec, err := s.cfg.Queue.Get(id)
	if err != nil && !errors.Is(err, queue.ErrNotFound) {
		return err
	}
	if err != nil || !rec.KeyMatches(r.URL.Query().Get("key")) {
		return &pageError{Status: http.StatusNotFound, Title: "Application not found",
			Message: "No application with this address was submitted here. Use the address the form showed after submitting (it holds the application's key); the reference alone is not enough."}
	}
	return s.pages.render(w, http.StatusOK, "application", applicationPage{Record: rec, URL: pageURL(rec), RefreshSeconds: s.cfg.RefreshSeconds})
}
