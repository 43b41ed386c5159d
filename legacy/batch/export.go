// Package batch is the nightly job: it reads the day's applications as the
// legacy system exports them (CSV), has the decision service decide them in
// chunks through POST /v1/predict/batch, and writes one decision per row
// with the model version that made it. Rows that cannot be decided go to a
// rejects file with the reason. The decisions file is appended and fsynced
// chunk by chunk, so a job killed at any point and started again with the
// same arguments carries on where it stopped and decides every row exactly
// once.
package batch

import (
	"bytes"
	"crypto/sha256"
	"encoding/csv"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"strings"

	"mlservice/legacy/client"
)

// Row is one application of the export, or why it cannot be sent.
type Row struct {
	// Line is where the row starts in the export (the header is line 1).
	Line int
	// ID is the application_id column when the export has one, else a
	// reference derived from the line number and the row's content, the
	// same on every run over the same file.
	ID          string
	Name        string
	Application client.Application
	// Problem says why the row cannot be sent at all; empty if it can.
	Problem string
	// Approved is an outcome's verdict (outcome files only).
	Approved bool
}

// exportColumn maps a numeric column of the export to the application.
type exportColumn struct {
	name  string
	value func(*client.Application) **float64
}

// numericColumns are the export's columns that the service needs, in the
// dataset's order; name, city, loan_approved and any others are not sent.
var numericColumns = []exportColumn{
	{"income", func(a *client.Application) **float64 { return &a.Income }},
	{"credit_score", func(a *client.Application) **float64 { return &a.CreditScore }},
	{"loan_amount", func(a *client.Application) **float64 { return &a.LoanAmount }},
	{"years_employed", func(a *client.Application) **float64 { return &a.YearsEmployed }},
	{"points", func(a *client.Application) **float64 { return &a.Points }},
}

// ErrNoHeader means the export is empty or lacks a needed column.
var ErrNoHeader = errors.New("export has no usable header")

// ReadExport reads a legacy export: a header line, then one application per
// line. Columns are found by name (any order, any case; extra columns
// ignored); CRLF line ends and a UTF-8 byte-order mark are fine. A row that
// is malformed is returned with its Problem, never dropped.
func ReadExport(r io.Reader) ([]Row, error) {
	names := make([]string, len(numericColumns))
	for i, c := range numericColumns {
		names[i] = c.name
	}
	return readRows(r, names, rowFrom)
}

// readRows reads a CSV with a header line naming at least the required
// columns (any order, any case), one Row per line by rowFrom; a line the
// CSV reader cannot read becomes a Row with its Problem.
func readRows(r io.Reader, required []string, rowFrom func(line int, rec, header []string, col map[string]int) Row) ([]Row, error) {
	// The whole file is read first: where a row ends is counted in it.
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	cr := csv.NewReader(bytes.NewReader(data))
	cr.FieldsPerRecord = -1
	cr.LazyQuotes = true
	header, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrNoHeader, err)
	}
	col := map[string]int{}
	for i, h := range header {
		h = strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")))
		if _, dup := col[h]; !dup {
			col[h] = i
		}
	}
	var missing []string
	for _, c := range required {
		if _, ok := col[c]; !ok {
			missing = append(missing, c)
		}
	}
	if len(missing) > 0 {
		return nil, fmt.Errorf("%w: missing column(s) %s", ErrNoHeader, strings.Join(missing, ", "))
	}
	var rows []Row
	for start := cr.InputOffset(); ; start = cr.InputOffset() {
		rec, err := cr.Read()
		if err == io.EOF {
			return rows, nil
		}
		var parseErr *csv.ParseError
		if errors.As(err, &parseErr) && !errors.Is(err, csv.ErrFieldCount) {
			rows = append(rows, Row{Line: parseErr.StartLine, ID: derivedID(parseErr.StartLine, nil),
				Problem: "unreadable CSV: " + parseErr.Err.Error()})
			continue
		}
		if err != nil && !errors.Is(err, csv.ErrFieldCount) {
			return nil, err
		}
		line, _ := cr.FieldPos(0)
		rows = append(rows, rowFrom(line, rec, header, col))
		end := cr.InputOffset()
		if last := lastLine(data, end); last > line && (len(rec) != len(header) || !wellQuoted(data[start:end])) {
			rows = append(rows, swallowed(&rows[len(rows)-1], data[start:end], last, col)...)
		}
	}
}

// lastLine is the line number of the last byte before offset, not counting
// the line end there.
func lastLine(data []byte, offset int64) int {
	rec := bytes.TrimRight(data[:offset], "\r\n")
	return 1 + bytes.Count(rec, []byte{'\n'})
}

// wellQuoted reports whether raw, a row that runs over several lines, is
// one row by the strict rules of CSV: a quoted value with a line break in
// it. The reader's lazy quotes (kept for names like O"Brien on one line)
// would otherwise let a quote left open run on until a later row's quote
// closes it, and read the figures of that later row as this one's.
func wellQuoted(raw []byte) bool {
	cr := csv.NewReader(bytes.NewReader(raw))
	cr.FieldsPerRecord = -1
	recs, err := cr.ReadAll()
	return err == nil && len(recs) == 1
}

// swallowed reports the lines after row's first, up to last, that the CSV
// reader took into row (raw) because a quote in it was left open. Each of
// them gets its own rejected row, named by its own application_id and name
// where the line has them, so that no line of the export goes missing from
// both the decisions and the rejects.
func swallowed(row *Row, raw []byte, last int, col map[string]int) []Row {
	runsOn := fmt.Sprintf("a quote in it is not closed where it should be, so lines %d to %d were read as this one row; lines %d to %d are rejected with it",
		row.Line, last, row.Line+1, last)
	row.Problem = strings.TrimPrefix(row.Problem+"; "+runsOn, "; ")
	lines := bytes.Split(bytes.TrimRight(raw, "\r\n"), []byte{'\n'})
	var out []Row
	for i, text := range lines[len(lines)-(last-row.Line):] {
		n := row.Line + 1 + i
		cr := csv.NewReader(bytes.NewReader(text))
		cr.FieldsPerRecord, cr.LazyQuotes = -1, true
		rec, _ := cr.Read()
		r := Row{Line: n, ID: field(rec, col, "application_id"), Name: field(rec, col, "name"),
			Problem: fmt.Sprintf("read as part of the row on line %d, which has a quote left open; fix that row", row.Line)}
		if r.ID == "" {
			r.ID = derivedID(n, rec)
		}
		out = append(out, r)
	}
	return out
}

// field returns the trimmed value of the named column, or "".
func field(rec []string, col map[string]int, name string) string {
	if i, ok := col[name]; ok && i < len(rec) {
		return strings.TrimSpace(rec[i])
	}
	return ""
}

func rowFrom(line int, rec, header []string, col map[string]int) Row {
	row := Row{Line: line}
	field := func(name string) string { return field(rec, col, name) }
	row.Name = field("name")
	row.ID = field("application_id")
	if row.ID == "" {
		row.ID = derivedID(line, rec)
	}
	row.Application.ApplicationID = row.ID
	if len(rec) != len(header) {
		row.Problem = fmt.Sprintf("has %d columns, the header has %d", len(rec), len(header))
		return row
	}
	var problems []string
	for _, c := range numericColumns {
		raw := field(c.name)
		if raw == "" {
			continue // left out: the service says it is required
		}
		n, err := strconv.ParseFloat(raw, 64)
		if err != nil || math.IsNaN(n) || math.IsInf(n, 0) {
			problems = append(problems, fmt.Sprintf("%s: not a number (%q)", c.name, clip(raw, 40)))
			continue
		}
		*c.value(&row.Application) = &n
	}
	row.Problem = strings.Join(problems, "; ")
	return row
}

// derivedID is the reference of a row without an application_id: the line
// number keeps it readable, the hash of the content keeps it from matching
// a different row if the file is regenerated.
func derivedID(line int, rec []string) string {
	sum := sha256.Sum256([]byte(strings.Join(rec, "\x1f")))
	return "L" + strconv.Itoa(line) + "-" + hex.EncodeToString(sum[:4])
}

func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
