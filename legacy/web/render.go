package web

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

//go:embed templates/*.html
var templateFiles embed.FS

//go:embed static
var staticFiles embed.FS

// pages holds one parsed template set per page, each the layout plus the
// page's blocks. It is read-only after newPages.
type pages map[string]*template.Template

var templateFuncs = template.FuncMap{
	"percent": func(p float64) string { return strconv.FormatFloat(p*100, 'f', 1, 64) + " %" },
	"number": func(p *float64) string {
		if p == nil {
			return "—"
		}
		return strconv.FormatFloat(*p, 'f', -1, 64)
	},
	"stamp": func(v any) string {
		switch t := v.(type) {
		case time.Time:
			return t.Format("2006-01-02 15:04:05 MST")
		case *time.Time:
			if t != nil {
				return t.Format("2006-01-02 15:04:05 MST")
			}
		}
		return "—"
	},
	"label":      fieldLabel,
	"pathEscape": url.PathEscape,
}

func newPages() (pages, error) {
	layout, err := template.New("").Funcs(templateFuncs).ParseFS(templateFiles, "templates/layout.html")
	if err != nil {
		return nil, err
	}
	p := pages{}
	for _, name := range []string{"form", "application", "problem"} {
		t, err := template.Must(layout.Clone()).ParseFS(templateFiles, "templates/"+name+".html")
		if err != nil {
			return nil, err
		}
		p[name] = t
	}
	return p, nil
}

// render writes a whole page or, if the template fails, nothing but an
// error: a half-written page would hide the failure from the officer.
func (p pages) render(w http.ResponseWriter, status int, name string, data any) error {
	var buf bytes.Buffer
	if err := p[name].ExecuteTemplate(&buf, "layout", data); err != nil {
		return fmt.Errorf("render %s: %w", name, err)
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	_, err := buf.WriteTo(w)
	return err
}

func staticHandler() http.Handler {
	sub, _ := fs.Sub(staticFiles, "static")
	return http.StripPrefix("/static/", http.FileServer(http.FS(sub)))
}
