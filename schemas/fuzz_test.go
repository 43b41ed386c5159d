package schemas

import (
	"encoding/json"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/valyala/fastjson"
)

// FuzzDecodeApplication feeds arbitrary bodies to the decoder: it must never
// panic, must fail with one of its two error types, and anything it accepts
// must satisfy the contract's bounds.
func FuzzDecodeApplication(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join("testdata", "nasty", "*.json"))
	for _, p := range seeds {
		if strings.HasSuffix(p, ".want.json") { // a case's expected errors, not a body
			continue
		}
		raw, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	f.Add([]byte(`{"application_id":"A-1","income":50000,"credit_score":700,"loan_amount":20000,"years_employed":5,"points":60}`))
	var d Decoder
	f.Fuzz(func(t *testing.T, body []byte) {
		a, err := d.Application(body)
		if err != nil {
			var fields FieldErrors
			var malformed *MalformedError
			if !errors.As(err, &fields) && !errors.As(err, &malformed) {
				t.Fatalf("unexpected error type %T: %v", err, err)
			}
			return
		}
		for _, f := range Features {
			v := a.Value(f)
			if math.IsNaN(v) || math.IsInf(v, 0) || v < 0 {
				t.Fatalf("accepted %s=%v from %q", f, v, body)
			}
		}
		if a.Income <= 0 || a.LoanAmount <= 0 || a.CreditScore < 250 || a.CreditScore > 900 || len(a.ApplicationID) > ApplicationIDMaxLength {
			t.Fatalf("accepted out-of-bounds application %+v from %q", a, body)
		}
		if _, err := d.Batch(body); err == nil {
			t.Fatalf("a single application was accepted as a batch: %q", body)
		}
	})
}

// FuzzBatchEnvelope checks the batch scanner against a full parse: a body is
// malformed exactly when fastjson's validator says so, and an accepted
// envelope's items are the array's elements, byte for byte.
func FuzzBatchEnvelope(f *testing.F) {
	for _, p := range nastyCases(f) {
		raw, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	f.Add([]byte(`{"applications":[{"application_id":"a]\"}[{","income":1},[1,{"x":"]"}], "s" ,-1.5e3,null]}`))
	f.Add([]byte(` { "x" : {"a":[1,2,{"b":"}"}]} , "applications" : [ true ] } `))
	var d Decoder
	f.Fuzz(func(t *testing.T, body []byte) {
		items, err := d.Batch(body)
		var malformed *MalformedError
		// fastjson's parser is laxer than its validator (00, NaN): where
		// the two agree, so must the scanner; nesting the parser refuses is
		// malformed.
		_, perr := fastjson.ParseBytes(body)
		tooDeep := perr != nil && strings.Contains(perr.Error(), "depth")
		var verr error
		if !tooDeep {
			// Only what the parser bounded: the validator's error grows
			// with the depth at every level (schemas.ParseJSON).
			verr = fastjson.ValidateBytes(body)
		}
		isMalformed := errors.As(err, &malformed)
		switch {
		case tooDeep, perr != nil && verr != nil:
			if !isMalformed {
				t.Fatalf("invalid JSON not called malformed (%v): %.300q", err, body)
			}
		case perr == nil && verr == nil && json.Valid(body):
			// fastjson lets raw control characters stand in strings;
			// RFC 8259 (and encoding/json, and the scanner) does not.
			if isMalformed {
				t.Fatalf("valid JSON called malformed (%v): %.300q", err, body)
			}
		}
		if err != nil {
			return
		}
		v, perr := fastjson.ParseBytes(body)
		if perr != nil {
			t.Fatalf("accepted what fastjson cannot parse: %.300q", body)
		}
		elems, _ := v.Get("applications").Array()
		if len(elems) != len(items) {
			t.Fatalf("%d items, the array has %d: %q", len(items), len(elems), body)
		}
		for i, e := range elems {
			if want := e.String(); want != string(fastjson.MustParseBytes(items[i].JSON).MarshalTo(nil)) {
				t.Fatalf("item %d is %q, the array's element %q", i, items[i].JSON, want)
			}
		}
	})
}
