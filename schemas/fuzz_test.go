package schemas

import (
	"errors"
	"math"
	"os"
	"path/filepath"
	"testing"
)

// FuzzDecodeApplication feeds arbitrary bodies to the decoder: it must never
// panic, must fail with one of its two error types, and anything it accepts
// must satisfy the contract's bounds.
func FuzzDecodeApplication(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join("testdata", "nasty", "*.json"))
	for _, p := range seeds {
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
