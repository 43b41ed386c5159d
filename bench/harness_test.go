package bench

import (
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
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

// TestStagePythonCompiles: every Python heredoc of a stage script (`python3
// - … <<'PY'` and `summarize … <<'PY'`, which bash -n does not read) compiles,
// and bench/summary.py's `line` prints what lg shows of a run.
func TestStagePythonCompiles(t *testing.T) {
	scripts, _ := filepath.Glob(filepath.Join("stages", "*.sh"))
	heredoc := regexp.MustCompile(`(?ms)^(?:python3 -|summarize)\b[^\n]*<<'PY'\n(.*?)^PY$`)
	n := 0
	for _, s := range scripts {
		raw, err := os.ReadFile(s)
		if err != nil {
			t.Fatal(err)
		}
		for i, m := range heredoc.FindAllStringSubmatch(string(raw), -1) {
			n++
			cmd := exec.Command("python3", "-c", "import sys; compile(sys.stdin.read(), sys.argv[1], 'exec')", s+"#"+strconv.Itoa(i+1))
			cmd.Stdin = strings.NewReader(m[1])
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Errorf("%s, Python heredoc %d: %v\n%s", s, i+1, err, out)
			}
		}
	}
	if n < 4 {
		t.Errorf("found %d Python heredocs in stages/*.sh, want the summaries at least", n)
	}
	res := filepath.Join(t.TempDir(), "run.json")
	if err := os.WriteFile(res, []byte(`{"label":"oip-v1-c32-1","rps":4897.4,"p50_ms":2.5581,"p99_ms":6.9921,"errors":0}`), 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command("python3", "summary.py", "line", res).CombinedOutput()
	if want := "  oip-v1-c32-1                4897 req/s  p50   2.558  p99    6.992 ms  errors 0\n"; err != nil || string(out) != want {
		t.Errorf("summary.py line: %v %q, want %q", err, out, want)
	}
}
