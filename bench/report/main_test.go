package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestStageParts: rows in results/targets/*.md join the Targets table,
// results/sections/*.md become sections in file-name order, and the stage
// times (with failures) are in the header table.
func TestStageParts(t *testing.T) {
	dir := t.TempDir()
	write := func(name, text string) {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("ours-c32.json", `{"label":"ours-c32","rps":21000}`)
	write("stages.txt", "load 39 ok\nmicro ok 21\nload ok 39\nlb failed 12\n")
	write("targets/lb.md", "| LB p99 vs direct | ≤ +20% | +5% | **met** |\n")
	write("sections/20-lb.md", "## LB vs direct\n\nfigures\n")
	write("sections/10-champion.md", "## Champion vs old forest\n\nmore figures\n")
	write("sections/30-empty.md", "  \n")
	r := &report{dir: dir, results: map[string]*result{}, machine: map[string]string{}}
	if err := r.load(); err != nil {
		t.Fatal(err)
	}
	r.write("")
	out := r.b.String()
	for _, want := range []string{
		"| stages | micro 21 s, load 39 s, lb 12 s; **failed: lb** |",
		"| LB p99 vs direct | ≤ +20% | +5% | **met** |\n\n## `/v1/predict` side by side",
		"## Champion vs old forest\n\nmore figures\n\n## LB vs direct\n\nfigures\n\n## Go micro-benchmarks",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("report lacks %q", want)
		}
	}
	if strings.Count(out, "## ") < 8 {
		t.Errorf("sections missing:\n%s", out)
	}
}
