// Package decision is a STUB of h3-decision's package with the playbook's
// contract types, so serve/record builds before h3 lands; h3's file wins on
// merge.
package decision

import (
	"context"
	"time"
)

type Reason struct{ Code, Feature, Text string }

type Decision struct {
	ID            string
	RequestID     string
	ApplicationID string
	Time          time.Time
	Variant       string
	Served        bool
	Model, Version, SHA256, Source string
	Inputs        []byte
	Probability   float32
	Approve       bool
	Threshold     float32
	Contributions map[string]float32
	Reasons       []Reason
	Latency       time.Duration
}

type Recorder interface{ Record(ctx context.Context, ds []Decision) error }

type Observer interface{ Observe(ds []Decision) }
