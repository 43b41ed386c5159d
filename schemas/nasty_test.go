package schemas

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/nasty/*.want.json from the decoder's answers")

// nastyCases are the hostile bodies of testdata/nasty, each paired with the
// errors it must produce in <name>.want.json (-update rewrites them).
func nastyCases(t testing.TB) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join("testdata", "nasty", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	return slices.DeleteFunc(files, func(p string) bool { return strings.HasSuffix(p, ".want.json") })
}

// outcome is what the decoder made of a body: accepted, malformed (400) or
// the fields it names (422); for a batch, each item's outcome too.
type outcome struct {
	Valid     bool              `json:"valid,omitempty"`
	Malformed bool              `json:"malformed,omitempty"`
	Fields    map[string]string `json:"fields,omitempty"`
	Items     []outcome         `json:"items,omitempty"`
}

func outcomeOf(err error) outcome {
	var (
		fields    FieldErrors
		malformed *MalformedError
	)
	switch {
	case err == nil:
		return outcome{Valid: true}
	case errors.As(err, &malformed):
		return outcome{Malformed: true}
	case errors.As(err, &fields):
		return outcome{Fields: fields}
	}
	return outcome{Fields: map[string]string{"?": err.Error()}}
}

func TestNastyBodiesGiveTheirExpectedErrors(t *testing.T) {
	var d Decoder
	cases := nastyCases(t)
	if len(cases) < 12 {
		t.Fatalf("%d nasty cases", len(cases))
	}
	for _, file := range cases {
		t.Run(filepath.Base(file), func(t *testing.T) {
			body, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			_, appErr := d.Application(body)
			items, batchErr := d.Batch(body)
			got := map[string]outcome{"application": outcomeOf(appErr), "batch": outcomeOf(batchErr)}
			if batchErr == nil {
				b := got["batch"]
				for _, it := range items {
					b.Items = append(b.Items, outcomeOf(it.Err))
				}
				got["batch"] = b
			}
			raw, _ := json.MarshalIndent(got, "", "  ")
			raw = append(raw, '\n')
			wantFile := strings.TrimSuffix(file, ".json") + ".want.json"
			if *update {
				if err := os.WriteFile(wantFile, raw, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(wantFile)
			if err != nil {
				t.Fatalf("%v (run with -update to write it)", err)
			}
			if !bytes.Equal(raw, want) {
				t.Fatalf("%s: got\n%s\nwant (%s)\n%s", file, raw, wantFile, want)
			}
		})
	}
}
