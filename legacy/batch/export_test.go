package batch

import (
	"strings"
	"testing"
)

func TestReadExport(t *testing.T) {
	const export = "\ufeffName,City,Income,credit_score,loan_amount,years_employed,points,loan_approved,extra\r\n" +
		"Ann,Oslo,50000,700,20000,5,60.0,True,x\r\n" +
		"Bob,Bergen,abc,700,20000,5,60,False,x\r\n" +
		"Cy,Molde,1,2\r\n" +
		"Di,Tromsø,50000,,20000,5,60,False,x\r\n"
	rows, err := ReadExport(strings.NewReader(export))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name    string
		line    int
		problem string
	}{
		{"Ann", 2, ""},
		{"Bob", 3, `income: not a number ("abc")`},
		{"", 4, "has 4 columns, the header has 9"},
		{"Di", 5, ""},
	}
	if len(rows) != len(tests) {
		t.Fatalf("%d rows, want %d", len(rows), len(tests))
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := rows[i]
			if r.Line != tt.line || r.Problem != tt.problem {
				t.Errorf("line %d problem %q, want line %d problem %q", r.Line, r.Problem, tt.line, tt.problem)
			}
			if r.ID == "" || r.Application.ApplicationID != r.ID {
				t.Errorf("id %q / %q", r.ID, r.Application.ApplicationID)
			}
		})
	}
	if a := rows[0].Application; *a.Income != 50000 || *a.Points != 60 {
		t.Errorf("Ann's figures: %v %v", *a.Income, *a.Points)
	}
	if rows[3].Application.CreditScore != nil {
		t.Error("an empty credit score must be left out, for the service to call it required")
	}

	again, _ := ReadExport(strings.NewReader(export))
	for i := range rows {
		if again[i].ID != rows[i].ID {
			t.Errorf("row %d: id %q then %q: derived ids must be stable", i, rows[i].ID, again[i].ID)
		}
	}
}

func TestReadExportUsesApplicationIDColumn(t *testing.T) {
	rows, err := ReadExport(strings.NewReader("application_id,income,credit_score,loan_amount,years_employed,points\nA-7,1,300,1,0,0\n,1,300,1,0,0\n"))
	if err != nil {
		t.Fatal(err)
	}
	if rows[0].ID != "A-7" || !strings.HasPrefix(rows[1].ID, "L3-") {
		t.Errorf("ids %q %q", rows[0].ID, rows[1].ID)
	}
}

func TestReadExportNeedsTheColumns(t *testing.T) {
	if _, err := ReadExport(strings.NewReader("name,income\nAnn,1\n")); err == nil {
		t.Fatal("an export without credit_score etc. must be refused")
	}
}
