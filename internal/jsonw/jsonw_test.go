package jsonw

import (
	"encoding/json"
	"math"
	"testing"
)

func TestAppendStringMatchesEncodingJSON(t *testing.T) {
	for _, s := range []string{"", "A-1001", `quote " and \ backslash`, "tab\t nl\n cr\r nul\x00 bs\b ff\f",
		"<script>&", "é ü 中文 🙂", "bad utf8 \xff\xfe", "line sep \u2028 \u2029", "\x7f del"} {
		got := string(AppendString(nil, s))
		want, _ := json.Marshal(s)
		if got != string(want) {
			t.Errorf("AppendString(%q) = %s, want %s", s, got, want)
		}
	}
}

func TestAppendFloat32(t *testing.T) {
	for f, want := range map[float32]string{0.74666613: "0.74666613", 1: "1", 0: "0", 1e-7: "1e-07"} {
		if got := string(AppendFloat32(nil, f)); got != want {
			t.Errorf("%v: %s, want %s", f, got, want)
		}
	}
	for _, f := range []float32{float32(math.NaN()), float32(math.Inf(1)), float32(math.Inf(-1))} {
		if got := string(AppendFloat32(nil, f)); got != "null" {
			t.Errorf("%v: %s, want null", f, got)
		}
	}
}

func FuzzAppendString(f *testing.F) {
	f.Add("A-1001")
	f.Add("\xff\u2028<")
	f.Fuzz(func(t *testing.T, s string) {
		want, _ := json.Marshal(s)
		if got := AppendString(nil, s); string(got) != string(want) {
			t.Fatalf("AppendString(%q) = %s, want %s", s, got, want)
		}
	})
}
