// Package jsonw writes JSON values by hand, for the answers and records the
// server writes on its hot paths, where reflection would cost more than the
// work itself. Its output is byte for byte what encoding/json writes.
package jsonw

import (
	"strconv"
	"unicode/utf8"
)

// AppendFloat32 writes f in its shortest float32 form, as the API's answers
// do. NaN and ±Inf, which are not JSON, are written as null.
func AppendFloat32(b []byte, f float32) []byte {
	if f != f || f > 3.4028235e38 || f < -3.4028235e38 {
		return append(b, "null"...)
	}
	return strconv.AppendFloat(b, float64(f), 'g', -1, 32)
}

// AppendString writes s as a JSON string, escaping what JSON requires and
// replacing invalid UTF-8, byte for byte as encoding/json does.
func AppendString(b []byte, s string) []byte {
	const hexDigits = "0123456789abcdef"
	b = append(b, '"')
	for i := 0; i < len(s); {
		// Ids, names, hashes and reason texts are nearly always plain
		// ASCII: copy each plain run at once.
		plain := i
		for plain < len(s) && plainByte[s[plain]] {
			plain++
		}
		b = append(b, s[i:plain]...)
		if i = plain; i == len(s) {
			break
		}
		c := s[i]
		if c < utf8.RuneSelf {
			switch {
			case c == '"' || c == '\\':
				b = append(b, '\\', c)
			case c == '\n':
				b = append(b, '\\', 'n')
			case c == '\r':
				b = append(b, '\\', 'r')
			case c == '\t':
				b = append(b, '\\', 't')
			case c == '\b':
				b = append(b, '\\', 'b')
			case c == '\f':
				b = append(b, '\\', 'f')
			case c < 0x20 || c == '<' || c == '>' || c == '&':
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			default:
				b = append(b, c)
			}
			i++
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
		default:
			b = append(b, s[i:i+size]...)
		}
		i += size
	}
	return append(b, '"')
}

// plainByte says which bytes are written as themselves (a table: half the
// cost of comparing each byte against the exceptions). Never written after
// its initialisation.
var plainByte = func() (t [256]bool) {
	for c := 0x20; c < utf8.RuneSelf; c++ {
		t[c] = c != '"' && c != '\\' && c != '<' && c != '>' && c != '&'
	}
	return t
}()
