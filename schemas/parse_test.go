package schemas

import (
	"errors"
	"strings"
	"testing"

	"github.com/valyala/fastjson"
)

func TestCountValuesSkipsStrings(t *testing.T) {
	for _, tc := range []struct {
		json string
		want int
	}{
		{`1`, 1},
		{`[1,2,3]`, 4},
		{`{"a":1,"b":[2,3]}`, 6},
		{`"a,b:[c"`, 1},
		{`["x\",y", "z\\", 1]`, 4},
		{`{"k\\\\":",,,"}`, 2},
		{`"unterminated, [`, 1},
	} {
		if got := countValues([]byte(tc.json), 100); got != tc.want {
			t.Errorf("countValues(%s) = %d, want %d", tc.json, got, tc.want)
		}
	}
}

// A body of bare numbers is refused before a document is built for it, and
// one of the same values within the bound parses.
func TestParseJSONBoundsTheValues(t *testing.T) {
	var p fastjson.Parser
	many := []byte("[" + strings.Repeat("1,", 5000) + "1]")
	_, err := ParseJSON(&p, many, 5000)
	var malformed *MalformedError
	if !errors.As(err, &malformed) || !strings.Contains(malformed.Reason, "more than 5000 JSON values") {
		t.Fatalf("5,002 values with a bound of 5,000: %v", err)
	}
	if _, err := ParseJSON(&p, many, 5002); err != nil {
		t.Fatalf("5,002 values with a bound of 5,002: %v", err)
	}
	// Commas inside strings are not values.
	if _, err := ParseJSON(&p, []byte(`{"id":"`+strings.Repeat(",", 10000)+`"}`), 10); err != nil {
		t.Fatal(err)
	}
}
