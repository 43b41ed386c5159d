package outcomes

// Standing is one live version's agreement with the bank's outcomes.
type Standing struct {
	Version   string   `json:"version"`
	Variant   string   `json:"variant"`
	Outcomes  int      `json:"outcomes"`
	Agreeing  int      `json:"agreeing"`
	Agreement *float64 `json:"agreement"` // null before the first outcome
	Interval  Interval `json:"interval_95"`
}

// Versus compares one version's agreement with the champion's.
type Versus struct {
	Variant     string   `json:"variant"`
	Version     string   `json:"version"`
	Difference  *float64 `json:"difference"` // this version's agreement minus the champion's
	Interval    Interval `json:"interval_95"`
	Significant bool     `json:"significant"`
	// Verdict says it in ops' words.
	Verdict string `json:"verdict"`
}

// Comparison is what GET /admin/models shows about outcomes.
type Comparison struct {
	Versions []Standing `json:"versions"`
	Versus   []Versus   `json:"versus_champion"`
}

// Live names the version in each variant now ("" when none).
type Live struct{ Champion, Challenger, Shadow string }

// Compare turns the record's counts into each live version's standing and
// the challenger's and shadow's difference from the champion. Challenger and
// champion decide different applicants (the split is by application), so
// their arms are independent samples; a shadow decides the champion's own
// applicants, for which the independent-samples interval is conservative.
func Compare(arms []Arm, live Live) Comparison {
	find := func(variant, version string) Standing {
		s := Standing{Version: version, Variant: variant}
		for _, a := range arms {
			if a.Variant == variant && a.Version == version {
				s.Outcomes += a.Outcomes
				s.Agreeing += a.Agreeing
			}
		}
		s.Interval = Wilson(s.Agreeing, s.Outcomes)
		if s.Outcomes > 0 {
			p := float64(s.Agreeing) / float64(s.Outcomes)
			s.Agreement = &p
		}
		return s
	}
	var c Comparison
	if live.Champion == "" {
		return c
	}
	champ := find("champion", live.Champion)
	c.Versions = append(c.Versions, champ)
	for _, o := range []struct{ variant, version string }{{"challenger", live.Challenger}, {"shadow", live.Shadow}} {
		if o.version == "" {
			continue
		}
		s := find(o.variant, o.version)
		c.Versions = append(c.Versions, s)
		c.Versus = append(c.Versus, versus(s, champ))
	}
	return c
}

func versus(s, champ Standing) Versus {
	v := Versus{Variant: s.Variant, Version: s.Version, Interval: Interval{-1, 1}}
	if s.Outcomes == 0 || champ.Outcomes == 0 {
		v.Verdict = "not enough outcomes yet"
		return v
	}
	d := *s.Agreement - *champ.Agreement
	v.Difference = &d
	v.Interval = Difference(s.Agreeing, s.Outcomes, champ.Agreeing, champ.Outcomes)
	v.Significant = v.Interval.Significant()
	switch {
	case !v.Significant:
		v.Verdict = "no significant difference from the champion"
	case d > 0:
		v.Verdict = "agrees with the bank significantly more often than the champion"
	default:
		v.Verdict = "agrees with the bank significantly less often than the champion"
	}
	return v
}
