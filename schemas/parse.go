package schemas

import "github.com/valyala/fastjson"

// ParseJSON parses b as one JSON value, strictly. fastjson's parser goes
// first: it refuses nesting deeper than fastjson.MaxDepth, so what follows
// is bounded by the body's length. Then its validator, which, unlike the
// parser, refuses what is not JSON (050000, .5, NaN as numbers). The
// validator must never see unbounded nesting: its error grows with the
// depth at every level, so 64 KiB of '[' cost it minutes.
func ParseJSON(p *fastjson.Parser, b []byte) (*fastjson.Value, error) {
	v, err := p.ParseBytes(b)
	if err != nil {
		return nil, err
	}
	if err := fastjson.ValidateBytes(b); err != nil {
		return nil, err
	}
	return v, nil
}
