package api

import (
	"encoding/json"
	"testing"

	"mlservice/serve/decision"
)

func TestAppendStringMatchesEncodingJSON(t *testing.T) {
	for _, s := range []string{"", "A-1001", `quote " and \ backslash`, "tab\t nl\n cr\r nul\x00 bs\b ff\f",
		"<script>&", "é ü 中文 🙂", "bad utf8 \xff\xfe", "line sep \u2028 \u2029", "\x7f del"} {
		got := string(appendString(nil, s))
		want, _ := json.Marshal(s)
		if got != string(want) {
			t.Errorf("appendString(%q) = %s, want %s", s, got, want)
		}
	}
}

func FuzzAppendString(f *testing.F) {
	f.Add("A-1001")
	f.Add("\xff\u2028<")
	f.Fuzz(func(t *testing.T, s string) {
		want, _ := json.Marshal(s)
		if got := appendString(nil, s); string(got) != string(want) {
			t.Fatalf("appendString(%q) = %s, want %s", s, got, want)
		}
	})
}

func TestAppendDecisionIsTheDecisionShape(t *testing.T) {
	d := decision.Decision{ApplicationID: "A-\"1", Approve: true, Probability: 0.97, Model: "loan-approval",
		Version: "7", Variant: "challenger", RequestID: "req-1"}
	raw := appendDecision(nil, &d)
	var got struct {
		ApplicationID string  `json:"application_id"`
		Approve       bool    `json:"approve"`
		Probability   float64 `json:"probability"`
		Model         struct{ Name, Version, Variant string }
		RequestID     string `json:"request_id"`
	}
	if err := json.Unmarshal(raw, &got); err != nil {
		t.Fatalf("%s: %v", raw, err)
	}
	if got.ApplicationID != `A-"1` || !got.Approve || float32(got.Probability) != 0.97 ||
		got.Model.Name != "loan-approval" || got.Model.Version != "7" || got.Model.Variant != "challenger" || got.RequestID != "req-1" {
		t.Fatalf("decoded %+v from %s", got, raw)
	}
	if raw := appendDecision(nil, &decision.Decision{Model: "m", RequestID: "r"}); json.Valid(raw) == false || string(raw[:15]) != `{"decision_id":` {
		t.Fatalf("no application_id must mean no field: %s", raw)
	}
}
