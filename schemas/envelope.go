package schemas

import (
	"encoding/json"
	"fmt"

	"github.com/valyala/fastjson"
)

// splitBatch scans a batch body's envelope, {"applications":[…]}, and returns
// each item's bytes. It builds no document: the structure between the items
// is checked here, each item is parsed by fastjson on its own and every other
// value checked by fastjson's validator (which, unlike its parser, refuses
// NaN and Infinity literals), nesting deeper than fastjson's parser allows is
// malformed, and scanning stops at the MaxBatch+1st item, whatever follows.
func splitBatch(body []byte) ([][]byte, error) {
	s := scanner{b: body}
	s.space()
	if s.eof() || s.b[s.i] != '{' {
		if err := s.value(); err != nil {
			return nil, err
		}
		if s.space(); !s.eof() {
			return nil, s.malformed("unexpected data after the value")
		}
		return nil, FieldErrors{"": "the body must be a JSON object"}
	}
	s.i++
	var (
		items [][]byte
		errs  FieldErrors
		found bool
	)
	s.space()
	if s.peek() == '}' {
		s.i++
	} else {
		for {
			key, err := s.key()
			if err != nil {
				return nil, err
			}
			s.space()
			if s.peek() != ':' {
				return nil, s.malformed("missing ':' after an object key")
			}
			s.i++
			s.space()
			switch {
			case key != "applications":
				if err := s.value(); err != nil {
					return nil, err
				}
				errs = errs.add(key, "unknown field")
			case found:
				if err := s.value(); err != nil {
					return nil, err
				}
				errs = errs.add("applications", "duplicate field")
			case s.peek() != '[':
				found = true
				if err := s.value(); err != nil {
					return nil, err
				}
				errs = errs.add("applications", "must be an array of applications")
			default:
				found = true
				if items, err = s.array(); err != nil {
					return nil, err
				}
			}
			s.space()
			if s.peek() == ',' {
				s.i++
				s.space()
				continue
			}
			if s.peek() != '}' {
				return nil, s.malformed("missing ',' or '}' in the object")
			}
			s.i++
			break
		}
	}
	s.space()
	if !s.eof() {
		return nil, s.malformed("unexpected data after the object")
	}
	switch {
	case errs != nil:
		// The items will not be parsed: check them, so that a malformed
		// body is called malformed whatever else is wrong with it.
		for _, item := range items {
			if err := fastjson.ValidateBytes(item); err != nil {
				return nil, Malformed(err)
			}
		}
		return nil, errs
	case !found:
		return nil, FieldErrors{"applications": "is required"}
	case len(items) == 0:
		return nil, FieldErrors{"applications": "must contain at least 1 application"}
	}
	return items, nil
}

// scanner walks a JSON body byte by byte.
type scanner struct {
	b []byte
	i int
}

func (s *scanner) eof() bool { return s.i >= len(s.b) }

func (s *scanner) peek() byte {
	if s.eof() {
		return 0
	}
	return s.b[s.i]
}

func (s *scanner) space() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *scanner) malformed(what string) error {
	return &MalformedError{Reason: fmt.Sprintf("%s at offset %d", what, s.i)}
}

// array returns the spans of the array's values; s is at '['. It stops with
// an error at the MaxBatch+1st value.
func (s *scanner) array() ([][]byte, error) {
	s.i++
	s.space()
	// A realistic item is ~130 bytes: size the list once for most bodies.
	items := make([][]byte, 0, min(MaxBatch, (len(s.b)-s.i)/100+1))
	if s.peek() == ']' {
		s.i++
		return items, nil
	}
	for {
		if len(items) == MaxBatch {
			return nil, FieldErrors{"applications": fmt.Sprintf("must contain at most %d applications", MaxBatch)}
		}
		start := s.i
		if err := s.skip(); err != nil {
			return nil, err
		}
		items = append(items, s.b[start:s.i])
		s.space()
		switch s.peek() {
		case ',':
			s.i++
			s.space()
		case ']':
			s.i++
			return items, nil
		default:
			return nil, s.malformed("missing ',' or ']' in the array")
		}
	}
}

// value skips one value and checks it with fastjson.
func (s *scanner) value() error {
	start := s.i
	if err := s.skip(); err != nil {
		return err
	}
	if err := fastjson.ValidateBytes(s.b[start:s.i]); err != nil {
		return Malformed(err)
	}
	return nil
}

// skip moves past one value without checking more than its extent: strings
// are followed to their closing quote and brackets counted. Whoever uses the
// value's bytes checks them.
func (s *scanner) skip() error {
	depth := 0
	for !s.eof() {
		switch c := s.b[s.i]; c {
		case '"':
			if err := s.str(); err != nil {
				return err
			}
			if depth == 0 {
				return nil
			}
			continue
		case '{', '[':
			if depth++; depth > fastjson.MaxDepth {
				return s.malformed("too deeply nested")
			}
		case '}', ']':
			if depth == 0 {
				return s.malformed("unexpected '" + string(c) + "'")
			}
			depth--
			if depth == 0 {
				s.i++
				return nil
			}
		case ',', ' ', '\t', '\n', '\r', ':':
			if depth == 0 {
				if c == ',' || c == ':' {
					return s.malformed("missing value")
				}
				return nil
			}
		default:
			if depth == 0 { // a scalar: up to the next delimiter
				start := s.i
				for !s.eof() && !isDelimiter(s.b[s.i]) {
					s.i++
				}
				if s.i == start {
					return s.malformed("missing value")
				}
				return nil
			}
		}
		s.i++
	}
	return s.malformed("unexpected end of the body")
}

func isDelimiter(c byte) bool {
	switch c {
	case ',', '}', ']', ' ', '\t', '\n', '\r', ':', '"', '{', '[':
		return true
	}
	return false
}

// str moves past a string; s is at its opening quote.
func (s *scanner) str() error {
	s.i++
	for !s.eof() {
		switch c := s.b[s.i]; {
		case c == '\\':
			s.i += 2
			continue
		case c == '"':
			s.i++
			return nil
		case c < 0x20:
			return s.malformed("control character in a string")
		}
		s.i++
	}
	return s.malformed("unterminated string")
}

// key reads an object key; s is at its opening quote.
func (s *scanner) key() (string, error) {
	if s.peek() != '"' {
		return "", s.malformed("missing object key")
	}
	start := s.i
	if err := s.str(); err != nil {
		return "", err
	}
	raw := s.b[start:s.i]
	for _, c := range raw {
		if c == '\\' { // rare: let encoding/json unescape it
			var k string
			if err := json.Unmarshal(raw, &k); err != nil {
				return "", &MalformedError{Reason: "bad escape in an object key"}
			}
			return k, nil
		}
	}
	return string(raw[1 : len(raw)-1]), nil
}
