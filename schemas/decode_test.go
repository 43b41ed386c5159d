package schemas

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestDecodeApplication(t *testing.T) {
	var d Decoder
	tests := []struct {
		name      string
		body      string
		malformed bool
		fields    map[string]string // expected problems, by field
	}{
		{name: "valid", body: `{"application_id":"A-1","income":50000,"credit_score":700,"loan_amount":20000,"years_employed":5,"points":60}`},
		{name: "valid without id", body: `{"income":1,"credit_score":250,"loan_amount":1,"years_employed":0,"points":0}`},
		{name: "not json", body: `{"income":`, malformed: true},
		{name: "trailing garbage", body: `{"income":1}x`, malformed: true},
		{name: "empty body", body: ``, malformed: true},
		{name: "array body", body: `[1,2]`, fields: map[string]string{"": "an application must be a JSON object"}},
		{name: "string number", body: `{"income":"50000","credit_score":700,"loan_amount":20000,"years_employed":5,"points":60}`,
			fields: map[string]string{"income": "must be a number"}},
		{name: "null", body: `{"income":null,"credit_score":700,"loan_amount":20000,"years_employed":5,"points":60}`,
			fields: map[string]string{"income": "must be a number"}},
		{name: "NaN literal", body: `{"income":NaN,"credit_score":700,"loan_amount":20000,"years_employed":5,"points":60}`, malformed: true},
		// Not JSON numbers, though fastjson's parser takes them: decided,
		// they would be recorded as they came, where no JSON reader reads.
		{name: "leading zero", body: `{"income":050000,"credit_score":700,"loan_amount":20000,"years_employed":5,"points":60}`, malformed: true},
		{name: "bare fraction", body: `{"income":.5,"credit_score":700,"loan_amount":20000,"years_employed":5,"points":60}`, malformed: true},
		{name: "bare point", body: `{"income":5.,"credit_score":700,"loan_amount":20000,"years_employed":5,"points":60}`, malformed: true},
		{name: "plus sign", body: `{"income":+5,"credit_score":700,"loan_amount":20000,"years_employed":5,"points":60}`, malformed: true},
		{name: "overflow", body: `{"income":1e999,"credit_score":700,"loan_amount":20000,"years_employed":5,"points":60}`,
			fields: map[string]string{"income": "must be a finite number"}},
		{name: "positive but zero as a float32", body: `{"income":1e-50,"credit_score":700,"loan_amount":1e-46,"years_employed":5,"points":60}`,
			fields: map[string]string{"income": "must be greater than 0", "loan_amount": "must be greater than 0"}},
		{name: "bounds", body: `{"income":0,"credit_score":901,"loan_amount":-1,"years_employed":-0.5,"points":-1}`,
			fields: map[string]string{"income": "must be greater than 0", "credit_score": "must be no greater than 900",
				"loan_amount": "must be greater than 0", "years_employed": "must be no less than 0", "points": "must be no less than 0"}},
		{name: "missing and unknown", body: `{"income":1,"credit_score":700,"loan_amount":1,"years_employed":1,"colour":"blue"}`,
			fields: map[string]string{"points": "is required", "colour": "unknown field"}},
		{name: "duplicate", body: `{"income":1,"income":2,"credit_score":700,"loan_amount":1,"years_employed":1,"points":1}`,
			fields: map[string]string{"income": "duplicate field"}},
		{name: "id wrong type", body: `{"application_id":7,"income":1,"credit_score":700,"loan_amount":1,"years_employed":1,"points":1}`,
			fields: map[string]string{"application_id": "must be a string"}},
		{name: "id control char", body: `{"application_id":"a\nb","income":1,"credit_score":700,"loan_amount":1,"years_employed":1,"points":1}`,
			fields: map[string]string{"application_id": "must be printable ASCII"}},
		{name: "id too long", body: `{"application_id":"` + strings.Repeat("x", 65) + `","income":1,"credit_score":700,"loan_amount":1,"years_employed":1,"points":1}`,
			fields: map[string]string{"application_id": "the length must be between 1 and 64"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := d.Application([]byte(tc.body))
			var malformed *MalformedError
			var fields FieldErrors
			switch {
			case tc.malformed:
				if !errors.As(err, &malformed) {
					t.Fatalf("want MalformedError, got %v", err)
				}
			case tc.fields == nil:
				if err != nil {
					t.Fatalf("want no error, got %v", err)
				}
			default:
				if !errors.As(err, &fields) {
					t.Fatalf("want FieldErrors, got %v", err)
				}
				for f, want := range tc.fields {
					if fields[f] != want {
						t.Errorf("field %q: got %q, want %q (all: %v)", f, fields[f], want, fields)
					}
				}
				if len(fields) != len(tc.fields) {
					t.Errorf("got %d field errors, want %d: %v", len(fields), len(tc.fields), fields)
				}
			}
		})
	}
}

func TestFieldErrorsAreBounded(t *testing.T) {
	var d Decoder
	var b strings.Builder
	b.WriteString("{")
	for i := range 1000 {
		if i > 0 {
			b.WriteString(",")
		}
		b.WriteString(`"k` + strings.Repeat("z", 100) + string(rune('a'+i%26)) + `":1`)
	}
	b.WriteString("}")
	_, err := d.Application([]byte(b.String()))
	var fields FieldErrors
	if !errors.As(err, &fields) {
		t.Fatalf("want FieldErrors, got %v", err)
	}
	if len(fields) > maxFieldErrors {
		t.Fatalf("%d field errors, cap is %d", len(fields), maxFieldErrors)
	}
	for k := range fields {
		if len(k) > ApplicationIDMaxLength+len("…") {
			t.Fatalf("field name not truncated: %d bytes", len(k))
		}
	}
}

func TestDecodeBatch(t *testing.T) {
	var d Decoder
	good := `{"income":1,"credit_score":700,"loan_amount":1,"years_employed":1,"points":1}`
	bad := `{"income":-1,"credit_score":700,"loan_amount":1,"years_employed":1,"points":1}`
	items, err := d.Batch([]byte(`{"applications":[` + good + `,` + bad + `,` + good + `]}`))
	if err != nil {
		t.Fatal(err)
	}
	if len(items) != 3 || items[0].Err != nil || items[1].Err == nil || items[2].Err != nil {
		t.Fatalf("per-item errors wrong: %+v", items)
	}

	envelopes := map[string]string{
		`{}`:                        "applications",
		`{"applications":[]}`:       "applications",
		`{"applications":{}}`:       "applications",
		`{"applications":[],"x":1}`: "x",
		`[]`:                        "",
		`{"applications":` + strings.Repeat("[", 1) + strings.TrimSuffix(strings.Repeat(good+",", MaxBatch+1), ",") + `]}`: "applications",
	}
	for body, field := range envelopes {
		_, err := d.Batch([]byte(body))
		var fields FieldErrors
		if !errors.As(err, &fields) {
			t.Fatalf("%.40s: want FieldErrors, got %v", body, err)
		}
		if _, ok := fields[field]; !ok {
			t.Fatalf("%.40s: error does not name %q: %v", body, field, fields)
		}
	}
}

// Deep nesting costs what its length allows: fastjson's validator, whose
// error grows with the depth at every level, took minutes on 64 KiB of '['
// (what /v1/predict takes), so it only ever sees what the parser, which
// stops at fastjson.MaxDepth, has bounded.
func TestDeepNestingIsRefusedInBoundedWork(t *testing.T) {
	var d Decoder
	for _, body := range []string{strings.Repeat("[", 64<<10), strings.Repeat(`{"a":`, 12<<10)} {
		done := make(chan error, 1)
		go func() {
			_, err := d.Application([]byte(body))
			done <- err
		}()
		select {
		case err := <-done:
			var malformed *MalformedError
			if !errors.As(err, &malformed) {
				t.Fatalf("%.10s…: %v, want MalformedError", body, err)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("%.10s… (%d bytes) still decoding after 10 s", body, len(body))
		}
	}
}
