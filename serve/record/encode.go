package record

import (
	"encoding/json"
	"strconv"
	"time"

	"mlservice/internal/jsonw"
	"mlservice/serve/decision"
)

// Document is the decision record of one decision as the read routes return
// it (schemas/decision-record.schema.json). Encode writes it by hand (the
// record is on the hot path); this type is for readers and tests.
type Document struct {
	DecisionID    string             `json:"decision_id"`
	RequestID     string             `json:"request_id"`
	ApplicationID string             `json:"application_id"`
	Time          time.Time          `json:"time"`
	Variant       string             `json:"variant"`
	Served        bool               `json:"served"`
	Model         DocumentModel      `json:"model"`
	Inputs        json.RawMessage    `json:"inputs"`
	Probability   float32            `json:"probability"`
	Approve       bool               `json:"approve"`
	Threshold     float32            `json:"threshold"`
	Contributions map[string]float32 `json:"contributions,omitempty"`
	Reasons       []DocumentReason   `json:"reasons"`
	LatencyMS     float64            `json:"latency_ms"`
}

// DocumentModel names the model version that decided.
type DocumentModel struct {
	Name    string `json:"name"`
	Version string `json:"version"`
	SHA256  string `json:"sha256"`
	Source  string `json:"source"`
}

// DocumentReason is one reason for a decline.
type DocumentReason struct {
	Code    string `json:"code"`
	Feature string `json:"feature"`
	Text    string `json:"text"`
}

// TimeFormat is how the record writes times: RFC 3339 in UTC with
// microseconds (what the store keeps).
const TimeFormat = "2006-01-02T15:04:05.000000Z07:00"

// Encode turns a decision into its row, writing the document into buf's
// spare capacity (nil allocates).
func Encode(d *decision.Decision, buf []byte) Row {
	t := d.Time.UTC().Truncate(time.Microsecond)
	b := buf[:0]
	b = append(b, `{"decision_id":`...)
	b = appendString(b, d.ID)
	b = append(b, `,"request_id":`...)
	b = appendString(b, d.RequestID)
	b = append(b, `,"application_id":`...)
	b = appendString(b, d.ApplicationID)
	b = append(b, `,"time":"`...)
	b = t.AppendFormat(b, TimeFormat)
	b = append(b, `","variant":`...)
	b = appendString(b, d.Variant)
	b = append(b, `,"served":`...)
	b = strconv.AppendBool(b, d.Served)
	b = append(b, `,"model":{"name":`...)
	b = appendString(b, d.Model)
	b = append(b, `,"version":`...)
	b = appendString(b, d.Version)
	b = append(b, `,"sha256":`...)
	b = appendString(b, d.SHA256)
	b = append(b, `,"source":`...)
	b = appendString(b, d.Source)
	b = append(b, `},"inputs":`...)
	if len(d.Inputs) == 0 {
		b = append(b, "null"...)
	} else {
		b = append(b, d.Inputs...)
	}
	b = append(b, `,"probability":`...)
	b = appendFloat32(b, d.Probability)
	b = append(b, `,"approve":`...)
	b = strconv.AppendBool(b, d.Approve)
	b = append(b, `,"threshold":`...)
	b = appendFloat32(b, d.Threshold)
	if len(d.Contributions) > 0 {
		b = append(b, `,"contributions":`...)
		b = d.AppendContributionsJSON(b)
	}
	b = append(b, `,"reasons":`...)
	b = decision.AppendReasonsJSON(b, d.Reasons)
	b = append(b, `,"latency_ms":`...)
	b = strconv.AppendFloat(b, float64(d.Latency.Microseconds())/1000, 'f', -1, 64)
	b = append(b, '}')
	return Row{DecisionID: d.ID, ApplicationID: d.ApplicationID, Time: t, Served: d.Served, Doc: b}
}

// appendFloat32 and appendString write as the API's answers do (jsonw), so
// the answer and the record agree digit for digit; NaN and ±Inf, which no
// model output should be, become null rather than breaking the JSON.
func appendFloat32(b []byte, f float32) []byte { return jsonw.AppendFloat32(b, f) }

func appendString(b []byte, s string) []byte { return jsonw.AppendString(b, s) }
