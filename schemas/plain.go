package schemas

// plainApplication decodes the shape nearly every application has — one flat
// JSON object of the known fields, each once, with plain numbers and a plain
// application_id, all within the contract — in one pass, without building a
// document. ok is false for anything else (escapes, exponents, long numbers,
// unknown, missing or repeated fields, bad values, malformed JSON): the full
// decoder then decides, and names what is wrong. What it accepts it decodes
// exactly as the full decoder does (FuzzPlainApplication).
func plainApplication(b []byte) (a Application, ok bool) {
	i := skipSpace(b, 0)
	if i >= len(b) || b[i] != '{' {
		return a, false
	}
	var seen uint
	seenID := false
	for {
		i = skipSpace(b, i+1)
		key, next, ok := plainString(b, i)
		if !ok {
			return a, false
		}
		i = skipSpace(b, next)
		if i >= len(b) || b[i] != ':' {
			return a, false
		}
		i = skipSpace(b, i+1)
		if string(key) == "application_id" {
			id, next, ok := plainString(b, i)
			if !ok || seenID || !plainID(string(id)) {
				return a, false
			}
			a.ApplicationID, seenID, i = string(id), true, next
		} else {
			f, known := featureByKey(key)
			if !known || seen&(1<<f) != 0 {
				return a, false
			}
			v, next, ok := plainNumber(b, i)
			if !ok {
				return a, false
			}
			a.Set(f, v)
			seen |= 1 << f
			i = next
		}
		i = skipSpace(b, i)
		if i >= len(b) {
			return a, false
		}
		if b[i] == '}' {
			break
		}
		if b[i] != ',' {
			return a, false
		}
	}
	if skipSpace(b, i+1) != len(b) || seen != allFeatures || a.Validate() != nil {
		return a, false
	}
	return a, true
}

func skipSpace(b []byte, i int) int {
	for i < len(b) && (b[i] == ' ' || b[i] == '\t' || b[i] == '\n' || b[i] == '\r') {
		i++
	}
	return i
}

// plainString reads a string of printable ASCII without escapes at b[i].
func plainString(b []byte, i int) (s []byte, next int, ok bool) {
	if i >= len(b) || b[i] != '"' {
		return nil, 0, false
	}
	for j := i + 1; j < len(b); j++ {
		switch c := b[j]; {
		case c == '"':
			return b[i+1 : j], j + 1, true
		case c < ' ' || c > '~' || c == '\\':
			return nil, 0, false
		}
	}
	return nil, 0, false
}

// pow10 are the powers of ten a float64 holds exactly.
var pow10 = [...]float64{1, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15}

// plainNumber reads a JSON number of at most 15 digits and no exponent at
// b[i]: its digits are exact in a float64, and one division by an exact
// power of ten is what fastjson's parser computes for it, bit for bit.
func plainNumber(b []byte, i int) (v float64, next int, ok bool) {
	minus := i < len(b) && b[i] == '-'
	if minus {
		i++
	}
	var d uint64
	digits := 0
	start := i
	for ; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
		d = d*10 + uint64(b[i]-'0')
		digits++
	}
	if whole := i - start; whole == 0 || (whole > 1 && b[start] == '0') { // "", "-", ".5", "01"
		return 0, 0, false
	}
	frac := 0
	if i < len(b) && b[i] == '.' {
		for i++; i < len(b) && b[i] >= '0' && b[i] <= '9'; i++ {
			d = d*10 + uint64(b[i]-'0')
			digits++
			frac++
		}
		if frac == 0 { // "1."
			return 0, 0, false
		}
	}
	if digits > 15 || (i < len(b) && (b[i] == 'e' || b[i] == 'E')) {
		return 0, 0, false
	}
	v = float64(d)
	if frac > 0 {
		v /= pow10[frac]
	}
	if minus {
		v = -v
	}
	return v, i, true
}
