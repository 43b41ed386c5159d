package shadow

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"mlservice/schemas"
	"mlservice/serve/decision"
	"mlservice/serve/metrics"
	"mlservice/serve/models"
	"mlservice/serve/routing"
)

// approveRich approves incomes above 50,000.
type approveRich struct{}

func (approveRich) Columns() int { return 1 }
func (approveRich) Score(x, probs []float32, approve []bool) error {
	for i := range probs {
		probs[i] = x[i] / 100000
		approve[i] = x[i] > 50000
	}
	return nil
}
func (approveRich) Close() error { return nil }

func shadowTable(t *testing.T, reg *prometheus.Registry) *routing.Table {
	t.Helper()
	m := metrics.New(reg)
	v := func(version string) *models.Version {
		return models.NewVersion("loan-approval", version, "", "", []schemas.Feature{schemas.Income}, approveRich{})
	}
	tab, err := routing.NewTable("loan-approval",
		&routing.Route{Variant: routing.Champion, Version: v("1"), Metrics: m.ForVersion("loan-approval", "1", "champion")},
		nil,
		&routing.Route{Variant: routing.Shadow, Version: v("3"), Metrics: m.ForVersion("loan-approval", "3", "shadow")},
		routing.ChampionOnly())
	if err != nil {
		t.Fatal(err)
	}
	return tab
}

// count returns model_shadow_predictions_total for the shadow with that agree label.
func count(t *testing.T, reg *prometheus.Registry, agree string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "model_shadow_predictions_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "agree" && l.GetValue() == agree {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

func TestMirrorRecordsAgreement(t *testing.T) {
	reg := prometheus.NewRegistry()
	tab := shadowTable(t, reg)
	m := New(16)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { m.Run(ctx, decision.New(decision.Config{})); close(done) }()
	// The shadow approves incomes above 50,000; the served decisions say
	// "approve" for all four, so two agree and two do not.
	for _, income := range []float64{40000, 45000, 60000, 70000} {
		m.Offer(tab, &schemas.Application{Income: income}, &decision.Decision{Approve: true})
	}
	deadline := time.Now().Add(2 * time.Second)
	for count(t, reg, "true")+count(t, reg, "false") < 4 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if count(t, reg, "true") != 2 || count(t, reg, "false") != 2 {
		t.Fatalf("agree=%v disagree=%v", count(t, reg, "true"), count(t, reg, "false"))
	}
	cancel()
	<-done
	tab.Shadow.Version.Release()
	if !tab.Shadow.Version.Closed() {
		t.Fatal("the shadow version kept references after its jobs were scored")
	}
}

func TestFullQueueDropsAndCounts(t *testing.T) {
	reg := prometheus.NewRegistry()
	tab := shadowTable(t, reg)
	m := New(2) // no worker: the queue fills
	for range 5 {
		m.Offer(tab, &schemas.Application{Income: 1}, &decision.Decision{})
	}
	if got := count(t, reg, "dropped"); got != 3 {
		t.Fatalf("dropped %v, want 3", got)
	}
	m.drain()
	tab.Shadow.Version.Release()
	if !tab.Shadow.Version.Closed() {
		t.Fatal("queued jobs' references not released by drain")
	}
	noShadow, _ := routing.NewTable("loan-approval", tab.Champion, nil, nil, routing.ChampionOnly())
	m.Offer(noShadow, &schemas.Application{Income: 1}, &decision.Decision{}) // no shadow: nothing to do
	if len(m.jobs) != 0 {
		t.Fatal("queued a job for a table without a shadow")
	}
}
