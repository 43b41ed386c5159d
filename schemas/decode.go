package schemas

import (
	"errors"
	"fmt"
	"sort"
	"strings"

	"github.com/valyala/fastjson"
)

// MaxBatch is the most applications one POST /v1/predict/batch may carry.
const MaxBatch = 10000

// maxFieldErrors caps how many fields one error names, so a hostile body with
// thousands of unknown keys cannot make the error bigger than the request.
const maxFieldErrors = 20

// MalformedError means the body is not JSON at all (HTTP 400).
type MalformedError struct{ Reason string }

func (e *MalformedError) Error() string { return "malformed JSON: " + e.Reason }

// FieldErrors maps a field's JSON name to what is wrong with it (HTTP 422).
// The empty name stands for the body as a whole.
type FieldErrors map[string]string

func (e FieldErrors) Error() string {
	names := make([]string, 0, len(e))
	for n := range e {
		names = append(names, n)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, n := range names {
		if n == "" {
			parts[i] = e[n]
		} else {
			parts[i] = n + ": " + e[n]
		}
	}
	return "invalid application: " + strings.Join(parts, "; ")
}

// add records a problem, keeping the first one per field and at most
// maxFieldErrors fields.
func (e FieldErrors) add(field, problem string) FieldErrors {
	if e == nil {
		e = FieldErrors{}
	}
	if _, dup := e[field]; dup || len(e) >= maxFieldErrors {
		return e
	}
	if len(field) > ApplicationIDMaxLength {
		field = field[:ApplicationIDMaxLength] + "…"
	}
	e[field] = problem
	return e
}

// Decoder turns request bodies into validated Applications. It is strict:
// unknown, duplicate, missing and wrongly typed fields are each named. A Decoder
// is safe for concurrent use; the zero value is ready.
type Decoder struct {
	parsers fastjson.ParserPool
}

// Application decodes and validates one application. The error is a
// *MalformedError or FieldErrors.
func (d *Decoder) Application(body []byte) (Application, error) {
	p := d.parsers.Get()
	defer d.parsers.Put(p)
	v, err := p.ParseBytes(body)
	if err != nil {
		return Application{}, &MalformedError{Reason: shortReason(err)}
	}
	return applicationFrom(v)
}

// Item is one entry of a batch: a valid application or what is wrong with it.
type Item struct {
	Application Application
	Err         error
}

// Batch decodes a batch body. Each item is validated on its own, so one bad
// application never fails the rest; the error is for the envelope only.
func (d *Decoder) Batch(body []byte) ([]Item, error) {
	p := d.parsers.Get()
	defer d.parsers.Put(p)
	v, err := p.ParseBytes(body)
	if err != nil {
		return nil, &MalformedError{Reason: shortReason(err)}
	}
	obj, err := v.Object()
	if err != nil {
		return nil, FieldErrors{"": "the body must be a JSON object"}
	}
	var list []*fastjson.Value
	var errs FieldErrors
	found := false
	obj.Visit(func(key []byte, v *fastjson.Value) {
		if string(key) != "applications" {
			errs = errs.add(string(key), "unknown field")
			return
		}
		if found {
			errs = errs.add("applications", "duplicate field")
			return
		}
		found = true
		if list, err = v.Array(); err != nil {
			errs = errs.add("applications", "must be an array of applications")
		}
	})
	switch {
	case errs != nil:
		return nil, errs
	case !found:
		return nil, FieldErrors{"applications": "is required"}
	case len(list) == 0:
		return nil, FieldErrors{"applications": "must contain at least 1 application"}
	case len(list) > MaxBatch:
		return nil, FieldErrors{"applications": fmt.Sprintf("must contain at most %d applications", MaxBatch)}
	}
	items := make([]Item, len(list))
	for i, v := range list {
		items[i].Application, items[i].Err = applicationFrom(v)
	}
	return items, nil
}

const allFeatures = 1<<numFeatures - 1

func applicationFrom(v *fastjson.Value) (Application, error) {
	obj, err := v.Object()
	if err != nil {
		return Application{}, FieldErrors{"": "an application must be a JSON object"}
	}
	var (
		a      Application
		errs   FieldErrors
		seen   uint
		seenID bool
	)
	obj.Visit(func(key []byte, v *fastjson.Value) {
		if string(key) == "application_id" {
			if seenID {
				errs = errs.add("application_id", "duplicate field")
				return
			}
			seenID = true
			if v.Type() != fastjson.TypeString {
				errs = errs.add("application_id", "must be a string")
				return
			}
			a.ApplicationID = string(v.GetStringBytes())
			if a.ApplicationID == "" {
				errs = errs.add("application_id", "must not be empty")
			}
			return
		}
		f, ok := featureByKey(key)
		if !ok {
			errs = errs.add(string(key), "unknown field")
			return
		}
		if seen&(1<<f) != 0 {
			errs = errs.add(f.String(), "duplicate field")
			return
		}
		seen |= 1 << f
		if v.Type() != fastjson.TypeNumber {
			errs = errs.add(f.String(), "must be a number")
			return
		}
		n, err := v.Float64()
		if err != nil {
			errs = errs.add(f.String(), "must be a number")
			return
		}
		a.Set(f, n)
	})
	if seen != allFeatures {
		for _, f := range Features {
			if seen&(1<<f) == 0 {
				errs = errs.add(f.String(), "is required")
			}
		}
	}
	if err := a.Validate(); err != nil {
		var bounds FieldErrors
		errors.As(err, &bounds)
		for field, problem := range bounds {
			errs = errs.add(field, problem)
		}
	}
	if errs != nil {
		return a, errs
	}
	return a, nil
}

// featureByKey is FeatureByName for a raw key, without allocating.
func featureByKey(key []byte) (Feature, bool) {
	for i, n := range featureNames {
		if string(key) == n {
			return Feature(i), true
		}
	}
	return 0, false
}

// shortReason keeps a parser error to one bounded line for the client.
func shortReason(err error) string {
	s := err.Error()
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return s
}
