package web_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// fixedService answers every decision with the same status and body.
type fixedService struct {
	status int
	body   string
}

func (s fixedService) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(s.status)
	io.WriteString(w, s.body)
}

func resultPage(t *testing.T, svc http.Handler, id string) string {
	t.Helper()
	form, _ := newForm(t, svc, time.Second)
	resp, _ := submit(t, form.URL, values(id))
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("status %d", resp.StatusCode)
	}
	page, err := http.Get(form.URL + resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	defer page.Body.Close()
	b, _ := io.ReadAll(page.Body)
	return string(b)
}

// TestDeclineShowsDecisionIDAndReasons: the result page names the decision
// (its id in the service's decision record) and a decline's reasons, in
// the service's order and words.
func TestDeclineShowsDecisionIDAndReasons(t *testing.T) {
	body := resultPage(t, fixedService{200, `{"application_id":"R-1","decision_id":"0193a1b2-7c3d-7e4f-8a5b-6c7d8e9f0a1b",
		"approve":false,"probability":0.21,"model":{"name":"loan-approval","version":"3","variant":"champion","sha256":"ab12"},
		"reasons":[{"code":"LTI","feature":"loan_amount","text":"Loan is 40% of income or more (yours 40%)"},
		           {"code":"CS","feature":"credit_score","text":"Credit score below 620 (yours 580)"}],"request_id":"r"}`}, "R-1")
	for _, want := range []string{"Declined", "0193a1b2-7c3d-7e4f-8a5b-6c7d8e9f0a1b", "Main reasons for the decline",
		"Loan is 40% of income or more (yours 40%)", "Credit score below 620 (yours 580)", "Loan amount, code LTI"} {
		if !strings.Contains(body, want) {
			t.Errorf("the page does not show %q", want)
		}
	}
	if strings.Index(body, "code LTI") > strings.Index(body, "code CS") {
		t.Error("the reasons are not in the service's order")
	}

	approved := resultPage(t, fixedService{200, `{"decision_id":"d-2","approve":true,"probability":0.9,
		"model":{"name":"loan-approval","version":"3","variant":"champion"}}`}, "R-2")
	if strings.Contains(approved, "Main reasons") || !strings.Contains(approved, "d-2") {
		t.Errorf("an approval's page:\n%s", approved)
	}
}

// TestUndecidableShowsWhy: an application the service cannot decide (a 422
// without fields, as for a model output that is not a finite number) is set
// aside at once, and its page says why.
func TestUndecidableShowsWhy(t *testing.T) {
	body := resultPage(t, fixedService{422, `{"error":{"code":"undecidable","message":"the model gave no finite score for this application; it cannot be decided automatically"},"request_id":"r"}`}, "U-1")
	for _, want := range []string{"could not decide this application", "undecidable", "no finite score", "Not decided"} {
		if !strings.Contains(body, want) {
			t.Errorf("the page does not say %q:\n%s", want, body)
		}
	}
}
