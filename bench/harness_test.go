package bench

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestBenchStages: every `stage NAME` line of run.sh has its script in
// stages/, every script there is run by exactly one line, and every shell
// file of the harness parses.
func TestBenchStages(t *testing.T) {
	raw, err := os.ReadFile("run.sh")
	if err != nil {
		t.Fatal(err)
	}
	lines := regexp.MustCompile(`(?m)^stage ([a-z0-9_-]+)\b`).FindAllStringSubmatch(string(raw), -1)
	called := map[string]int{}
	for _, m := range lines {
		called[m[1]]++
	}
	if len(called) == 0 {
		t.Fatal("run.sh has no stage lines")
	}
	scripts, _ := filepath.Glob(filepath.Join("stages", "*.sh"))
	have := map[string]bool{}
	for _, s := range scripts {
		have[strings.TrimSuffix(filepath.Base(s), ".sh")] = true
	}
	for name, n := range called {
		if !have[name] {
			t.Errorf("run.sh: stage %s has no stages/%s.sh", name, name)
		}
		if n > 1 {
			t.Errorf("run.sh runs stage %s %d times", name, n)
		}
	}
	for name := range have {
		if called[name] == 0 {
			t.Errorf("stages/%s.sh is not run by any `stage %s` line in run.sh", name, name)
		}
	}
	for _, f := range append([]string{"run.sh", "lib.sh"}, scripts...) {
		if out, err := exec.Command("bash", "-n", f).CombinedOutput(); err != nil {
			t.Errorf("bash -n %s: %v\n%s", f, err, out)
		}
	}
}
