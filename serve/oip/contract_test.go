package oip_test

import (
	"encoding/json"
	"strconv"
	"testing"

	"mlservice/internal/schematest"
)

// TestResponsesMatchPublishedContract validates what /v2 answers against the
// OIP components of the published /openapi.json, so the contract Swagger UI
// shows is the one the server keeps.
func TestResponsesMatchPublishedContract(t *testing.T) {
	contract := schematest.OpenAPI(t)
	ts := newTestServer(t)
	ts.publish(t, 10)
	flat := []byte(`{"id":"c","inputs":[{"name":"features","shape":[1,4],"datatype":"FP32","data":` + row1 + `}]}`)
	bin, hlen := binaryBody(`{"parameters":{"binary_data_output":true},"inputs":[{"name":"features","shape":[1,4],"datatype":"FP32","parameters":{"binary_data_size":16}}]}`, fp32(60000, 700, 20000, 5))
	cases := []struct {
		method, path string
		body         []byte
		headers      []string
		status       int
		component    string
	}{
		{"GET", "/v2", nil, nil, 200, "OIPServerMetadata"},
		{"GET", "/v2/models/loan-approval", nil, nil, 200, "OIPModelMetadata"},
		{"GET", "/v2/models/loan-approval/versions/1", nil, nil, 200, "OIPModelMetadata"},
		{"GET", "/v2/models/loan-approval/ready", nil, nil, 200, "OIPModelReady"},
		{"POST", "/v2/models/loan-approval/infer", flat, nil, 200, "OIPInferenceResponse"},
		{"POST", "/v2/models/loan-approval/infer", bin, []string{"Inference-Header-Content-Length", hlen}, 200, "OIPInferenceResponse"},
		{"GET", "/v2/models/nope", nil, nil, 404, "OIPError"},
		{"POST", "/v2/models/loan-approval/infer", []byte(`{`), nil, 400, "OIPError"},
	}
	for i, tc := range cases {
		t.Run(strconv.Itoa(i)+tc.path, func(t *testing.T) {
			r := ts.do(t, tc.method, tc.path, tc.body, tc.headers...)
			if r.status != tc.status {
				t.Fatalf("%d %s", r.status, r.raw)
			}
			// r.json is the JSON part (before any binary data), decoded.
			if err := contract.Validate(tc.component, mustJSON(t, r.json)); err != nil {
				t.Fatalf("%s: %v", r.raw, err)
			}
		})
	}
}

func mustJSON(t *testing.T, v any) []byte {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
