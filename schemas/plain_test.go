package schemas

import (
	"math"
	"os"
	"path/filepath"
	"testing"

	"github.com/valyala/fastjson"
)

// slowApplication is the full decoder, without the fast path.
func slowApplication(body []byte) (Application, error) {
	v, err := fastjson.ParseBytes(body)
	if err != nil {
		return Application{}, Malformed(err)
	}
	return applicationFrom(v)
}

func sameApplication(a, b Application) bool {
	if a.ApplicationID != b.ApplicationID {
		return false
	}
	for _, f := range Features {
		if math.Float64bits(a.Value(f)) != math.Float64bits(b.Value(f)) {
			return false
		}
	}
	return true
}

func TestPlainApplication(t *testing.T) {
	for _, tc := range []struct {
		body  string
		plain bool
	}{
		{`{"application_id":"A-1","income":50000,"credit_score":700,"loan_amount":20000,"years_employed":5,"points":60}`, true},
		{" {\n\t\"income\" : 50000.25 , \"credit_score\":700,\"loan_amount\":20000,\"years_employed\":2.5,\"points\":-0}\r\n", true},
		{`{"income":50000,"credit_score":700,"loan_amount":20000,"years_employed":0.5,"points":0}`, true},
		{`{"income":5e4,"credit_score":700,"loan_amount":20000,"years_employed":5,"points":60}`, false},
		{`{"income":050000,"credit_score":700,"loan_amount":20000,"years_employed":5,"points":60}`, false},
		{`{"income":50000.,"credit_score":700,"loan_amount":20000,"years_employed":5,"points":60}`, false},
		{`{"income":1234567890123456,"credit_score":700,"loan_amount":20000,"years_employed":5,"points":60}`, false},
		{`{"inc\u006fme":50000,"credit_score":700,"loan_amount":20000,"years_employed":5,"points":60}`, false},
		{`{"income":50000,"income":50000,"credit_score":700,"loan_amount":20000,"years_employed":5,"points":60}`, false},
		{`{"income":50000,"credit_score":700,"loan_amount":20000,"years_employed":5}`, false},
		{`{"income":50000,"credit_score":700,"loan_amount":20000,"years_employed":5,"points":60,"x":1}`, false},
		{`{"income":50000,"credit_score":7000,"loan_amount":20000,"years_employed":5,"points":60}`, false},
		{`{"application_id":"","income":50000,"credit_score":700,"loan_amount":20000,"years_employed":5,"points":60}`, false},
		{`{"application_id":"A\"1","income":50000,"credit_score":700,"loan_amount":20000,"years_employed":5,"points":60}`, false},
		{`{"income":50000,"credit_score":700,"loan_amount":20000,"years_employed":5,"points":60} x`, false},
		{`{"income":50000,"credit_score":700,"loan_amount":20000,"years_employed":5,"points":60,}`, false},
	} {
		a, ok := plainApplication([]byte(tc.body))
		want, err := slowApplication([]byte(tc.body))
		if ok && (err != nil || !sameApplication(a, want)) {
			t.Errorf("%s: fast path %+v, full decoder %+v, %v", tc.body, a, want, err)
		}
		if tc.plain && !ok {
			t.Errorf("%s: not taken by the fast path", tc.body)
		}
	}
}

// FuzzPlainApplication: whatever the fast path accepts, the full decoder
// accepts, with the same values bit for bit.
func FuzzPlainApplication(f *testing.F) {
	seeds, _ := filepath.Glob(filepath.Join("testdata", "nasty", "*.json"))
	for _, p := range seeds {
		if raw, err := os.ReadFile(p); err == nil {
			f.Add(raw)
		}
	}
	f.Add([]byte(`{"application_id":"A-1","income":50000,"credit_score":700,"loan_amount":20000,"years_employed":5,"points":60}`))
	f.Add([]byte(`{"income":123456.789,"credit_score":700.5,"loan_amount":0.1,"years_employed":0.3,"points":999.999999}`))
	f.Fuzz(func(t *testing.T, body []byte) {
		a, ok := plainApplication(body)
		if !ok {
			return
		}
		want, err := slowApplication(body)
		if err != nil || !sameApplication(a, want) {
			t.Fatalf("%q: fast path %+v, full decoder %+v, %v", body, a, want, err)
		}
	})
}
