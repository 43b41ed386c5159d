package web

import (
	"crypto/rand"
	"encoding/hex"
	"math"
	"net/url"
	"strconv"
	"strings"
	"time"

	"mlservice/legacy/client"
)

// fieldSpec describes one input of the form. Name is the API's field name,
// so the service's 422 messages land next to the right input unchanged.
type fieldSpec struct {
	Name      string
	Label     string
	Hint      string
	InputMode string
	value     func(*client.Application) **float64
}

// applicationFields are the form's inputs in the order the paper form has
// them; the bounds live in the service, not here.
var applicationFields = []fieldSpec{
	{Name: "application_id", Label: "Reference (application_id)", Hint: "Leave empty to generate one.", InputMode: "text"},
	{Name: "income", Label: "Annual income", InputMode: "decimal", value: func(a *client.Application) **float64 { return &a.Income }},
	{Name: "credit_score", Label: "Credit score", InputMode: "numeric", value: func(a *client.Application) **float64 { return &a.CreditScore }},
	{Name: "loan_amount", Label: "Loan amount", InputMode: "decimal", value: func(a *client.Application) **float64 { return &a.LoanAmount }},
	{Name: "years_employed", Label: "Years employed", InputMode: "decimal", value: func(a *client.Application) **float64 { return &a.YearsEmployed }},
	{Name: "points", Label: "Points", Hint: "The bank's internal applicant score.", InputMode: "decimal", value: func(a *client.Application) **float64 { return &a.Points }},
}

// fieldLabel returns the label of an API field name, or the name itself.
func fieldLabel(name string) string {
	for _, f := range applicationFields {
		if f.Name == name {
			return f.Label
		}
	}
	return name
}

// field is one input as rendered: what the officer typed and what is wrong.
type field struct {
	fieldSpec
	Value string
	Error string
}

// formPage is the form's view model.
type formPage struct {
	Fields []field
	// DraftID is the reference this form will use when the officer leaves
	// the reference empty; it travels with the form, so submitting the same
	// form twice sends the same reference and the service decides once.
	DraftID string
	Summary string
}

func newFormPage(values url.Values, draftID string, problems map[string]string) formPage {
	p := formPage{DraftID: draftID}
	for _, spec := range applicationFields {
		p.Fields = append(p.Fields, field{fieldSpec: spec, Value: values.Get(spec.Name), Error: problems[spec.Name]})
	}
	var other []string
	for name, msg := range problems {
		if fieldLabel(name) == name { // not one of the form's inputs
			if name == "" {
				other = append(other, msg)
			} else {
				other = append(other, name+": "+msg)
			}
		}
	}
	p.Summary = strings.Join(other, "; ")
	if p.Summary == "" && len(problems) > 0 {
		p.Summary = "See the messages next to the fields."
	}
	return p
}

// maxReference mirrors the API's limit only so that an over-long reference
// typed by hand is not silently cut; the service still has the last word.
const maxReference = 64

// parseApplication reads the submitted form. It checks only what cannot be
// sent to the service at all (text that is not a number); every other rule
// is the service's, and its messages are shown as they come. An empty
// number is left out so the service says it is required.
func parseApplication(values url.Values) (client.Application, map[string]string) {
	var app client.Application
	problems := map[string]string{}
	app.ApplicationID = strings.TrimSpace(values.Get("application_id"))
	if app.ApplicationID == "" {
		app.ApplicationID = usableDraftID(values.Get("draft_id"))
	}
	for _, spec := range applicationFields {
		if spec.value == nil {
			continue
		}
		raw := strings.TrimSpace(values.Get(spec.Name))
		if raw == "" {
			continue
		}
		n, err := strconv.ParseFloat(raw, 64)
		if err != nil || math.IsNaN(n) || math.IsInf(n, 0) {
			problems[spec.Name] = "must be a number, e.g. 50000 or 12.5"
			continue
		}
		*spec.value(&app) = &n
	}
	return app, problems
}

// usableDraftID keeps a draft reference from the form if it looks like one
// this program made, and makes a fresh one otherwise.
func usableDraftID(s string) string {
	if len(s) > 0 && len(s) <= maxReference && strings.HasPrefix(s, "WEB-") {
		ok := true
		for _, c := range s {
			if c < '!' || c > '~' {
				ok = false
				break
			}
		}
		if ok {
			return s
		}
	}
	return newDraftID(time.Now())
}

// newDraftID makes a reference for an application the officer leaves
// unnumbered: the day plus 48 random bits, short enough to read out on the
// phone and unique enough for a branch's lifetime.
func newDraftID(now time.Time) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "WEB-" + now.UTC().Format("20060102") + "-" + strings.ToUpper(hex.EncodeToString(b[:]))
}

// sameFigures reports whether two applications carry the same figures, so a
// resubmission can be told from a reference reused for someone else.
func sameFigures(a, b client.Application) bool {
	for _, spec := range applicationFields {
		if spec.value == nil {
			continue
		}
		x, y := *spec.value(&a), *spec.value(&b)
		if (x == nil) != (y == nil) || (x != nil && *x != *y) {
			return false
		}
	}
	return true
}
