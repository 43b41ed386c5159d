package main

import (
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"mlservice/internal/servetest"
	"mlservice/legacy/batch"
	"mlservice/legacy/internal/legacytest"
)

// legacyBinary builds this command into the test's temp dir: the kill test
// needs a real process to SIGKILL.
func legacyBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "legacy")
	cmd := exec.Command("go", "build", "-o", bin, "./legacy")
	cmd.Dir = servetest.ModuleRoot()
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build ./legacy: %v\n%s", err, out)
	}
	return bin
}

// throttled puts a delay in front of each call to the service, so that a
// run lasts long enough to be killed in the middle.
func throttled(t *testing.T, target string, delay time.Duration) string {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	proxy := httputil.NewSingleHostReverseProxy(u)
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		time.Sleep(delay)
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	return ts.URL
}

// startBatch runs the batch binary; the test's cleanup kills it if it is
// still running.
func startBatch(t *testing.T, bin string, args ...string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	return startCmd(t, bin, nil, append([]string{"batch"}, args...)...)
}

// startCmd runs the legacy binary with env added to the test's.
func startCmd(t *testing.T, bin string, env []string, args ...string) (*exec.Cmd, *bytes.Buffer) {
	t.Helper()
	cmd := exec.Command(bin, args...)
	cmd.Env = append(os.Environ(), env...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	})
	return cmd, &stderr
}

func exitCodeOf(err error) int {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode()
	}
	if err != nil {
		return -1
	}
	return 0
}

// expectedIDs are the references the job gives the dataset's rows.
func expectedIDs(t *testing.T, path string) map[string]bool {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	rows, err := batch.ReadExport(f)
	if err != nil {
		t.Fatal(err)
	}
	ids := map[string]bool{}
	for _, r := range rows {
		ids[r.ID] = true
	}
	return ids
}

// exactlyOnce checks that the decisions name every expected row once.
func exactlyOnce(t *testing.T, decisions [][]string, want map[string]bool) {
	t.Helper()
	seen := map[string]int{}
	for _, d := range decisions {
		seen[d[1]]++
		if d[6] == "" || (d[3] != "true" && d[3] != "false") {
			t.Errorf("incomplete decision %v", d)
		}
	}
	for id := range want {
		if seen[id] != 1 {
			t.Errorf("%s decided %d times", id, seen[id])
		}
	}
	if len(seen) != len(want) || len(decisions) != len(want) {
		t.Errorf("%d decision rows for %d distinct ids, want %d", len(decisions), len(seen), len(want))
	}
}

func TestBatchKilledMidRunResumes(t *testing.T) {
	bin := legacyBinary(t)
	svc := servetest.Start(t, servetest.Options{})
	dataset := legacytest.Dataset(t)
	out := filepath.Join(t.TempDir(), "decisions.csv")
	args := []string{"-in", dataset, "-out", out, "-chunk", "25", "-api", throttled(t, svc.URL, 30*time.Millisecond)}

	cmd, stderr := startBatch(t, bin, args...)
	deadline := time.Now().Add(30 * time.Second)
	for {
		b, _ := os.ReadFile(out)
		if n := bytes.Count(b, []byte("\n")); n > 400 {
			break
		}
		if time.Now().After(deadline) || cmd.ProcessState != nil {
			t.Fatalf("the run did not get far enough to be killed:\n%s", stderr)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	killedAt := len(legacytest.Rows(t, out))
	if killedAt >= 2000 {
		t.Fatalf("the run finished (%d rows) before it was killed", killedAt)
	}
	// A crash can also tear the last line; the rerun must cut it off.
	f, _ := os.OpenFile(out, os.O_APPEND|os.O_WRONLY, 0)
	f.WriteString("9999,L9999-deadbeef,Torn Ro")
	f.Close()

	cmd, stderr = startBatch(t, bin, args...)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("rerun: %v\n%s", err, stderr)
	}
	if !strings.Contains(stderr.String(), "resuming: ") {
		t.Errorf("the rerun did not say it resumed:\n%s", stderr)
	}
	t.Logf("killed after %d decisions; rerun: %s", killedAt, strings.TrimSpace(stderr.String()))
	exactlyOnce(t, legacytest.Rows(t, out), expectedIDs(t, dataset))
	if rejects := legacytest.Rows(t, strings.TrimSuffix(out, ".csv")+".rejects.csv"); len(rejects) != 0 {
		t.Errorf("rejects: %v", rejects)
	}
}

func TestBatchWithServiceDownLosesNothing(t *testing.T) {
	bin := legacyBinary(t)
	dataset := legacytest.Dataset(t)
	dir := t.TempDir()
	out, rejects := filepath.Join(dir, "decisions.csv"), filepath.Join(dir, "undecided.csv")
	down := "http://" + servetest.FreeAddr(t)

	cmd, stderr := startBatch(t, bin, "-in", dataset, "-out", out, "-rejects", rejects, "-api", down, "-retries", "3", "-backoff", "20ms")
	err := cmd.Wait()
	if code := exitCodeOf(err); code != exitUndecided {
		t.Fatalf("exit code %d, want %d (rows undecided)\n%s", code, exitUndecided, stderr)
	}
	if !strings.Contains(stderr.String(), "2000 not decided") {
		t.Errorf("the summary does not report the rows:\n%s", stderr)
	}
	if got := legacytest.Rows(t, out); len(got) != 0 {
		t.Fatalf("%d decisions with the service down", len(got))
	}
	reported := legacytest.Rows(t, rejects)
	want := expectedIDs(t, dataset)
	if len(reported) != len(want) {
		t.Fatalf("%d rows reported, want %d", len(reported), len(want))
	}
	for _, r := range reported {
		if !want[r[1]] || r[4] != "yes" || !strings.Contains(r[3], "unavailable") {
			t.Fatalf("report row %v", r)
		}
	}

	// The service comes back; the same command decides every row.
	svc := servetest.Start(t, servetest.Options{})
	cmd, stderr = startBatch(t, bin, "-in", dataset, "-out", out, "-rejects", rejects, "-api", svc.URL)
	if err := cmd.Wait(); err != nil {
		t.Fatalf("rerun: %v\n%s", err, stderr)
	}
	exactlyOnce(t, legacytest.Rows(t, out), want)
	if left := legacytest.Rows(t, rejects); len(left) != 0 {
		t.Errorf("rows still reported after the rerun: %d", len(left))
	}
}
