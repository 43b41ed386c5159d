package schemas

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"
)

// compileApplicationSchema compiles the published schema with a real JSON
// Schema validator, so the test compares the Go decoder with the standard's
// reading of the file, not with our reading of it.
func compileApplicationSchema(t *testing.T) (*jsonschema.Schema, map[string]any) {
	t.Helper()
	raw, err := Schema("Application")
	if err != nil {
		t.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("application.schema.json", doc); err != nil {
		t.Fatal(err)
	}
	s, err := c.Compile("application.schema.json")
	if err != nil {
		t.Fatal(err)
	}
	var plain map[string]any
	if err := json.Unmarshal(raw, &plain); err != nil {
		t.Fatal(err)
	}
	return s, plain
}

func validApplication() map[string]any {
	return map[string]any{
		"application_id": "A-1001", "income": 50000.0, "credit_score": 700.0,
		"loan_amount": 20000.0, "years_employed": 5.0, "points": 60.0,
	}
}

type contractCase struct {
	name  string
	field string // the field the case breaks ("" for valid cases)
	body  map[string]any
}

// contractCases derives its cases from the schema's own bounds, so a bound
// changed on one side only makes the test fail.
func contractCases(t *testing.T, schema map[string]any) []contractCase {
	props := schema["properties"].(map[string]any)
	var cases []contractCase
	with := func(name, field string, value any, remove bool) {
		b := validApplication()
		if remove {
			delete(b, field)
		} else {
			b[field] = value
		}
		cases = append(cases, contractCase{name: name, field: field, body: b})
	}
	cases = append(cases, contractCase{name: "valid", body: validApplication()})
	names := make([]string, 0, len(props))
	for n := range props {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, field := range names {
		p := props[field].(map[string]any)
		if p["type"] == "number" {
			for _, key := range []string{"minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum"} {
				bound, ok := p[key].(float64)
				if !ok {
					continue
				}
				for _, d := range []float64{-1, -0.001, 0, 0.001, 1} {
					with(fmt.Sprintf("%s %s%+g", field, key, d), field, bound+d, false)
				}
			}
			// 3.5e38 and 1e39 overflow a float32 tensor (issue 12: NaN answers).
			for _, v := range []any{0.0, math.Copysign(0, -1), "12", nil, true, []any{1.0}, map[string]any{}, 1e300, -1e300, 3.5e38, 1e39, -3.5e38} {
				with(fmt.Sprintf("%s=%v", field, v), field, v, false)
			}
		}
		if p["type"] == "string" {
			for _, v := range []any{"", "x", strings.Repeat("a", 64), strings.Repeat("a", 65),
				"tab\there", "nul\x00", "é", "A 1001", 42.0, nil} {
				with(fmt.Sprintf("%s=%q", field, v), field, v, false)
			}
		}
		with("missing "+field, field, nil, true)
	}
	b := validApplication()
	b["favourite_colour"] = "blue"
	cases = append(cases, contractCase{name: "unknown field", field: "favourite_colour", body: b})
	return cases
}

func TestSchemaAndValidationAgree(t *testing.T) {
	schema, plain := compileApplicationSchema(t)
	var d Decoder
	for _, tc := range contractCases(t, plain) {
		t.Run(tc.name, func(t *testing.T) {
			raw, err := json.Marshal(tc.body)
			if err != nil {
				t.Fatal(err)
			}
			inst, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
			if err != nil {
				t.Fatal(err)
			}
			schemaErr := schema.Validate(inst)
			_, goErr := d.Application(raw)
			if (schemaErr == nil) != (goErr == nil) {
				t.Fatalf("disagree on %s: schema says %v, validation says %v", raw, schemaErr, goErr)
			}
			if goErr == nil {
				return
			}
			var fields FieldErrors
			if !errors.As(goErr, &fields) {
				t.Fatalf("want FieldErrors, got %T %v", goErr, goErr)
			}
			if _, ok := fields[tc.field]; !ok {
				t.Fatalf("error does not name %q: %v", tc.field, fields)
			}
		})
	}
}

func TestSchemaListsTheFieldsTheDecoderKnows(t *testing.T) {
	_, plain := compileApplicationSchema(t)
	if plain["additionalProperties"] != false {
		t.Fatal("schema must forbid additional properties, as the decoder does")
	}
	var required []string
	for _, r := range plain["required"].([]any) {
		required = append(required, r.(string))
	}
	var want []string
	for _, f := range Features {
		want = append(want, f.String())
	}
	if strings.Join(required, ",") != strings.Join(want, ",") {
		t.Fatalf("schema requires %v, decoder requires %v", required, want)
	}
	props := plain["properties"].(map[string]any)
	if len(props) != len(Features)+1 {
		t.Fatalf("schema has %d properties, decoder knows %d", len(props), len(Features)+1)
	}
	if maxLen := props["application_id"].(map[string]any)["maxLength"].(float64); int(maxLen) != ApplicationIDMaxLength {
		t.Fatalf("application_id maxLength %v != %d", maxLen, ApplicationIDMaxLength)
	}
}

func TestOpenAPIInlinesEverySchema(t *testing.T) {
	raw, err := OpenAPI()
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Components struct {
			Schemas map[string]map[string]any `json:"schemas"`
		} `json:"components"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	for component := range schemaFiles {
		s, ok := doc.Components.Schemas[component]
		if !ok || s["type"] != "object" {
			t.Fatalf("component %s missing or not an object schema", component)
		}
	}
	// Every $ref in the document must resolve inside it.
	for _, ref := range refsIn(string(raw)) {
		name := strings.TrimPrefix(ref, "#/components/schemas/")
		if name != ref {
			if _, ok := doc.Components.Schemas[name]; !ok {
				t.Errorf("dangling $ref %s", ref)
			}
		}
	}
}

func refsIn(doc string) []string {
	var refs []string
	for _, part := range strings.Split(doc, `"$ref":"`)[1:] {
		refs = append(refs, part[:strings.IndexByte(part, '"')])
	}
	return refs
}

// TestEveryNumberHasARealisticBound: each number of the contract is bounded on
// both sides in the schema (and so, by TestSchemaAndValidationAgree, in the
// Go validation), and every accepted value is a finite float32 far from
// overflow, so nothing that overflows float32 reaches a tensor.
func TestEveryNumberHasARealisticBound(t *testing.T) {
	_, plain := compileApplicationSchema(t)
	for name, p := range plain["properties"].(map[string]any) {
		p := p.(map[string]any)
		if p["type"] != "number" {
			continue
		}
		hi, ok := p["maximum"].(float64)
		if !ok {
			t.Errorf("%s has no maximum", name)
			continue
		}
		_, lo := p["minimum"].(float64)
		_, exLo := p["exclusiveMinimum"].(float64)
		if !lo && !exLo {
			t.Errorf("%s has no minimum", name)
		}
		if f := float32(hi); math.IsInf(float64(f), 0) || hi > 1e9 {
			t.Errorf("%s maximum %g is not a realistic bound", name, hi)
		}
	}
	var d Decoder
	_, err := d.Application([]byte(`{"income":1e39,"credit_score":700,"loan_amount":3.5e38,"years_employed":5,"points":60}`))
	var fields FieldErrors
	if !errors.As(err, &fields) || fields["income"] != "must be no greater than 100000000" || fields["loan_amount"] == "" {
		t.Fatalf("float32-overflowing numbers: %v", err)
	}
}
