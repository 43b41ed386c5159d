package schemas

import (
	"bytes"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/valyala/fastjson"
)

// ParseJSON parses b as one JSON value, strictly, refusing a document of
// more than maxValues values before any is built: fastjson's document costs
// about a hundred bytes a value, so a body of bare numbers would cost 20 times
// its size in memory. Then fastjson's parser, which refuses nesting deeper than
// fastjson.MaxDepth, so what follows is bounded by the body's length. Then its
// validator, which, unlike the parser, refuses what is not JSON (050000, .5,
// NaN as numbers). The validator must never see unbounded nesting: its error
// grows with the depth at every level, so 64 KiB of '[' cost it minutes. The
// error is a *MalformedError.
func ParseJSON(p *fastjson.Parser, b []byte, maxValues int) (*fastjson.Value, error) {
	if n := countValues(b, maxValues); n > maxValues {
		return nil, &MalformedError{Reason: fmt.Sprintf("the body holds more than %d JSON values, more than this route takes", maxValues)}
	}
	v, err := p.ParseBytes(b)
	if err != nil {
		return nil, Malformed(err)
	}
	if err := fastjson.ValidateBytes(b); err != nil {
		return nil, Malformed(err)
	}
	return v, nil
}

// ParserPool lends fastjson parsers for documents of up to Max bytes (0:
// pooledMax). A larger document gets a parser of its own, which the garbage
// collector takes back: a pooled parser keeps the memory of the largest
// document it ever parsed. The zero value is ready.
type ParserPool struct {
	Max  int
	pool fastjson.ParserPool
}

// pooledMax is a ParserPool's default Max: an application or a batch item.
const pooledMax = 16 << 10

func (pp *ParserPool) pooled(n int) bool {
	if pp.Max == 0 {
		return n <= pooledMax
	}
	return n <= pp.Max
}

// Get returns a parser for a document of n bytes; Put, with the same n,
// gives it back.
func (pp *ParserPool) Get(n int) *fastjson.Parser {
	if !pp.pooled(n) {
		return new(fastjson.Parser)
	}
	return pp.pool.Get()
}

// Put gives back a parser Get returned for a document of n bytes.
func (pp *ParserPool) Put(p *fastjson.Parser, n int) {
	if pp.pooled(n) {
		pp.pool.Put(p)
	}
}

// countValues bounds from above how many values b holds: one, and one more
// after each '[', ',' and ':' outside strings. It stops counting past max.
func countValues(b []byte, max int) int {
	n := 1
	for i := 0; i < len(b) && n <= max; i++ {
		switch b[i] {
		case '[', ',', ':':
			n++
		case '"':
			// Skip the string: to the next quote no backslash escapes.
			for i++; i < len(b); i++ {
				j := bytes.IndexByte(b[i:], '"')
				if j < 0 {
					return n // unterminated: the parser says so
				}
				i += j
				k := i
				for k > 0 && b[k-1] == '\\' {
					k--
				}
				if (i-k)%2 == 0 {
					break
				}
			}
		}
	}
	return n
}

// Malformed is the parser's error as a client reads it: one line of at most
// 200 bytes, from the innermost of fastjson's "cannot parse …: " levels (the
// outer ones only repeat the nesting, and would push the reason and the
// place past the cut).
func Malformed(err error) *MalformedError {
	s := err.Error()
	for {
		_, rest, ok := strings.Cut(s, ": ")
		if !ok || !strings.HasPrefix(s, "cannot parse ") || !strings.HasPrefix(rest, "cannot parse ") {
			break
		}
		s = rest
	}
	if len(s) > 200 {
		cut := 200
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		s = s[:cut] + "…"
	}
	return &MalformedError{Reason: s}
}

// DuplicateKey returns the first key found twice in one object of v, down
// to depth levels (-1: all), "" if none. Keys compare byte for byte, as the
// routes match them to fields. A body with a key twice is ambiguous (readers
// of the same bytes may take either value), so the routes refuse it.
func DuplicateKey(v *fastjson.Value, depth int) string {
	if depth == 0 {
		return ""
	}
	switch v.Type() {
	case fastjson.TypeObject:
		o, _ := v.Object()
		var seen map[string]bool
		if o.Len() > 8 { // a scan of the keys seen is quadratic
			seen = make(map[string]bool, o.Len())
		}
		var keys [8][]byte
		n, dup := 0, ""
		o.Visit(func(k []byte, child *fastjson.Value) {
			if dup != "" {
				return
			}
			if seen != nil {
				if seen[string(k)] {
					dup = string(k)
					return
				}
				seen[string(k)] = true
			} else {
				for _, prev := range keys[:n] {
					if bytes.Equal(prev, k) {
						dup = string(k)
						return
					}
				}
				keys[n], n = k, n+1
			}
			dup = DuplicateKey(child, depth-1)
		})
		return dup
	case fastjson.TypeArray:
		items, _ := v.Array()
		for _, item := range items {
			if dup := DuplicateKey(item, depth-1); dup != "" {
				return dup
			}
		}
	}
	return ""
}
