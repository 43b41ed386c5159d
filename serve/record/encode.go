package record

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/klauspost/compress/s2"

	"mlservice/internal/jsonw"
	"mlservice/serve/decision"
)

// Document is the decision record of one decision as the read routes return
// it (schemas/decision-record.schema.json). AppendDocument writes it by hand (the
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

// AppendDocument appends the decision's document (what the read routes
// return for it) to b.
func AppendDocument(b []byte, d *decision.Decision) []byte {
	t := d.Time.UTC().Truncate(time.Microsecond)
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
	return append(b, '}')
}

// appendFloat32 and appendString write as the API's answers do (jsonw), so
// the answer and the record agree digit for digit; NaN and ±Inf, which no
// model output should be, become null rather than breaking the JSON.
func appendFloat32(b []byte, f float32) []byte { return jsonw.AppendFloat32(b, f) }

func appendString(b []byte, s string) []byte { return jsonw.AppendString(b, s) }

// groupKey is what the decisions of one group share (one decide call gives
// its decisions one time).
type groupKey struct {
	model, version, variant string
	served                  bool
	at                      time.Time
}

// encodeGroups turns one Record call's decisions into groups: one per
// (version, variant, served, time), at most groupMax decisions each, in the
// decisions' order. buf is reused scratch for the documents.
func encodeGroups(ds []decision.Decision, buf []byte) ([]Group, []byte) {
	// Which group key each decision has: a call has one to three (champion,
	// challenger, shadow), so a scan of the keys seen beats a map.
	var (
		keys   []groupKey
		member = make([]int, len(ds))
	)
	for i := range ds {
		k := keyOf(&ds[i])
		j := len(keys) - 1
		for j >= 0 && keys[j] != k {
			j--
		}
		if j < 0 {
			keys, j = append(keys, k), len(keys)
		}
		member[i] = j
	}
	var (
		out []Group
		idx []int
	)
	for j, k := range keys {
		idx = idx[:0]
		for i := range ds {
			if member[i] == j {
				idx = append(idx, i)
			}
		}
		for len(idx) > 0 {
			part := idx[:min(len(idx), groupMax)]
			idx = idx[len(part):]
			var g Group
			g, buf = encodeGroup(ds, part, k, buf)
			out = append(out, g)
		}
	}
	return out, buf
}

// encodeGroup writes the decisions ds[idx] as one group: binary when they
// share the header, else as JSON documents.
func encodeGroup(ds []decision.Decision, idx []int, k groupKey, buf []byte) (Group, []byte) {
	size := 2 // the keys' brackets, and for each "[id,1],"
	for _, i := range idx {
		size += len(ds[i].ApplicationID) + 7
	}
	keys := make([]byte, 0, size) // grown by appends, a 1,000-row batch's keys were copied a dozen times
	b, encoding := buf[:0], encodingS2Frames
	if shareHeader(ds, idx) {
		encoding = encodingBinary
		b = appendHeader(b, &ds[idx[0]])
	}
	for j, i := range idx {
		keys = appendKey(keys, j, ds[i].ApplicationID, ds[i].Approve)
		if encoding == encodingBinary {
			b = appendBinary(b, &ds[i])
		} else {
			b = appendFrame(b, &ds[i])
		}
	}
	return Group{Time: k.at.UTC(), Model: k.model, Version: k.version, Variant: k.variant, Served: k.served,
		Decisions: len(idx), Keys: closeKeys(keys), Encoding: encoding, Payload: compress(b)}, b
}

// compressScratch holds s2's output buffers: s2.Encode(nil, …) allocates
// (and so zeroes) its worst case, 1.2 times the input, for every group.
var compressScratch = sync.Pool{New: func() any { return new([]byte) }}

// compress is s2.Encode of raw into a buffer of its exact size.
func compress(raw []byte) []byte {
	dst := compressScratch.Get().(*[]byte)
	if n := s2.MaxEncodedLen(len(raw)); cap(*dst) < n {
		*dst = make([]byte, n)
	}
	out := bytes.Clone(s2.Encode((*dst)[:cap(*dst)], raw))
	if cap(*dst) <= 1<<20 { // a large batch's buffer is not kept
		compressScratch.Put(dst)
	}
	return out
}

// appendKey appends the i-th decision's entry to a group's keys: the JSON
// array [[application_id, approve 1|0], …] the backends unpack in SQL into
// index entries, at the group's time.
func appendKey(b []byte, i int, applicationID string, approve bool) []byte {
	return append(openKey(b, i, applicationID, approve), ']')
}

// appendTimedKey appends an entry with the decision's own time (unix µs) as
// its third element, for groups whose decisions have different times
// (merge.go); the index takes it over the group's.
func appendTimedKey(b []byte, i int, applicationID string, approve bool, at int64) []byte {
	return append(strconv.AppendInt(append(openKey(b, i, applicationID, approve), ','), at, 10), ']')
}

func openKey(b []byte, i int, applicationID string, approve bool) []byte {
	if i == 0 {
		b = append(b, '[')
	} else {
		b = append(b, ',')
	}
	b = jsonw.AppendString(append(b, '['), applicationID)
	if approve {
		return append(b, ",1"...)
	}
	return append(b, ",0"...)
}

// closeKeys ends what appendKey began.
func closeKeys(b []byte) []byte {
	if len(b) == 0 {
		return []byte("[]")
	}
	return append(b, ']')
}

func keyOf(d *decision.Decision) groupKey {
	return groupKey{model: d.Model, version: d.Version, variant: d.Variant, served: d.Served, at: d.Time}
}

// appendFrame appends d's document with its length in front (documents may
// hold any byte an input held, so no separator would do).
func appendFrame(b []byte, d *decision.Decision) []byte {
	var head [binary.MaxVarintLen64]byte
	at := len(b)
	b = append(b, head[:]...) // room for the length, moved into place below
	b = AppendDocument(b, d)
	n := binary.PutUvarint(head[:], uint64(len(b)-at-len(head)))
	copy(b[at:], head[:n])
	return append(b[:at+n], b[at+len(head):]...)
}

// Payload encodings (the encoding column).
const (
	// encodingDocument is one document as it is: the decisions moved from
	// schema version 2's one row a decision.
	encodingDocument = 0
	// encodingS2Frames is s2-compressed, length-prefixed documents.
	encodingS2Frames = 1
	// encodingBinary is s2-compressed decisions in the binary layout of
	// frames.go, made documents on read.
	encodingBinary = 2
	// encodingMerged is the binary layout with a time for each decision:
	// the single predictions of several decide calls (merge.go).
	encodingMerged = 3
)

// payloadDocs calls fn with each document of a stored payload, in position
// order, and the decision's time where the payload keeps it (binary
// layouts; else zero: the group's).
func payloadDocs(encoding int, payload []byte, fn func(pos int, at time.Time, doc []byte) error) error {
	if encoding == encodingDocument {
		return fn(0, time.Time{}, payload)
	}
	if encoding != encodingS2Frames && encoding != encodingBinary && encoding != encodingMerged {
		return fmt.Errorf("decision record: unknown payload encoding %d", encoding)
	}
	raw, err := s2.Decode(nil, payload)
	if err != nil {
		return fmt.Errorf("decision record: payload: %w", err)
	}
	if encoding != encodingS2Frames {
		return binaryDocs(raw, encoding == encodingMerged, fn)
	}
	for pos := 0; len(raw) > 0; pos++ {
		n, w := binary.Uvarint(raw)
		if w <= 0 || n > uint64(len(raw)-w) {
			return errors.New("decision record: payload: bad frame")
		}
		if err := fn(pos, time.Time{}, raw[w:w+int(n)]); err != nil {
			return err
		}
		raw = raw[w+int(n):]
	}
	return nil
}
