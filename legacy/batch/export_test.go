package batch

import (
	"slices"
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

// TestReadExportAccountsForEveryLine: a quote left open in one row makes
// the CSV reader take the lines after it as part of that row; each of those
// lines is still returned, rejected with the row that swallowed it, so
// none is silently missing from both the decisions and the rejects. A
// quoted value with a line break in a row that is otherwise right stays
// one row.
func TestReadExportAccountsForEveryLine(t *testing.T) {
	const header = "name,city,income,credit_score,loan_amount,years_employed,points\n"
	tests := map[string]struct {
		export  string
		lines   []int // the rows' lines
		refused []int // the lines with a problem
	}{
		"a quote closed further down": {header + "a,X,1,700,1,1,1\n\"Smith, John,NYC,1,700,1,1,1\nc,X,1,700,1,1,1\nd,X,1,700,1,1,1\ne,\"X\",1,700,1,1,1\nf,X,1,700,1,1,1\n",
			[]int{2, 3, 4, 5, 6, 7}, []int{3, 4, 5, 6}},
		"a quote never closed": {header + "a,X,1,700,1,1,1\n\"Smith, John,NYC,1,700,1,1,1\r\nc,X,1,700,1,1,1\r\nd,X,1,700,1,1,1",
			[]int{2, 3, 4, 5}, []int{3, 4, 5}},
		"a quote closed by a later row's quote, with the right column count": {header + "a,X,1,700,1,1,1\n\"Smith, John,NYC,1,700,1,1,1\nc,X,1,700,1,1,1\n\"Bo\",X,1,700,1,1,1\ne,X,1,700,1,1,1\n",
			[]int{2, 3, 4, 5, 6}, []int{3, 4, 5}},
		"a line break inside a quoted city": {header + "a,X,1,700,1,1,1\nb,\"New\nYork\",1,700,1,1,1\nc,X,1,700,1,1,1\n",
			[]int{2, 3, 5}, nil},
	}
	for name, tt := range tests {
		t.Run(name, func(t *testing.T) {
			rows, err := ReadExport(strings.NewReader(tt.export))
			if err != nil {
				t.Fatal(err)
			}
			var lines, refused []int
			for _, r := range rows {
				lines = append(lines, r.Line)
				if r.Problem != "" {
					refused = append(refused, r.Line)
				}
			}
			if !slices.Equal(lines, tt.lines) || !slices.Equal(refused, tt.refused) {
				t.Fatalf("rows on lines %v, refused %v; want %v and %v\n%+v", lines, refused, tt.lines, tt.refused, rows)
			}
			ids := map[string]bool{}
			physical := strings.Split(tt.export, "\n")
			for _, r := range rows {
				if ids[r.ID] {
					t.Fatalf("id %s twice", r.ID)
				}
				ids[r.ID] = true
				if own, _, _ := strings.Cut(physical[r.Line-1], ","); strings.Contains(r.Problem, "read as part of") && r.Name != strings.Trim(own, `"`) {
					t.Errorf("line %d is named %q, want its own name %q", r.Line, r.Name, own)
				}
			}
		})
	}
}
