package record

import (
	"encoding/binary"
	"time"

	"github.com/klauspost/compress/s2"
)

// A single prediction is a group of its own: one decide call, one time. Kept
// so, each would be a row of the database with its own compressed payload,
// about 570 bytes a decision on disk. The SQLite loader therefore merges the
// small groups of one load that share a header (model version, variant,
// served) into groups of up to inlineIndex decisions, each decision keeping
// its own time (encodingMerged): about 175 bytes a decision, one row where
// there were dozens. The application index takes each decision's time from
// the group's keys (appendTimedKey), so reads by application are exact. A
// merged group's decided_at is its newest decision's, so retention never
// purges a decision early, and Export puts decisions back in time order
// within mergeSpan.

// mergeUpTo is the largest group the loader merges; mergeSpan bounds the
// time one merged group covers.
const (
	mergeUpTo = 16
	mergeSpan = 50 * time.Millisecond
)

// merging is one merged group being built.
type merging struct {
	slot     int   // its place in mergeGroups' result
	source   Group // the first group merged, returned as it is if no other joins it
	sources  int
	g        Group
	p        mergedPayload
	min, max int64 // µs: the earliest and the latest decision's time
}

// mergeGroups returns gs with its small binary groups merged, each merged
// group where its first group was; the others, and any group whose payload
// does not parse, are kept as they are.
func mergeGroups(gs []Group) []Group {
	var (
		out     = make([]Group, 0, len(gs))
		open    = map[string]*merging{}
		scratch []byte
		frames  []frameInfo
	)
	finish := func(header string, m *merging) {
		delete(open, header)
		if m.sources == 1 {
			out[m.slot] = m.source
			return
		}
		m.g.Time = time.UnixMicro(m.max).UTC()
		m.g.Decisions, m.g.Keys, m.g.Encoding, m.g.Payload = m.p.n, closeKeys(m.p.keys), encodingMerged, compress(m.p.raw)
		out[m.slot] = m.g
	}
	for _, g := range gs {
		var (
			at     int64
			header []byte
			ok     bool
		)
		if g.Encoding == encodingBinary && g.Decisions <= mergeUpTo {
			if raw, err := s2.Decode(scratch[:cap(scratch)], g.Payload); err == nil {
				scratch = raw
				at, header, frames, ok = splitBinary(raw, false, frames[:0])
				ok = ok && len(frames) == g.Decisions
			}
		}
		if !ok {
			out = append(out, g)
			continue
		}
		m := open[string(header)]
		if m != nil && (m.p.n+len(frames) > inlineIndex || max(m.max, at)-min(m.min, at) > mergeSpan.Microseconds()) {
			finish(string(header), m)
			m = nil
		}
		if m == nil {
			m = &merging{slot: len(out), source: g, min: at, max: at,
				g: Group{Model: g.Model, Version: g.Version, Variant: g.Variant, Served: g.Served}}
			out = append(out, Group{})
			open[string(header)] = m
		}
		for _, f := range frames {
			m.p.add(header, f)
		}
		m.sources++
		m.min, m.max = min(m.min, at), max(m.max, at)
	}
	for header, m := range open {
		finish(header, m)
	}
	return out
}

// mergedPayload builds an encodingMerged payload (raw, before compression:
// the header at the first decision's time, then (time delta, frame)*) and
// its keys, each decision at its own time.
type mergedPayload struct {
	raw, keys []byte
	n         int   // decisions added
	last      int64 // µs: the last one's time
}

func (p *mergedPayload) add(header []byte, f frameInfo) {
	if p.n == 0 {
		p.raw = append(binary.AppendVarint(p.raw, f.at), header...)
		p.last = f.at
	}
	p.raw = append(binary.AppendVarint(p.raw, f.at-p.last), f.frame...)
	p.keys = appendTimedKey(p.keys, p.n, f.applicationID, f.approve, f.at)
	p.n++
	p.last = f.at
}

// frameInfo is one decision's frame of a binary payload, with its time and
// what its key needs.
type frameInfo struct {
	frame         []byte
	at            int64 // µs
	applicationID string
	approve       bool
}

// splitBinary takes a binary payload (raw: decompressed; timed: merged, each
// frame led by its time) apart into its header's time, the rest of its
// header and its frames, appended to fs.
func splitBinary(raw []byte, timed bool, fs []frameInfo) (at int64, header []byte, _ []frameInfo, ok bool) {
	r := reader{b: raw}
	at = r.varint()
	start := len(raw) - len(r.b)
	skipHeader(&r)
	header = raw[start : len(raw)-len(r.b)]
	for t := at; r.err == nil && len(r.b) > 0; {
		if timed {
			t += r.varint()
		}
		before := r.b
		f := frameInfo{at: t}
		f.applicationID, f.approve = skipFrame(&r)
		f.frame = before[:len(before)-len(r.b)]
		fs = append(fs, f)
	}
	return at, header, fs, r.err == nil
}
