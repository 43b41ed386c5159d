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
	slot      int   // its place in mergeGroups' result
	source    Group // the first group merged, returned as it is if no other joins it
	sources   int
	g         Group
	raw, keys []byte // raw: the header, then (time delta, frame)*
	last      int64  // µs: the time of the last decision in, the earliest and the latest
	min, max  int64
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
		m.g.Keys = closeKeys(m.keys)
		m.g.Encoding = encodingMerged
		m.g.Payload = s2.Encode(nil, m.raw)
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
				at, header, frames, ok = splitBinary(raw, frames[:0])
				ok = ok && len(frames) == g.Decisions
			}
		}
		if !ok {
			out = append(out, g)
			continue
		}
		m := open[string(header)]
		if m != nil && (m.g.Decisions+len(frames) > inlineIndex || max(m.max, at)-min(m.min, at) > mergeSpan.Microseconds()) {
			finish(string(header), m)
			m = nil
		}
		if m == nil {
			m = &merging{slot: len(out), source: g, last: at, min: at, max: at,
				g: Group{Model: g.Model, Version: g.Version, Variant: g.Variant, Served: g.Served}}
			m.raw = append(binary.AppendVarint(nil, at), header...)
			out = append(out, Group{})
			open[string(header)] = m
		}
		for _, f := range frames {
			m.raw = append(binary.AppendVarint(m.raw, at-m.last), f.frame...)
			m.keys = appendTimedKey(m.keys, m.g.Decisions, f.applicationID, f.approve, at)
			m.g.Decisions++
			m.last = at
		}
		m.sources++
		m.min, m.max = min(m.min, at), max(m.max, at)
	}
	for header, m := range open {
		finish(header, m)
	}
	return out
}

// frameInfo is one decision's frame of a binary payload, with what its key
// needs.
type frameInfo struct {
	frame         []byte
	applicationID string
	approve       bool
}

// splitBinary takes a binary payload (raw: decompressed) apart into its
// time, the rest of its header and its frames, appended to fs.
func splitBinary(raw []byte, fs []frameInfo) (at int64, header []byte, _ []frameInfo, ok bool) {
	r := reader{b: raw}
	at = r.varint()
	start := len(raw) - len(r.b)
	skipHeader(&r)
	header = raw[start : len(raw)-len(r.b)]
	for r.err == nil && len(r.b) > 0 {
		before := r.b
		var f frameInfo
		f.applicationID, f.approve = skipFrame(&r)
		f.frame = before[:len(before)-len(r.b)]
		fs = append(fs, f)
	}
	return at, header, fs, r.err == nil
}

// keepFrames rewrites a binary or merged payload (raw: decompressed) as a
// merged one of only the frames at the positions keep reports, each with its
// time: what a purge keeps of a group under legal hold.
func keepFrames(raw []byte, timed bool, keep func(pos int) bool) ([]byte, error) {
	r := reader{b: raw}
	at := r.varint()
	start := len(raw) - len(r.b)
	skipHeader(&r)
	header := raw[start : len(raw)-len(r.b)]
	var (
		out       []byte
		last      int64
		kept, pos int
	)
	for ; r.err == nil && len(r.b) > 0; pos++ {
		if timed {
			at += r.varint()
		}
		before := r.b
		skipFrame(&r)
		if r.err != nil || !keep(pos) {
			continue
		}
		if kept == 0 {
			out = append(binary.AppendVarint(out, at), header...)
			last = at
		}
		out = append(binary.AppendVarint(out, at-last), before[:len(before)-len(r.b)]...)
		last = at
		kept++
	}
	return out, r.err
}
