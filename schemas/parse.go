package schemas

import "github.com/valyala/fastjson"

// ParseJSON parses b as one JSON value, strictly. fastjson's parser goes
// first: it refuses nesting deeper than fastjson.MaxDepth, so what follows
// is bounded by the body's length. Then its validator, which, unlike the
// parser, refuses what is not JSON (050000, .5, NaN as numbers). The
// validator must never see unbounded nesting: its error grows with the
// depth at every level, so 64 KiB of '[' cost it minutes. The error is a
// *MalformedError.
func ParseJSON(p *fastjson.Parser, b []byte) (*fastjson.Value, error) {
	v, err := p.ParseBytes(b)
	if err != nil {
		return nil, Malformed(err)
	}
	if err := fastjson.ValidateBytes(b); err != nil {
		return nil, Malformed(err)
	}
	return v, nil
}

// Malformed is the parser's error as a client reads it: one line of at most
// 200 bytes.
func Malformed(err error) *MalformedError {
	s := err.Error()
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return &MalformedError{Reason: s}
}
