package monitoring

import (
	"slices"
	"strings"
	"testing"
	"unicode"
)

// operands returns the quantities an alert condition compares: the top-level
// operands of its comparison (==, !=, >, <, >=, <=) and set (and, or,
// unless) operators, with vector-matching modifiers (on, ignoring,
// group_left, group_right, bool) and number literals left out. absent(x)
// yields x. Parenthesised groups are kept whole.
//
// It is a scanner, not a PromQL parser: it tracks (), {}, [] and quoted
// strings, which is all that the rules in prometheus/rules need; Prometheus
// itself parses every expression in the live test.
func operands(expr string) []string {
	expr = strings.TrimSpace(stripComments(expr))
	if inner, ok := unwrapCall(expr, "absent"); ok {
		return operands(inner)
	}
	var out []string
	add := func(s string) {
		s = stripModifiers(strings.TrimSpace(s))
		if s != "" && !isNumber(s) {
			out = append(out, s)
		}
	}
	depth, start := 0, 0
	for i := 0; i < len(expr); i++ {
		c := expr[i]
		switch {
		case c == '"' || c == '\'' || c == '`':
			i = skipString(expr, i)
		case c == '(' || c == '{' || c == '[':
			depth++
		case c == ')' || c == '}' || c == ']':
			depth--
		case depth != 0:
		case c == '=' && i+1 < len(expr) && expr[i+1] == '=',
			c == '!' && i+1 < len(expr) && expr[i+1] == '=',
			c == '>' && i+1 < len(expr) && expr[i+1] == '=',
			c == '<' && i+1 < len(expr) && expr[i+1] == '=':
			add(expr[start:i])
			i++
			start = i + 1
		case c == '>' || c == '<':
			add(expr[start:i])
			start = i + 1
		default:
			for _, kw := range []string{"and", "or", "unless"} {
				if wordAt(expr, i, kw) {
					add(expr[start:i])
					i += len(kw) - 1
					start = i + 1
					break
				}
			}
		}
	}
	add(expr[start:])
	return out
}

func stripComments(s string) string {
	lines := strings.Split(s, "\n")
	for i, l := range lines {
		if j := strings.Index(l, "#"); j >= 0 && !strings.ContainsAny(l[:j], `"'`) {
			lines[i] = l[:j]
		}
	}
	return strings.Join(lines, "\n")
}

func skipString(s string, i int) int {
	q := s[i]
	for j := i + 1; j < len(s); j++ {
		if s[j] == '\\' && q != '`' {
			j++
			continue
		}
		if s[j] == q {
			return j
		}
	}
	return len(s) - 1
}

func isIdent(c byte) bool {
	return c == '_' || c == ':' || c < unicode.MaxASCII && (unicode.IsLetter(rune(c)) || unicode.IsDigit(rune(c)))
}

func wordAt(s string, i int, w string) bool {
	if !strings.HasPrefix(s[i:], w) {
		return false
	}
	if i > 0 && isIdent(s[i-1]) {
		return false
	}
	end := i + len(w)
	return end >= len(s) || !isIdent(s[end])
}

// stripModifiers drops the vector-matching words that follow a binary
// operator: "on (job) sum(x)" → "sum(x)".
func stripModifiers(s string) string {
	for {
		trimmed := false
		for _, kw := range []string{"on", "ignoring", "group_left", "group_right", "bool"} {
			if !wordAt(s, 0, kw) {
				continue
			}
			rest := strings.TrimSpace(s[len(kw):])
			if strings.HasPrefix(rest, "(") {
				if end := closing(rest, 0); end > 0 {
					rest = strings.TrimSpace(rest[end+1:])
				}
			}
			s, trimmed = rest, true
		}
		if !trimmed {
			return s
		}
	}
}

// closing returns the index of the parenthesis closing the one at open.
func closing(s string, open int) int {
	depth := 0
	for i := open; i < len(s); i++ {
		switch s[i] {
		case '"', '\'', '`':
			i = skipString(s, i)
		case '(':
			depth++
		case ')':
			depth--
			if depth == 0 {
				return i
			}
		}
	}
	return -1
}

func unwrapCall(s, fn string) (string, bool) {
	if !wordAt(s, 0, fn) {
		return "", false
	}
	rest := strings.TrimSpace(s[len(fn):])
	if !strings.HasPrefix(rest, "(") || closing(rest, 0) != len(rest)-1 {
		return "", false
	}
	return rest[1 : len(rest)-1], true
}

func isNumber(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if !unicode.IsDigit(c) && c != '.' && c != 'e' && c != '-' && c != '+' {
			return false
		}
	}
	return true
}

func TestOperands(t *testing.T) {
	tests := []struct {
		name, expr string
		want       []string
	}{
		{"comparison", `up{job="mlservice"} == 0`, []string{`up{job="mlservice"}`}},
		{"absent", `absent(up{job="mlservice"})`, []string{`up{job="mlservice"}`}},
		{"matchers are not operators", `rate(x{code=~"5..", a!="b", c!~"d"}[5m]) > 0.05`,
			[]string{`rate(x{code=~"5..", a!="b", c!~"d"}[5m])`}},
		{"guards", "abs(a - b) > 0.15\nand on (job, model)\n  sum by (job, model) (increase(c[30m])) >= 100",
			[]string{`abs(a - b)`, `sum by (job, model) (increase(c[30m]))`}},
		{"groups kept whole", `(a > 0 unless a offset 15m) or increase(a[15m]) > 0`,
			[]string{`(a > 0 unless a offset 15m)`, `increase(a[15m])`}},
		{"unless with matching", "count by (i) (up == 1)\n  unless on (i)\ncount by (i) (info)",
			[]string{`count by (i) (up == 1)`, `count by (i) (info)`}},
		{"words inside names", `order_total > 1 and unless_x`, []string{`order_total`, `unless_x`}},
		{"no condition", `sum(rate(x[1m]))`, []string{`sum(rate(x[1m]))`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := operands(tc.expr); !slices.Equal(got, tc.want) {
				t.Errorf("operands(%q)\n got %q\nwant %q", tc.expr, got, tc.want)
			}
		})
	}
}
