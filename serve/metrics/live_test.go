package metrics

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestSetLivePerModel: each served model keeps its own model_info set; a new
// table of one model replaces only that model's series.
func TestSetLivePerModel(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg)
	m.SetLive("loan-approval", []Live{{Variant: "champion", Version: "2", SHA256: "aa", Weight: 1}})
	m.SetLive("credit-line", []Live{{Variant: "champion", Version: "1", SHA256: "bb", Weight: 0.9}, {Variant: "challenger", Version: "2", SHA256: "cc", Weight: 0.1}})
	m.SetLive("credit-line", []Live{{Variant: "champion", Version: "2", SHA256: "cc", Weight: 1}})
	want := `
# HELP model_info 1 for each live model version, with the sha256 of its ONNX file.
# TYPE model_info gauge
model_info{model="credit-line",sha256="cc",variant="champion",version="2"} 1
model_info{model="loan-approval",sha256="aa",variant="champion",version="2"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "model_info"); err != nil {
		t.Fatal(err)
	}
}
