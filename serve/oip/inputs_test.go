package oip

import (
	"encoding/json"
	"testing"

	"mlservice/schemas"
)

// TestApplicationInputs: each row's JSON object for the record is valid JSON
// holding exactly the values the model reads.
func TestApplicationInputs(t *testing.T) {
	features := []schemas.Feature{schemas.Income, schemas.CreditScore, schemas.LoanAmount, schemas.YearsEmployed}
	apps := []schemas.Application{
		{ApplicationID: "A-1", Income: 50000, CreditScore: 700, LoanAmount: 20000, YearsEmployed: 5},
		{Income: 75500.5, CreditScore: 655, LoanAmount: 1e20, YearsEmployed: 0.25},
		{Income: 3.4028234663852886e38, CreditScore: 250, LoanAmount: 1, YearsEmployed: 0},
	}
	_, inputs := applicationInputs(apps, features, nil, nil)
	for i, raw := range inputs {
		var got map[string]any
		if err := json.Unmarshal(raw, &got); err != nil {
			t.Fatalf("row %d: %s: %v", i, raw, err)
		}
		for _, f := range features {
			if got[f.String()] != apps[i].Value(f) {
				t.Errorf("row %d: %s = %v, want %v (%s)", i, f, got[f.String()], apps[i].Value(f), raw)
			}
		}
		if id, has := got["application_id"]; (apps[i].ApplicationID != "") != has || (has && id != apps[i].ApplicationID) {
			t.Errorf("row %d: application_id %v", i, id)
		}
	}
}
