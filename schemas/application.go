// Package schemas is the API contract: the JSON Schemas and OpenAPI document the
// server publishes, and the Go decoding and validation that enforce them. The
// two live side by side so that a test can prove they agree.
package schemas

import (
	"math"
	"strconv"

	"github.com/invopop/validation"
)

// Feature is one numeric field of an application. Models name the features they
// use in their signature; the server maps those names to Features once per model
// version, so scoring a request needs no string lookups.
type Feature int

// The numeric fields of the legacy contract, in the order the contract lists them.
const (
	Income Feature = iota
	CreditScore
	LoanAmount
	YearsEmployed
	Points
	numFeatures
)

// Features lists every Feature in contract order.
var Features = [numFeatures]Feature{Income, CreditScore, LoanAmount, YearsEmployed, Points}

var featureNames = [numFeatures]string{"income", "credit_score", "loan_amount", "years_employed", "points"}

// String returns the field's JSON name.
func (f Feature) String() string {
	if f < 0 || f >= numFeatures {
		return "unknown"
	}
	return featureNames[f]
}

// FeatureByName returns the Feature with the given JSON name.
func FeatureByName(name string) (Feature, bool) {
	for i, n := range featureNames {
		if n == name {
			return Feature(i), true
		}
	}
	return 0, false
}

// Application is one loan application as the legacy IT system sends it.
type Application struct {
	ApplicationID string  `json:"application_id,omitempty"`
	Income        float64 `json:"income"`
	CreditScore   float64 `json:"credit_score"`
	LoanAmount    float64 `json:"loan_amount"`
	YearsEmployed float64 `json:"years_employed"`
	Points        float64 `json:"points"`
}

// Value returns the application's value for f.
func (a *Application) Value(f Feature) float64 {
	switch f {
	case Income:
		return a.Income
	case CreditScore:
		return a.CreditScore
	case LoanAmount:
		return a.LoanAmount
	case YearsEmployed:
		return a.YearsEmployed
	case Points:
		return a.Points
	}
	return math.NaN()
}

// Set stores v as the application's value for f.
func (a *Application) Set(f Feature, v float64) {
	switch f {
	case Income:
		a.Income = v
	case CreditScore:
		a.CreditScore = v
	case LoanAmount:
		a.LoanAmount = v
	case YearsEmployed:
		a.YearsEmployed = v
	case Points:
		a.Points = v
	}
}

// ApplicationIDMaxLength bounds the legacy reference so that logs and metrics
// stay small whatever a client sends.
const ApplicationIDMaxLength = 64

// bound is a numeric range as an invopop/validation Rule. The library's
// Min and Max skip zero values and reflect on every call; the decoder checks
// five fields of up to 10,000 applications per request, so the bounds are a
// rule of our own: no reflection, and its errors are built once.
type bound struct {
	min, max     float64 // ±Inf when open
	exclusiveMin bool
	tooLow       error
	tooHigh      error
}

var errNotFinite = validation.NewError("validation_not_finite", "must be a finite number")

func newBound(min, max float64, exclusiveMin bool) bound {
	b := bound{min: min, max: max, exclusiveMin: exclusiveMin}
	if exclusiveMin {
		b.tooLow = validation.NewError("validation_min_greater_than_required", "must be greater than "+strconv.FormatFloat(min, 'f', -1, 64))
	} else {
		b.tooLow = validation.NewError("validation_min_greater_equal_than_required", "must be no less than "+strconv.FormatFloat(min, 'f', -1, 64))
	}
	b.tooHigh = validation.NewError("validation_max_less_equal_than_required", "must be no greater than "+strconv.FormatFloat(max, 'f', -1, 64))
	return b
}

// Validate implements validation.Rule.
func (b bound) Validate(v any) error {
	f, ok := v.(float64)
	if !ok {
		return validation.NewError("validation_not_a_number", "must be a number")
	}
	return b.check(f)
}

// check is Validate without boxing the value.
func (b bound) check(f float64) error {
	switch {
	case math.IsNaN(f) || math.IsInf(f, 0):
		return errNotFinite
	// The model reads a float32: a positive value that rounds to the
	// exclusive minimum (1e-50 to 0) reaches it as the value refused.
	case f < b.min || (b.exclusiveMin && float32(f) == float32(b.min)):
		return b.tooLow
	case f > b.max:
		return b.tooHigh
	}
	return nil
}

// featureBounds are the bounds of the legacy contract, one per Feature.
// schemas/application.schema.json states the same bounds; contract_test.go
// proves the two agree.
// Every bound is finite and realistic: a number that passes is exact enough
// as a float32 (an exclusive minimum is checked as the float32 the model
// reads) and overflows nothing a model computes from it.
var featureBounds = [numFeatures]bound{
	Income:        newBound(0, 1e8, true),
	CreditScore:   newBound(250, 900, false),
	LoanAmount:    newBound(0, 1e8, true),
	YearsEmployed: newBound(0, 80, false),
	Points:        newBound(0, 1000, false),
}

var _ validation.Rule = bound{}

// printable accepts printable ASCII only, without a regexp on the hot path.
var printable = validation.By(func(v any) error {
	s, _ := v.(string)
	for i := 0; i < len(s); i++ {
		if s[i] < ' ' || s[i] > '~' {
			return validation.NewError("validation_not_printable", "must be printable ASCII")
		}
	}
	return nil
})

var applicationIDRules = []validation.Rule{
	validation.Length(1, ApplicationIDMaxLength),
	printable,
}

// Validate checks the application against the contract's bounds and returns
// FieldErrors naming every invalid field, or nil.
func (a *Application) Validate() error {
	var errs FieldErrors
	for _, f := range Features {
		if err := featureBounds[f].check(a.Value(f)); err != nil {
			errs = errs.add(f.String(), err.Error())
		}
	}
	if a.ApplicationID != "" {
		if err := ValidateApplicationID(a.ApplicationID); err != nil {
			errs = errs.add("application_id", err.Error())
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return errs
}

// ValidateApplicationID checks a reference the way the contract does (1 to 64
// printable ASCII characters), for routes that take one alone: outcomes and
// record look-ups refuse anything else before it reaches a query.
func ValidateApplicationID(id string) error {
	if plainID(id) {
		return nil // what the rules accept, without their reflection (once per batch item)
	}
	return validation.Validate(id, applicationIDRules...)
}

// plainID says whether id is 1 to ApplicationIDMaxLength printable ASCII
// characters: valid by applicationIDRules.
func plainID(id string) bool {
	if len(id) == 0 || len(id) > ApplicationIDMaxLength {
		return false
	}
	for i := 0; i < len(id); i++ {
		if id[i] < ' ' || id[i] > '~' {
			return false
		}
	}
	return true
}
