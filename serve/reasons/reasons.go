// Package reasons turns a scorecard-shaped model version's contribution
// outputs into the principal reasons for a decline, in the bank's words.
//
// A version's reasons.json (beside model.onnx) is its reasons table: per
// characteristic (one contrib_<name> output of the ONNX graph) the input field
// a reason names, how the applicant's value is computed and formatted, the
// reason code and the bands with their log-odds contribution and wording.
// Parse reads and validates it; Table.Cover proves it explains every
// contribution output of the graph; Table.Explain ranks the reasons for one
// declined application: the points it lost against each characteristic's best
// band, largest first, at most four (Regulation B's commentary: more than four
// is not helpful).
//
// A Table is immutable once parsed and safe for concurrent use.
package reasons

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"mlservice/schemas"
)

// FileName is the reasons table's file name in a model version's directory.
const FileName = "reasons.json"

// ContribPrefix starts the name of every contribution output of the graph.
const ContribPrefix = "contrib_"

// MaxReasons is the most reasons a decline carries.
const MaxReasons = 4

// MinBandGap is the least difference between two bands' contributions of one
// characteristic, so the band nearest the model's output is never ambiguous.
const MinBandGap = 1e-3

// Reason is one principal reason for a decline.
type Reason struct {
	Code    string `json:"code"`
	Feature string `json:"feature"` // the input field it names
	Text    string `json:"text"`
}

// Value formats, as the table's value_format names them.
const (
	FormatInteger  = "integer"
	FormatCurrency = "currency"
	FormatPercent  = "percent"
	FormatYears    = "years"
)

// Directions: how a characteristic's contribution moves as its value grows.
const (
	Increasing = "increasing"
	Decreasing = "decreasing"
)

var (
	// ErrNoTable means the version has no reasons.json: it cannot give
	// reasons, so it may serve only as shadow.
	ErrNoTable = errors.New("reasons: the version has no reasons table (reasons.json)")
	// ErrNotCovered means the table and the graph's contribution outputs do
	// not match one to one.
	ErrNotCovered = errors.New("reasons: the reasons table does not cover the model's contribution outputs")
)

// Band is one band of a characteristic: values in [Lower, Upper) (nil = open).
type Band struct {
	Lower        *float64 `json:"lower"`
	Upper        *float64 `json:"upper"`
	Contribution float64  `json:"contribution"`
	Text         *string  `json:"text"`
}

// ValueSpec says how the applicant's value of a characteristic is computed:
// one input field, or the ratio of two.
type ValueSpec struct {
	Field string   `json:"field,omitempty"`
	Ratio []string `json:"ratio,omitempty"`

	num, den schemas.Feature
	ratio    bool
}

// Characteristic is one row group of the scorecard.
type Characteristic struct {
	Name        string    `json:"name"`
	Field       string    `json:"field"`
	Value       ValueSpec `json:"value"`
	ValueFormat string    `json:"value_format"`
	Direction   string    `json:"direction"`
	Code        string    `json:"code"`
	Bands       []Band    `json:"bands"`

	best     float64 // the largest band contribution
	bestBand int     // the band that has it
}

// Table is a version's parsed and validated reasons table.
type Table struct {
	FormatVersion   int              `json:"format_version"`
	Threshold       float64          `json:"threshold"`
	Characteristics []Characteristic `json:"characteristics"`

	byName map[string]int
	// cols[i] is the column of Characteristics[i] in the contributions
	// Rank is given: the model's output order (table order until Load binds it).
	cols []int
}

var nameRE = regexp.MustCompile(`^[a-z][a-z0-9_]{0,62}$`)
var codeRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,32}$`)

// ReadFile reads and validates a reasons table; a missing file is ErrNoTable.
func ReadFile(path string) (*Table, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNoTable
	}
	if err != nil {
		return nil, fmt.Errorf("reasons: %w", err)
	}
	t, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return t, nil
}

// Parse decodes and validates a reasons table. Unknown fields are errors, so
// a misspelt key never silently drops a rule.
func Parse(b []byte) (*Table, error) {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var t Table
	if err := dec.Decode(&t); err != nil {
		return nil, fmt.Errorf("reasons: not a reasons table: %w", err)
	}
	if dec.More() {
		return nil, errors.New("reasons: trailing data after the table")
	}
	if err := t.validate(); err != nil {
		return nil, fmt.Errorf("reasons: %w", err)
	}
	return &t, nil
}

func (t *Table) validate() error {
	if t.FormatVersion != 1 {
		return fmt.Errorf("format_version %d: only 1 is known", t.FormatVersion)
	}
	if !(t.Threshold > 0 && t.Threshold < 1) {
		return fmt.Errorf("threshold %v: must be between 0 and 1", t.Threshold)
	}
	if len(t.Characteristics) == 0 {
		return errors.New("no characteristics")
	}
	t.byName = make(map[string]int, len(t.Characteristics))
	codes := map[string]string{}
	for i := range t.Characteristics {
		c := &t.Characteristics[i]
		if err := c.validate(); err != nil {
			return fmt.Errorf("characteristic %d (%q): %w", i, c.Name, err)
		}
		if _, dup := t.byName[c.Name]; dup {
			return fmt.Errorf("characteristic %q appears twice", c.Name)
		}
		t.byName[c.Name] = i
		if other, dup := codes[c.Code]; dup {
			return fmt.Errorf("reason code %q is used by %q and %q", c.Code, other, c.Name)
		}
		codes[c.Code] = c.Name
		t.cols = append(t.cols, i)
	}
	return nil
}

func (c *Characteristic) validate() error {
	if !nameRE.MatchString(c.Name) {
		return errors.New("name must be lower-case letters, digits and _ (the output is contrib_<name>)")
	}
	if _, ok := schemas.FeatureByName(c.Field); !ok {
		return fmt.Errorf("field %q is not an input field of the API", c.Field)
	}
	if !codeRE.MatchString(c.Code) {
		return fmt.Errorf("code %q: 1-32 letters, digits, '_', '.' or '-'", c.Code)
	}
	if err := c.Value.resolve(); err != nil {
		return err
	}
	// The reason names field to the applicant: it must be one the value
	// is computed from, or the reason would point at the wrong input.
	if c.Field != c.Value.Field && !slices.Contains(c.Value.Ratio, c.Field) {
		return fmt.Errorf("field %q is not the value's field nor one of its ratio's", c.Field)
	}
	switch c.ValueFormat {
	case FormatInteger, FormatCurrency, FormatPercent, FormatYears:
	default:
		return fmt.Errorf("value_format %q: must be integer, currency, percent or years", c.ValueFormat)
	}
	if c.Direction != Increasing && c.Direction != Decreasing {
		return fmt.Errorf("direction %q: must be increasing or decreasing", c.Direction)
	}
	if len(c.Bands) < 2 {
		return errors.New("needs at least two bands")
	}
	c.best = math.Inf(-1)
	for j, b := range c.Bands {
		if math.IsNaN(b.Contribution) || math.IsInf(b.Contribution, 0) {
			return fmt.Errorf("band %d: contribution must be finite", j)
		}
		first, last := j == 0, j == len(c.Bands)-1
		if first != (b.Lower == nil) {
			return fmt.Errorf("band %d: only the first band has an open lower end (null)", j)
		}
		if last != (b.Upper == nil) {
			return fmt.Errorf("band %d: only the last band has an open upper end (null)", j)
		}
		if b.Lower != nil && b.Upper != nil && !(*b.Lower < *b.Upper) {
			return fmt.Errorf("band %d: lower %v is not below upper %v", j, *b.Lower, *b.Upper)
		}
		if j > 0 {
			prev := c.Bands[j-1]
			if *prev.Upper != *b.Lower {
				return fmt.Errorf("band %d: starts at %v but band %d ends at %v (bands must be contiguous)", j, *b.Lower, j-1, *prev.Upper)
			}
			step := b.Contribution - prev.Contribution
			if c.Direction == Decreasing {
				step = -step
			}
			if step < MinBandGap {
				return fmt.Errorf("band %d: contribution %v after %v is not %s by at least %g (the table must be monotone)",
					j, b.Contribution, prev.Contribution, c.Direction, MinBandGap)
			}
		}
		if b.Contribution > c.best {
			c.best, c.bestBand = b.Contribution, j
		}
	}
	for j, b := range c.Bands {
		if b.Contribution < c.best && (b.Text == nil || strings.TrimSpace(*b.Text) == "") {
			return fmt.Errorf("band %d: a band below the best one needs a text (it can be a reason)", j)
		}
	}
	return nil
}

func (v *ValueSpec) resolve() error {
	hasRatio := v.Ratio != nil
	switch {
	case v.Field != "" && hasRatio:
		return errors.New(`value: give "field" or "ratio", not both`)
	case v.Field != "":
		f, ok := schemas.FeatureByName(v.Field)
		if !ok {
			return fmt.Errorf("value: field %q is not an input field", v.Field)
		}
		v.num = f
	case hasRatio:
		if len(v.Ratio) != 2 {
			return fmt.Errorf("value: ratio %q: needs [numerator, denominator]", v.Ratio)
		}
		num, ok1 := schemas.FeatureByName(v.Ratio[0])
		den, ok2 := schemas.FeatureByName(v.Ratio[1])
		if !ok1 || !ok2 {
			return fmt.Errorf("value: ratio %q: both must be input fields", v.Ratio)
		}
		v.num, v.den, v.ratio = num, den, true
	default:
		return errors.New(`value: needs "field" or "ratio"`)
	}
	return nil
}

// of returns the applicant's value of the characteristic.
func (v *ValueSpec) of(a *schemas.Application) float64 {
	if !v.ratio {
		return a.Value(v.num)
	}
	d := a.Value(v.den)
	if d == 0 {
		return math.Inf(1)
	}
	return a.Value(v.num) / d
}

// Names returns the characteristics' names in table order.
func (t *Table) Names() []string {
	out := make([]string, len(t.Characteristics))
	for i, c := range t.Characteristics {
		out[i] = c.Name
	}
	return out
}

// Cover checks that the table explains exactly the graph's contribution
// outputs: every contrib_<name> output has a characteristic and every
// characteristic an output. outputs are the graph's output names (others
// than contrib_* are ignored).
func (t *Table) Cover(outputs []string) error {
	have := map[string]bool{}
	var missing, extra []string
	for _, o := range outputs {
		name, ok := strings.CutPrefix(o, ContribPrefix)
		if !ok {
			continue
		}
		have[name] = true
		if _, ok := t.byName[name]; !ok {
			missing = append(missing, o)
		}
	}
	for _, c := range t.Characteristics {
		if !have[c.Name] {
			extra = append(extra, c.Name)
		}
	}
	if len(missing) == 0 && len(extra) == 0 {
		return nil
	}
	var parts []string
	if len(missing) > 0 {
		parts = append(parts, "outputs with no characteristic: "+strings.Join(missing, ", "))
	}
	if len(extra) > 0 {
		parts = append(parts, "characteristics with no contrib_ output: "+strings.Join(extra, ", "))
	}
	return fmt.Errorf("%w: %s", ErrNotCovered, strings.Join(parts, "; "))
}

// BandOf returns the index of the band whose contribution is nearest c, the
// model's contribution output for the characteristic.
func (ch *Characteristic) BandOf(c float64) int {
	best, dist := 0, math.Inf(1)
	for j, b := range ch.Bands {
		if d := math.Abs(b.Contribution - c); d < dist {
			best, dist = j, d
		}
	}
	return best
}

// BandOfValue returns the index of the band that holds value v by its edges.
func (ch *Characteristic) BandOfValue(v float64) int {
	for j, b := range ch.Bands {
		if b.Upper == nil || v < *b.Upper {
			return j
		}
	}
	return len(ch.Bands) - 1
}

// BestBand returns the index of the band with the largest contribution.
func (ch *Characteristic) BestBand() int { return ch.bestBand }

// Characteristic returns the named characteristic.
func (t *Table) Characteristic(name string) (*Characteristic, bool) {
	i, ok := t.byName[name]
	if !ok {
		return nil, false
	}
	return &t.Characteristics[i], true
}

// Ranked is one reason for a decline before its text is written: the
// table's characteristic and the band the applicant is in.
type Ranked struct{ Characteristic, Band int }

// Rank appends to dst the reasons for a declined application: for each
// characteristic the applicant is not in the best band of (the band nearest
// the output: a float32 output is not exactly its band's contribution), the
// loss of its contribution against the best band's, largest first (ties in
// table order), at most MaxReasons. contributions are the model's outputs in
// the order of the characteristics the table was loaded with (table order
// for a parsed one).
// It appends nothing when no characteristic lost anything.
func (t *Table) Rank(dst []Ranked, contributions []float32) []Ranked {
	var (
		buf    [MaxReasons + 1]Ranked
		loss   [MaxReasons + 1]float64
		ranked = buf[:0]
	)
	for i := range t.Characteristics {
		col := t.cols[i]
		if col >= len(contributions) {
			continue // Load guarantees every column; a caller's gap is not a reason
		}
		ch := &t.Characteristics[i]
		c := float64(contributions[col])
		band := ch.BandOf(c)
		if band == ch.bestBand {
			continue
		}
		l := ch.best - c
		// Insert in rank order; a tie goes after the earlier characteristic.
		k := len(ranked)
		for k > 0 && loss[k-1] < l {
			k--
		}
		if k == MaxReasons {
			continue
		}
		if len(ranked) < MaxReasons {
			ranked = ranked[:len(ranked)+1]
		}
		copy(ranked[k+1:], ranked[k:len(ranked)-1])
		copy(loss[k+1:len(ranked)], loss[k:len(ranked)-1])
		ranked[k], loss[k] = Ranked{i, band}, l
	}
	return append(dst, ranked...)
}

// AppendText appends r's text for applicant a: its band's text with
// {value} replaced by the applicant's value (nothing for a band without).
func (t *Table) AppendText(b []byte, r Ranked, a *schemas.Application) []byte {
	ch := &t.Characteristics[r.Characteristic]
	tx := ch.Bands[r.Band].Text
	if tx == nil {
		return b
	}
	const placeholder = "{value}"
	text := *tx
	for {
		i := strings.Index(text, placeholder)
		if i < 0 {
			return append(b, text...)
		}
		b = append(b, text[:i]...)
		b = AppendValue(b, ch.ValueFormat, ch.shown(ch.Value.of(a), r.Band))
		text = text[i+len(placeholder):]
	}
}

// shown is v as the text shows it, rounded to the format's precision but
// never across an edge of the band v is in: an income of $49,999.70 in
// "below $50,000" is shown as $49,999, not as $50,000.
func (ch *Characteristic) shown(v float64, band int) float64 {
	bd := ch.Bands[band]
	r := displayed(ch.ValueFormat, v, math.Round)
	switch {
	case bd.Upper != nil && v < *bd.Upper && r >= *bd.Upper:
		return displayed(ch.ValueFormat, v, math.Floor)
	case bd.Lower != nil && v >= *bd.Lower && r < *bd.Lower:
		return displayed(ch.ValueFormat, v, math.Ceil)
	}
	return v
}

// displayed is v at the precision AppendValue writes it, rounded by round,
// with AppendValue's own arithmetic (0.95 years is 9.5 tenths there, where
// 0.95/0.1 is 9.4999…).
func displayed(format string, v float64, round func(float64) float64) float64 {
	switch format {
	case FormatPercent:
		return round(v*100*10) / 1000
	case FormatYears:
		return round(v*10) / 10
	}
	return round(v)
}

// Reason is r as a Reason with the given text.
func (t *Table) Reason(r Ranked, text string) Reason {
	ch := &t.Characteristics[r.Characteristic]
	return Reason{Code: ch.Code, Feature: ch.Field, Text: text}
}

// Explain is Rank with the texts written: the ranked reasons for a declined
// application, nil when no characteristic lost anything.
func (t *Table) Explain(a *schemas.Application, contributions []float32) []Reason {
	ranked := t.Rank(nil, contributions)
	if len(ranked) == 0 {
		return nil
	}
	out := make([]Reason, len(ranked))
	var text []byte
	for k, r := range ranked {
		text = t.AppendText(text[:0], r, a)
		out[k] = t.Reason(r, string(text))
	}
	return out
}

// Codes returns the reasons' codes in order.
func Codes(rs []Reason) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.Code
	}
	return out
}

// CheckCodes compares the reasons computed for a serving-check case with the
// codes the training run recorded, in order.
func CheckCodes(got []Reason, want []string) error {
	g := Codes(got)
	if len(g) != len(want) {
		return fmt.Errorf("reasons %v, training run recorded %v", g, want)
	}
	for i := range g {
		if g[i] != want[i] {
			return fmt.Errorf("reasons %v, training run recorded %v", g, want)
		}
	}
	return nil
}

// FormatValue writes an applicant's value the way the bank words it:
// integer "612", currency "$45,000", percent "27%" (one decimal when it is
// not whole: "27.5%"; "over 1000000%" past that), years "1 year" / "3 years" / "2.5 years".
func FormatValue(format string, v float64) string {
	var buf [32]byte
	return string(AppendValue(buf[:0], format, v))
}

// AppendValue appends v formatted as FormatValue has it.
func AppendValue(b []byte, format string, v float64) []byte {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		return append(b, "n/a"...)
	}
	switch format {
	case FormatCurrency:
		if v < 0 {
			b = append(b, '-')
		}
		b = append(b, '$')
		return appendGrouped(b, int64(math.Round(math.Abs(v))))
	case FormatPercent:
		// A ratio over a tiny denominator (an income of a cent is inside
		// the contract) is true but unreadable as a figure of 50 digits.
		pct := v * 100
		switch {
		case pct >= maxPercent:
			b = append(b, "over "...)
			b = strconv.AppendInt(b, maxPercent, 10) // ungrouped, as every percentage
		case pct <= -maxPercent:
			b = append(b, "under -"...)
			b = strconv.AppendInt(b, maxPercent, 10)
		default:
			b = appendOneDecimal(b, pct)
		}
		return append(b, '%')
	case FormatYears:
		start := len(b)
		b = appendOneDecimal(b, v)
		if string(b[start:]) == "1" {
			return append(b, " year"...)
		}
		return append(b, " years"...)
	default: // integer
		n := int64(math.Round(v))
		if n < 0 {
			b = append(b, '-')
			n = -n
		}
		return appendGrouped(b, n)
	}
}

// maxPercent is the largest percentage written as a figure; larger ones
// are "over 1000000%".
const maxPercent = 1_000_000

// appendOneDecimal rounds to one decimal and drops a trailing ".0".
func appendOneDecimal(b []byte, v float64) []byte {
	if tenths := math.Round(v * 10); math.Abs(tenths) < 1<<52 {
		// In tenths as an integer: what FormatFloat's 'f', 1 writes of
		// tenths/10, without its float formatting.
		n := int64(tenths)
		if n < 0 {
			b = append(b, '-')
			n = -n
		}
		b = strconv.AppendInt(b, n/10, 10)
		if n%10 != 0 {
			b = append(b, '.', byte('0'+n%10))
		}
		return b
	}
	start := len(b)
	b = strconv.AppendFloat(b, math.Round(v*10)/10, 'f', 1, 64)
	if n := len(b); n-start >= 2 && b[n-2] == '.' && b[n-1] == '0' {
		b = b[:n-2]
	}
	if string(b[start:]) == "-0" {
		b = append(b[:start], '0')
	}
	return b
}

// appendGrouped writes n ≥ 0 with thousands separated by commas.
func appendGrouped(b []byte, n int64) []byte {
	var digits [20]byte
	s := strconv.AppendInt(digits[:0], n, 10)
	pre := len(s) % 3
	if pre == 0 {
		pre = 3
	}
	b = append(b, s[:pre]...)
	for i := pre; i < len(s); i += 3 {
		b = append(b, ',')
		b = append(b, s[i:i+3]...)
	}
	return b
}

// Improve returns a copy of a with only the characteristic's field changed so
// that its value falls in the best band: what the applicant would have to
// change for this reason to go away. For a ratio, the field the reason names
// moves and the other stays. ok is false when no value of the field alone
// reaches the best band.
func (ch *Characteristic) Improve(a *schemas.Application) (out schemas.Application, ok bool) {
	out = *a
	b := ch.Bands[ch.BestBand()]
	var target float64
	switch {
	case b.Lower != nil && b.Upper != nil:
		target = (*b.Lower + *b.Upper) / 2
	case b.Lower != nil:
		target = *b.Lower
	case *b.Upper > 0:
		target = *b.Upper / 2
	default:
		target = *b.Upper - 1
	}
	field, _ := schemas.FeatureByName(ch.Field)
	if !ch.Value.ratio {
		out.Set(field, target)
		return out, field == ch.Value.num
	}
	switch field {
	case ch.Value.num:
		out.Set(field, target*a.Value(ch.Value.den))
	case ch.Value.den:
		if target == 0 {
			return out, false
		}
		out.Set(field, a.Value(ch.Value.num)/target)
	default:
		return out, false
	}
	return out, true
}

// ValueOf returns the applicant's value of the characteristic (a field or a
// ratio of two).
func (ch *Characteristic) ValueOf(a *schemas.Application) float64 { return ch.Value.of(a) }

// ErrShadowOnly means a version cannot give reasons for its declines, so it
// may serve only as shadow: it must not decide for applicants.
var ErrShadowOnly = errors.New("the version cannot give reasons for a decline, so it may serve only as shadow")

// Load reads the reasons table in a version's directory and checks it
// against the graph's characteristics (the names of its contrib_* outputs).
// A version with no reasons.json returns (nil, nil): it loads, and may serve
// only as shadow (see CanDecide). A table that is invalid, or does not
// cover the characteristics one to one, is an error: the load fails.
func Load(dir string, characteristics []string) (*Table, error) {
	t, err := ReadFile(filepath.Join(dir, FileName))
	if errors.Is(err, ErrNoTable) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	outputs := make([]string, len(characteristics))
	for i, c := range characteristics {
		outputs[i] = ContribPrefix + c
	}
	if err := t.Cover(outputs); err != nil {
		return nil, err
	}
	for col, c := range characteristics {
		t.cols[t.byName[c]] = col
	}
	return t, nil
}

// CanDecide says whether a version with table t (nil: none) and the given
// characteristics may decide for applicants (champion, challenger); the
// error names why not and wraps ErrShadowOnly.
func CanDecide(t *Table, characteristics []string) error {
	switch {
	case len(characteristics) == 0:
		return fmt.Errorf("%w: its model has no contrib_* outputs (not scorecard-shaped)", ErrShadowOnly)
	case t == nil:
		return fmt.Errorf("%w: it ships no %s", ErrShadowOnly, FileName)
	}
	return nil
}
