package api

import (
	"encoding/json"
	"strconv"

	"mlservice/internal/jsonw"

	"mlservice/serve/decision"
)

// The decision responses are written by hand: they are the hot path, and
// reflection-based encoding would cost more than the model run itself.
// encode_test.go checks the output against encoding/json, and the golden
// tests every reply against its published schema.

func appendDecision(b []byte, d *decision.Decision) []byte {
	b = append(b, '{')
	if d.ApplicationID != "" {
		b = append(b, `"application_id":`...)
		b = appendString(b, d.ApplicationID)
		b = append(b, ',')
	}
	b = appendOutcome(b, d)
	b = append(b, `,"request_id":`...)
	b = appendString(b, d.RequestID)
	return append(b, '}')
}

func appendBatchDecision(b []byte, index int, d *decision.Decision) []byte {
	b = append(b, `{"index":`...)
	b = appendInt(b, index)
	if d.ApplicationID != "" {
		b = append(b, `,"application_id":`...)
		b = appendString(b, d.ApplicationID)
	}
	b = append(b, ',')
	b = appendOutcome(b, d)
	return append(b, '}')
}

func appendOutcome(b []byte, d *decision.Decision) []byte {
	b = append(b, `"decision_id":`...)
	b = appendString(b, d.ID)
	b = append(b, `,"approve":`...)
	b = strconv.AppendBool(b, d.Approve)
	b = append(b, `,"probability":`...)
	b = jsonw.AppendFloat32(b, d.Probability)
	b = append(b, `,"model":{"name":`...)
	b = appendString(b, d.Model)
	b = append(b, `,"version":`...)
	b = appendString(b, d.Version)
	b = append(b, `,"variant":`...)
	b = appendString(b, d.Variant)
	b = append(b, `,"sha256":`...)
	b = appendString(b, d.SHA256)
	b = append(b, '}')
	if len(d.Reasons) > 0 {
		b = append(b, `,"reasons":`...)
		b = decision.AppendReasonsJSON(b, d.Reasons)
	}
	return b
}

// appendItemError writes one batch item's error; rare, so encoding/json does it.
func appendItemError(b []byte, index int, applicationID string, err error) []byte {
	e := asAPIError(err)
	item := struct {
		Index         int    `json:"index"`
		ApplicationID string `json:"application_id,omitempty"`
		Error         struct {
			Code    string            `json:"code"`
			Message string            `json:"message"`
			Fields  map[string]string `json:"fields,omitempty"`
		} `json:"error"`
	}{Index: index, ApplicationID: applicationID}
	item.Error.Code, item.Error.Message, item.Error.Fields = e.Code, e.Message, e.Fields
	raw, _ := json.Marshal(item)
	return append(b, raw...)
}

func appendInt(b []byte, n int) []byte { return strconv.AppendInt(b, int64(n), 10) }

func appendString(b []byte, s string) []byte { return jsonw.AppendString(b, s) }
