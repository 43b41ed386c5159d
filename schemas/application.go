// Package schemas is the API contract: the JSON Schemas and OpenAPI document the
// server publishes, and the Go decoding and validation that enforce them. The
// two live side by side so that a test can prove they agree.
package schemas

import (
	"math"
	"regexp"

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

// finite rejects NaN and ±Inf, which JSON cannot carry but other callers can.
var finite = validation.By(func(v any) error {
	if f, ok := v.(float64); ok && (math.IsNaN(f) || math.IsInf(f, 0)) {
		return validation.NewError("validation_not_finite", "must be a finite number")
	}
	return nil
})

// featureRules are the bounds of the legacy contract, one rule list per Feature.
// schemas/application.schema.json states the same bounds; contract_test.go
// proves the two agree. The threshold rules of invopop/validation skip zero
// values, so a field whose valid range excludes 0 also needs Required.
var featureRules = [numFeatures][]validation.Rule{
	Income:        {finite, validation.Required.Error("must be greater than 0"), validation.Min(0.0).Exclusive()},
	CreditScore:   {finite, validation.Required.Error("must be no less than 250"), validation.Min(250.0), validation.Max(900.0)},
	LoanAmount:    {finite, validation.Required.Error("must be greater than 0"), validation.Min(0.0).Exclusive()},
	YearsEmployed: {finite, validation.Min(0.0)},
	Points:        {finite, validation.Min(0.0)},
}

var applicationIDRules = []validation.Rule{
	validation.Length(1, ApplicationIDMaxLength),
	validation.Match(regexp.MustCompile(`^[ -~]+$`)).Error("must be printable ASCII"),
}

// Validate checks the application against the contract's bounds and returns
// FieldErrors naming every invalid field, or nil.
func (a *Application) Validate() error {
	var errs FieldErrors
	for _, f := range Features {
		if err := validation.Validate(a.Value(f), featureRules[f]...); err != nil {
			errs = errs.add(f.String(), err.Error())
		}
	}
	if a.ApplicationID != "" {
		if err := validation.Validate(a.ApplicationID, applicationIDRules...); err != nil {
			errs = errs.add("application_id", err.Error())
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return errs
}
