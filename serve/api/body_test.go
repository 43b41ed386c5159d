package api

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestDecodeStrict(t *testing.T) {
	type body struct {
		Version string `json:"version"`
		Weight  int    `json:"weight"`
		Nested  struct {
			A bool `json:"a"`
		} `json:"nested"`
	}
	for _, c := range []struct {
		in      string
		status  int
		field   string
		message string
	}{
		{`{"version":"4","weight":10,"nested":{"a":true}}`, 0, "", ""},
		{`{"version":"4","version":"3"}`, 422, "version", "duplicate"},
		{`{"nested":{"a":true,"a":false}}`, 422, "a", "duplicate"},
		{`{"version":"4","Version":"3"}`, 422, "Version", "unknown field"},
		{`{"VERSION":"3"}`, 422, "VERSION", "unknown field"}, // encoding/json alone would set the version
		{`{"verſion":"3"}`, 422, "verſion", "unknown field"}, // ſ folds to s in encoding/json
		{`{"nested":{"A":true}}`, 422, "A", "unknown field"},
		{`{"version":"4","colour":"red"}`, 422, "colour", "unknown field"},
		{`{"version":4}`, 422, "version", "must be a string"},
		{`{"weight":1.5}`, 422, "weight", "must be a whole number"},
		{`[1]`, 422, "", "must be an object"},
		{`{"weight":010}`, 400, "", "malformed JSON"},
		{`{"weight":NaN}`, 400, "", "malformed JSON"},
		{`{"version":"4"} {}`, 400, "", "malformed JSON"},
		{`{"version":"4"`, 400, "", "malformed JSON"},
		{``, 400, "", "malformed JSON"},
	} {
		var b body
		err := DecodeStrict([]byte(c.in), &b)
		if c.status == 0 {
			if err != nil {
				t.Errorf("%s: %v", c.in, err)
			}
			continue
		}
		var e *Error
		if !errors.As(err, &e) || e.Status != c.status || !strings.Contains(e.Message, c.message) ||
			(c.field != "" && e.Fields[c.field] == "") || strings.Contains(e.Message, "Go struct") {
			t.Errorf("%s: %+v, want %d naming %q with %q", c.in, e, c.status, c.field, c.message)
		}
	}
}

// An envelope's inner values are left to their own strict decode.
func TestDecodeEnvelopeChecksOnlyTheTopLevel(t *testing.T) {
	var items []map[string]any
	if err := DecodeEnvelope([]byte(`[{"a":1,"a":2}]`), &items); err != nil {
		t.Fatalf("an item's own duplicate refused the envelope: %v", err)
	}
	var top map[string]any
	var e *Error
	if err := DecodeEnvelope([]byte(`{"outcomes":[],"outcomes":[]}`), &top); !errors.As(err, &e) || e.Fields["outcomes"] == "" {
		t.Fatalf("a key twice at the top: %v", err)
	}
}

// As in schemas: nesting is bounded by the parser before the validator sees it.
func TestDecodeStrictRefusesDeepNestingInBoundedWork(t *testing.T) {
	done := make(chan error, 1)
	go func() {
		var v map[string]any
		done <- DecodeStrict([]byte(strings.Repeat("[", 256<<10)), &v)
	}()
	select {
	case err := <-done:
		var e *Error
		if !errors.As(err, &e) || e.Status != 400 {
			t.Fatalf("%v, want 400", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("256 KiB of '[' still decoding after 10 s")
	}
}
