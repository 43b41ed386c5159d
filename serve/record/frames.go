package record

import (
	"encoding/binary"
	"errors"
	"math"
	"slices"
	"time"

	"mlservice/serve/decision"
)

// The binary payload (encodingBinary) keeps a group's decisions as the
// decision path made them, not as JSON: what the group's decisions share is
// written once (a header), each decision's own fields follow, numbers as
// their float32 bits. The documents are built on read with AppendDocument,
// so they are the same bytes an encodingS2Frames payload holds, but a
// decision costs a few appends to record instead of formatting a dozen
// numbers and escaping its strings.
//
//	payload  = s2(header frame*)
//	header   = time(varint µs) variant model version sha256 source served(byte) characteristics(uvarint n, str*n)
//	frame    = id request_id application_id inputs probability(f32) approve(byte) threshold(f32)
//	           latency(uvarint µs) contributions(uvarint n, f32*n) reasons(uvarint n, (code feature text)*n)
//	str      = uvarint length, bytes
//
// A group is written this way only when its decisions share the header's
// fields (encodeGroups' key and the characteristics); otherwise as JSON.
// A merged payload (encodingMerged, merge.go) has the same header, with the
// first decision's time, and each frame led by its time's difference from
// the previous frame's (varint µs).

// shareHeader reports whether every decision of a group has the first's
// characteristics (they are the version's, so always, but the header must
// not lie).
func shareHeader(ds []decision.Decision, idx []int) bool {
	first := ds[idx[0]].Characteristics
	for _, i := range idx[1:] {
		c := ds[i].Characteristics
		if len(c) != len(first) || (len(c) > 0 && &c[0] != &first[0] && !slices.Equal(c, first)) {
			return false
		}
	}
	return true
}

func appendStr(b []byte, s string) []byte {
	return append(binary.AppendUvarint(b, uint64(len(s))), s...)
}

func appendF32(b []byte, f float32) []byte {
	return binary.LittleEndian.AppendUint32(b, math.Float32bits(f))
}

// appendHeader writes what a group's decisions share, from its first.
func appendHeader(b []byte, d *decision.Decision) []byte {
	b = binary.AppendVarint(b, d.Time.UnixMicro())
	for _, s := range [...]string{d.Variant, d.Model, d.Version, d.SHA256, d.Source} {
		b = appendStr(b, s)
	}
	b = append(b, boolByte(d.Served))
	b = binary.AppendUvarint(b, uint64(len(d.Characteristics)))
	for _, c := range d.Characteristics {
		b = appendStr(b, c)
	}
	return b
}

// appendBinary writes one decision's own fields.
func appendBinary(b []byte, d *decision.Decision) []byte {
	b = appendStr(b, d.ID)
	b = appendStr(b, d.RequestID)
	b = appendStr(b, d.ApplicationID)
	b = binary.AppendUvarint(b, uint64(len(d.Inputs)))
	b = append(b, d.Inputs...)
	b = appendF32(b, d.Probability)
	b = append(b, boolByte(d.Approve))
	b = appendF32(b, d.Threshold)
	b = binary.AppendUvarint(b, uint64(d.Latency.Microseconds()))
	b = binary.AppendUvarint(b, uint64(len(d.Contributions)))
	for _, c := range d.Contributions {
		b = appendF32(b, c)
	}
	b = binary.AppendUvarint(b, uint64(len(d.Reasons)))
	for _, r := range d.Reasons {
		b = appendStr(appendStr(appendStr(b, r.Code), r.Feature), r.Text)
	}
	return b
}

func boolByte(v bool) byte {
	if v {
		return 1
	}
	return 0
}

// reader takes a binary payload apart; the first error sticks.
type reader struct {
	b   []byte
	err error
}

var errShort = errors.New("decision record: payload: truncated")

func (r *reader) uvarint() uint64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Uvarint(r.b)
	if n <= 0 {
		r.err = errShort
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) varint() int64 {
	if r.err != nil {
		return 0
	}
	v, n := binary.Varint(r.b)
	if n <= 0 {
		r.err = errShort
		return 0
	}
	r.b = r.b[n:]
	return v
}

func (r *reader) bytes() []byte {
	n := r.uvarint()
	if r.err != nil || n > uint64(len(r.b)) {
		r.err = errShort
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) str() string { return string(r.bytes()) }

func (r *reader) byte() byte {
	if r.err != nil || len(r.b) < 1 {
		r.err = errShort
		return 0
	}
	v := r.b[0]
	r.b = r.b[1:]
	return v
}

func (r *reader) f32() float32 {
	if r.err != nil || len(r.b) < 4 {
		r.err = errShort
		return 0
	}
	v := math.Float32frombits(binary.LittleEndian.Uint32(r.b))
	r.b = r.b[4:]
	return v
}

// count reads a length that must fit in what is left (each item at least
// one byte), so a corrupt payload cannot ask for a huge allocation.
func (r *reader) count() int {
	n := r.uvarint()
	if n > uint64(len(r.b)) {
		r.err = errShort
		return 0
	}
	return int(n)
}

// binaryDocs calls fn with the time and the JSON document of each decision
// of a binary payload (raw: decompressed), in position order; timed: each
// frame is led by its time (encodingMerged). doc is only valid during the
// call.
func binaryDocs(raw []byte, timed bool, fn func(pos int, at time.Time, doc []byte) error) error {
	r := reader{b: raw}
	var d decision.Decision
	at := r.varint()
	d.Variant, d.Model, d.Version, d.SHA256, d.Source = r.str(), r.str(), r.str(), r.str(), r.str()
	d.Served = r.byte() == 1
	d.Characteristics = make([]string, r.count())
	for i := range d.Characteristics {
		d.Characteristics[i] = r.str()
	}
	var doc []byte
	for pos := 0; r.err == nil && len(r.b) > 0; pos++ {
		if timed {
			at += r.varint()
		}
		d.Time = time.UnixMicro(at).UTC()
		d.ID, d.RequestID, d.ApplicationID = r.str(), r.str(), r.str()
		d.Inputs = r.bytes()
		d.Probability = r.f32()
		d.Approve = r.byte() == 1
		d.Threshold = r.f32()
		d.Latency = time.Duration(r.uvarint()) * time.Microsecond
		d.Contributions = d.Contributions[:0]
		for range r.count() {
			d.Contributions = append(d.Contributions, r.f32())
		}
		if len(d.Contributions) == 0 {
			d.Contributions = nil
		}
		d.Reasons = d.Reasons[:0]
		for range r.count() {
			d.Reasons = append(d.Reasons, decision.Reason{Code: r.str(), Feature: r.str(), Text: r.str()})
		}
		if r.err != nil {
			break
		}
		doc = AppendDocument(doc[:0], &d)
		if err := fn(pos, d.Time, doc); err != nil {
			return err
		}
	}
	return r.err
}

// skipHeader and skipFrame pass over a binary header and one frame, in the
// layout binaryDocs reads, without building strings; skipFrame returns the
// frame's application id and verdict.
func skipHeader(r *reader) {
	for range 5 { // variant model version sha256 source
		r.bytes()
	}
	r.byte()
	for range r.count() {
		r.bytes()
	}
}

func skipFrame(r *reader) (applicationID string, approve bool) {
	r.bytes()
	r.bytes()
	applicationID = string(r.bytes())
	r.bytes()
	r.f32()
	approve = r.byte() == 1
	r.f32()
	r.uvarint()
	for range r.count() {
		r.f32()
	}
	for range r.count() {
		r.bytes()
		r.bytes()
		r.bytes()
	}
	return applicationID, approve
}
