package oip_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http/httptest"
	"strconv"
	"testing"
)

// FuzzInferBinary sends arbitrary binary-extension bodies (a JSON header of
// any length claimed by Inference-Header-Content-Length, then bytes) to
// infer: whatever arrives, the answer is never a 5xx, its JSON part is JSON,
// and a refusal is {"error": "..."}.
func FuzzInferBinary(f *testing.F) {
	seeds := []struct {
		header string
		blob   []byte
	}{
		{`{"inputs":[{"name":"features","shape":[2,4],"datatype":"FP32","parameters":{"binary_data_size":32}}],"outputs":[{"name":"label","parameters":{"binary_data":true}},{"name":"probability"}]}`,
			fp32(60000, 700, 20000, 5, 30000, 650, 10000, 2)},
		{`{"parameters":{"binary_data_output":true},"inputs":[{"name":"income","shape":[1],"datatype":"FP64","parameters":{"binary_data_size":8}},{"name":"credit_score","shape":[1],"datatype":"INT32","parameters":{"binary_data_size":4}},{"name":"loan_amount","shape":[1,1],"datatype":"FP32","data":[[20000]]},{"name":"years_employed","shape":[1],"datatype":"INT64","parameters":{"binary_data_size":8}}]}`,
			append(append(fp32(0, 0), fp32(700)...), fp32(3, 0)...)},
		{`{"inputs":[{"name":"features","shape":[1,4],"datatype":"FP32","data":[[60000,700,20000,5]]}]}`, nil},
		{`{"inputs":[{"name":"features","shape":[1,4],"datatype":"FP32","parameters":{"binary_data_size":16}}]}`, fp32(1, 2, 3)},
	}
	for _, s := range seeds {
		f.Add([]byte(s.header), s.blob, len(s.header))
		f.Add([]byte(s.header), s.blob, -1) // no header: the whole body is JSON
	}
	ts := newTestServer(f)
	ts.publish(f, 30)
	f.Fuzz(func(t *testing.T, header, blob []byte, headerLen int) {
		body := append(append([]byte(nil), header...), blob...)
		req := httptest.NewRequest("POST", "/v2/models/loan-approval/infer", bytes.NewReader(body))
		if headerLen >= 0 {
			req.Header.Set("Inference-Header-Content-Length", strconv.Itoa(headerLen))
		}
		resp, err := ts.app.Test(req, -1)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode >= 500 {
			t.Fatalf("answered %d to header %q + %d bytes: %s", resp.StatusCode, header, len(blob), raw)
		}
		jsonPart := raw
		if h := resp.Header.Get("Inference-Header-Content-Length"); h != "" {
			n, err := strconv.Atoi(h)
			if err != nil || n < 0 || n > len(raw) {
				t.Fatalf("bad Inference-Header-Content-Length %q for %d bytes", h, len(raw))
			}
			jsonPart = raw[:n]
		}
		var out map[string]any
		if err := json.Unmarshal(jsonPart, &out); err != nil {
			t.Fatalf("answered non-JSON %q", raw)
		}
		if resp.StatusCode != 200 {
			if msg, ok := out["error"].(string); !ok || msg == "" || len(out) != 1 {
				t.Fatalf("%d without the protocol's error shape: %s", resp.StatusCode, raw)
			}
		}
	})
}
