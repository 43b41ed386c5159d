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

// The sizes that bound a request's work before it is done.
const (
	// MaxItemBytes caps each item of a batch (a realistic one is ~130 bytes).
	MaxItemBytes = 4 << 10
	// avgItemBytes is what one batch item may need on average: a 64-character
	// id and five long numbers with their keys fit in 400 bytes.
	avgItemBytes = 512
	// MaxBatchBytes caps a POST /v1/predict/batch body: what the largest
	// batch can need (a legitimate 10,000-item batch is about 1.3 MB).
	MaxBatchBytes = MaxBatch*avgItemBytes + 1<<10
)

// maxApplicationValues bounds the JSON values of one application or batch
// item before it is parsed: an application has a dozen, so this leaves room
// for every mistake the errors name (at most maxFieldErrors fields).
const maxApplicationValues = 1 << 12

// Decoder turns request bodies into validated Applications. It is strict:
// unknown, duplicate, missing and wrongly typed fields are each named. A Decoder
// is safe for concurrent use; the zero value is ready.
type Decoder struct {
	parsers ParserPool // an application's or a batch item's (pooledMax)
}

// Application decodes and validates one application. The error is a
// *MalformedError or FieldErrors.
func (d *Decoder) Application(body []byte) (Application, error) {
	if a, ok := plainApplication(body); ok {
		return a, nil
	}
	// Strictly: a body that is not JSON (050000, NaN) would be decided, and
	// recorded as it came, a record no JSON reader can read.
	p := d.parsers.Get(len(body))
	defer d.parsers.Put(p, len(body))
	v, err := ParseJSON(p, body, maxApplicationValues)
	if err != nil {
		return Application{}, err
	}
	return applicationFrom(v)
}

// Item is one entry of a batch: a valid application or what is wrong with it.
type Item struct {
	Application Application
	// JSON is the item as the body has it (a sub-slice of the body).
	JSON []byte
	Err  error
}

// Batch decodes a batch body. Each item is validated on its own, so one bad
// application never fails the rest; the error is for the envelope only. The
// work is bounded before it is done: the envelope is scanned without building
// a document, scanning stops at the MaxBatch+1st item, and each item (at
// most MaxItemBytes) is parsed on its own.
func (d *Decoder) Batch(body []byte) ([]Item, error) {
	spans, err := splitBatch(body)
	if err != nil {
		return nil, err
	}
	items := make([]Item, len(spans))
	p := d.parsers.Get(MaxItemBytes)
	defer d.parsers.Put(p, MaxItemBytes)
	for i, span := range spans {
		items[i].JSON = span
		if a, ok := plainApplication(span); ok && len(span) <= MaxItemBytes {
			items[i].Application = a
			continue
		}
		if len(span) > MaxItemBytes {
			if err := fastjson.ValidateBytes(span); err != nil { // the scanner bounded its nesting
				return nil, Malformed(err)
			}
			items[i].Err = FieldErrors{"": fmt.Sprintf("an application must be at most %d bytes", MaxItemBytes)}
			continue
		}
		v, err := itemValue(p, span)
		if err != nil {
			return nil, err
		}
		items[i].Application, items[i].Err = applicationFrom(v)
	}
	return items, nil
}

// itemValue parses one batch item as it stood in the array. fastjson's
// parser takes a bare sign for a number at the end of its input, though not
// inside an array (the one such case: a fuzzed `[+]` passed as an item that
// is no object), so a bare sign is refused here as it would be there.
func itemValue(p *fastjson.Parser, span []byte) (*fastjson.Value, error) {
	if len(span) == 1 && (span[0] == '+' || span[0] == '-') {
		return nil, Malformed(fmt.Errorf("cannot parse number: unexpected char: %q", span))
	}
	return ParseJSON(p, span, maxApplicationValues)
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
