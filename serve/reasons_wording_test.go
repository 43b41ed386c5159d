package main

import (
	"encoding/json"
	"testing"

	"mlservice/internal/servetest"
)

// TestReasonWordingAtABandEdge: an applicant exactly on a band edge (a loan
// of 40% of income: bands are [lower, upper), so 40% is in the "40% or
// more" band of the shipped champion) gets a reason that is true of them,
// not "more than 40% (yours 40%)". The README's example application.
func TestReasonWordingAtABandEdge(t *testing.T) {
	srv := servetest.Start(t, servetest.Options{})
	resp, raw := postText(t, srv.URL+"/v1/predict", "application/json",
		`{"application_id":"A-1001","income":50000,"credit_score":700,"loan_amount":20000,"years_employed":5,"points":55}`)
	var d struct {
		Approve bool
		Model   struct{ Version string }
		Reasons []struct{ Code, Feature, Text string }
	}
	if err := json.Unmarshal(raw, &d); err != nil || resp.StatusCode != 200 {
		t.Fatalf("predict: %d %s", resp.StatusCode, raw)
	}
	if d.Approve || len(d.Reasons) == 0 {
		t.Fatalf("want a decline with reasons: %s", raw)
	}
	for _, r := range d.Reasons {
		if r.Code == "LTI" {
			if want := "Loan is 40% of income or more (yours 40%)"; r.Text != want {
				t.Fatalf("version %s: LTI reason %q, want %q", d.Model.Version, r.Text, want)
			}
			return
		}
	}
	t.Fatalf("no LTI reason: %s", raw)
}
