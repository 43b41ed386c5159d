package record

import (
	"context"
	"encoding/json"
	"sort"

	"mlservice/serve/outcomes"
)

// Both backends hold the bank's outcomes beside the decisions they judge.
var (
	_ outcomes.Store = (*SQLite)(nil)
	_ outcomes.Store = (*Postgres)(nil)
)

// joinedDoc is the part of a record an outcome is joined on.
type joinedDoc struct {
	Variant string `json:"variant"`
	Served  bool   `json:"served"`
	Model   struct {
		Name    string `json:"name"`
		Version string `json:"version"`
	} `json:"model"`
	Approve bool `json:"approve"`
}

// latestPerVersion keeps each (model, version, variant)'s latest decision of
// one application: the docs arrive newest first. A retried application
// counts once per version that decided it.
func latestPerVersion(docs [][]byte) ([]outcomes.Joined, error) {
	seen := map[[3]string]bool{}
	var out []outcomes.Joined
	for _, b := range docs {
		var d joinedDoc
		if err := json.Unmarshal(b, &d); err != nil {
			return nil, err
		}
		k := [3]string{d.Model.Name, d.Model.Version, d.Variant}
		if seen[k] {
			continue
		}
		seen[k] = true
		out = append(out, outcomes.Joined{Model: d.Model.Name, Version: d.Model.Version, Variant: d.Variant,
			Served: d.Served, Approve: d.Approve})
	}
	return out, nil
}

// joinedFor reads an application's decisions for an outcome:
// ErrUnknownApplication when there are none.
func joinedFor(ctx context.Context, s Store, applicationID string) ([]outcomes.Joined, error) {
	var docs [][]byte
	err := s.ByApplication(ctx, applicationID, func(b []byte) error {
		docs = append(docs, append([]byte(nil), b...))
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(docs) == 0 {
		return nil, outcomes.ErrUnknownApplication
	}
	return latestPerVersion(docs)
}

// PutOutcome implements outcomes.Store, durably.
func (s *SQLite) PutOutcome(ctx context.Context, o outcomes.Outcome) ([]outcomes.Joined, bool, error) {
	joined, err := joinedFor(ctx, s, o.ApplicationID)
	if err != nil {
		return nil, false, err
	}
	var had int
	if err := s.r.QueryRowContext(ctx, `SELECT COUNT(*) FROM outcomes WHERE application_id = ?`, o.ApplicationID).Scan(&had); err != nil {
		return nil, false, err
	}
	approved := 0
	if o.Approved {
		approved = 1
	}
	if _, err := s.execDurably(ctx, `INSERT INTO outcomes (application_id, approved, received_at, received_by) VALUES (?, ?, ?, ?)
		ON CONFLICT (application_id) DO UPDATE SET approved = excluded.approved, received_at = excluded.received_at, received_by = excluded.received_by`,
		o.ApplicationID, approved, o.ReceivedAt.UnixMicro(), o.By); err != nil {
		return nil, false, err
	}
	return joined, had == 0, nil
}

// Arms implements outcomes.Store.
func (s *SQLite) Arms(ctx context.Context, model string) ([]outcomes.Arm, error) {
	if err := s.settled(ctx); err != nil {
		return nil, err
	}
	return armsOf(ctx, sqlQuerier{s.r}, model)
}

// PutOutcome implements outcomes.Store.
func (p *Postgres) PutOutcome(ctx context.Context, o outcomes.Outcome) ([]outcomes.Joined, bool, error) {
	joined, err := joinedFor(ctx, p, o.ApplicationID)
	if err != nil {
		return nil, false, err
	}
	// xmax = 0 on the returned row means it was inserted, not updated.
	var inserted bool
	err = p.pool.QueryRow(ctx, `INSERT INTO outcomes (application_id, approved, received_at, received_by) VALUES ($1, $2, $3, $4)
		ON CONFLICT (application_id) DO UPDATE SET approved = excluded.approved, received_at = excluded.received_at, received_by = excluded.received_by
		RETURNING (xmax = 0)`, o.ApplicationID, o.Approved, o.ReceivedAt.UnixMicro(), o.By).Scan(&inserted)
	if err != nil {
		return nil, false, err
	}
	return joined, inserted, nil
}

// Arms implements outcomes.Store.
func (p *Postgres) Arms(ctx context.Context, model string) ([]outcomes.Arm, error) {
	return armsOf(ctx, pgQuerier{p.reads}, model)
}

// armsOf joins the outcomes with the application index. A batch's
// decisions join once they are indexed (Store.Index: seconds after their
// commit); outcomes arrive weeks later.
func armsOf(ctx context.Context, q querier, model string) ([]outcomes.Arm, error) {
	rs, err := q.query(ctx, `SELECT o.application_id, o.approved, g.version, g.variant, i.approve
		FROM outcomes o JOIN decision_index i ON i.application_id = o.application_id
		JOIN decision_groups g ON g.id = i.group_id
		WHERE g.model = ?
		ORDER BY o.application_id, i.decided_at DESC, i.group_id DESC, i.position DESC`, model)
	if err != nil {
		return nil, err
	}
	var a arms
	for rs.Next() {
		var (
			id, version, variant string
			approved, approve    bool
		)
		if err := rs.Scan(&id, &approved, &version, &variant, &approve); err != nil {
			rs.Close()
			return nil, err
		}
		a.add(model, id, approved, version, variant, approve)
	}
	if err := closeCursor(rs); err != nil {
		return nil, err
	}
	return a.result(), nil
}

// arms counts, per (version, variant), the latest decision of each
// application with an outcome against that outcome. Rows arrive grouped by
// application, newest decision first.
type arms struct {
	app    string
	seen   map[[2]string]bool
	counts map[[2]string]*outcomes.Arm
	model  string
}

func (a *arms) add(model, app string, approved bool, version, variant string, approve bool) {
	if a.counts == nil {
		a.counts = map[[2]string]*outcomes.Arm{}
		a.model = model
	}
	if app != a.app {
		a.app, a.seen = app, map[[2]string]bool{}
	}
	k := [2]string{version, variant}
	if a.seen[k] {
		return
	}
	a.seen[k] = true
	c := a.counts[k]
	if c == nil {
		c = &outcomes.Arm{Model: model, Version: k[0], Variant: k[1]}
		a.counts[k] = c
	}
	c.Outcomes++
	if approve == approved {
		c.Agreeing++
	}
}

func (a *arms) result() []outcomes.Arm {
	out := make([]outcomes.Arm, 0, len(a.counts))
	for _, c := range a.counts {
		out = append(out, *c)
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Version != out[j].Version {
			return out[i].Version < out[j].Version
		}
		return out[i].Variant < out[j].Variant
	})
	return out
}
