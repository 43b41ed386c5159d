package routing

import (
	"fmt"
	"testing"

	"mlservice/serve/models"
)

type nopScorer struct{}

func (nopScorer) Columns() int                         { return 1 }
func (nopScorer) Score(_, _ []float32, _ []bool) error { return nil }
func (nopScorer) Close() error                         { return nil }

func route(v Variant, version string) *Route {
	return &Route{Variant: v, Version: models.NewVersion("loan-approval", version, "", "", nil, nopScorer{})}
}

func table(t *testing.T, challenger int) *Table {
	t.Helper()
	tab, err := NewTable("loan-approval", route(Champion, "1"), route(Challenger, "2"), nil,
		Weights{Champion: 100 - challenger, Challenger: challenger})
	if err != nil {
		t.Fatal(err)
	}
	return tab
}

func TestBucketIsAStableFunctionOfTheID(t *testing.T) {
	// Golden values: changing the hash would move applicants between
	// variants across a deploy, so it must never change by accident.
	for id, want := range map[string]int{"A-1001": 61, "LOAN-000001": 49, "x": 71} {
		if got := Bucket(id); got != want {
			t.Errorf("Bucket(%q) = %d, want %d", id, got, want)
		}
	}
}

func TestSplitAndMonotonicShares(t *testing.T) {
	at10, at20 := table(t, 10), table(t, 20)
	challengers := 0
	for i := range 10000 {
		id := fmt.Sprintf("APP-%06d", i)
		r10 := at10.Pick(id)
		if r10.Variant == Challenger {
			challengers++
			if at20.Pick(id).Variant != Challenger {
				t.Fatalf("%s left the challenger when its share grew", id)
			}
		}
	}
	if challengers < 800 || challengers > 1200 {
		t.Fatalf("challenger got %d of 10,000 at 10%%", challengers)
	}
	noChallenger, _ := NewTable("loan-approval", route(Champion, "1"), nil, nil, Weights{Champion: 50, Challenger: 50})
	if noChallenger.Pick("A-1").Variant != Champion || noChallenger.ChallengerShare() != 0 {
		t.Fatal("with no challenger the champion takes everything")
	}
}

func TestWeightsValidate(t *testing.T) {
	for _, w := range []Weights{{90, 20}, {-10, 110}, {101, -1}, {0, 0}} {
		if w.Validate() == nil {
			t.Errorf("%+v accepted", w)
		}
	}
	for _, w := range []Weights{{100, 0}, {0, 100}, {90, 10}} {
		if err := w.Validate(); err != nil {
			t.Errorf("%+v: %v", w, err)
		}
	}
	if _, err := NewTable("m", nil, nil, nil, ChampionOnly()); err == nil {
		t.Fatal("a table without a champion")
	}
}

func TestAcquireSkipsARetiredVersion(t *testing.T) {
	var r Router
	if tab, rt := r.Acquire("A"); tab != nil || rt != nil {
		t.Fatal("acquired from an empty router")
	}
	old := table(t, 0)
	r.Publish(old)
	next := table(t, 0)
	r.Publish(next)
	old.Champion.Version.Release() // retired: its last reference is gone
	_, rt := r.Acquire("A")
	if rt.Version != next.Champion.Version {
		t.Fatal("acquired a retired version")
	}
	rt.Version.Release()
	tab, release := r.AcquireAll()
	if tab != next {
		t.Fatal("AcquireAll returned another table")
	}
	release()
	if next.Champion.Version.Closed() {
		t.Fatal("AcquireAll's release closed a live version")
	}
}
