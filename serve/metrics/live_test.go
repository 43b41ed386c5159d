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

// TestSyncPerModel: each model has its own sync gauge, and its error counter
// exists (at 0) from its first sync, so dashboards' increase() has data.
func TestSyncPerModel(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := New(reg)
	m.Sync("loan-approval", true)
	m.Sync("credit-line", false)
	want := `
# HELP model_registry_sync_errors_total Reconciliations of the model with the registry that failed.
# TYPE model_registry_sync_errors_total counter
model_registry_sync_errors_total{model="credit-line"} 1
model_registry_sync_errors_total{model="loan-approval"} 0
# HELP model_registry_sync_success 1 if the model's last reconciliation with the registry succeeded, else 0.
# TYPE model_registry_sync_success gauge
model_registry_sync_success{model="credit-line"} 0
model_registry_sync_success{model="loan-approval"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "model_registry_sync_success", "model_registry_sync_errors_total"); err != nil {
		t.Fatal(err)
	}
}
