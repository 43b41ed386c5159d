package stack

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"mlservice/internal/freeport"
	"mlservice/internal/servetest"
)

// The drills of issue 18, through HAProxy, the front door of `make stack`,
// with three replicas. Every load here is bounded in rate and time.

const (
	loadClients = 4
	loadRate    = 100 // requests per second per client
)

func application(id string) []byte {
	return fmt.Appendf(nil, `{"application_id":%q,"income":50000,"credit_score":700,"loan_amount":20000,"years_employed":5,"points":60}`, id)
}

// failure is one request of the load that did not get a 200.
type failure struct {
	at  time.Time
	err string
}

// load is a bounded stream of /v1/predict requests from several clients,
// each on its own keep-alive connection, at a fixed rate.
type load struct {
	ok       atomic.Int64
	mu       sync.Mutex
	failures []failure
	stop     context.CancelFunc
	done     sync.WaitGroup
}

func startLoad(base string, clients, rate int, limit time.Duration) *load {
	ctx, cancel := context.WithTimeout(context.Background(), limit)
	l := &load{stop: cancel}
	for c := range clients {
		l.done.Add(1)
		go func() {
			defer l.done.Done()
			tr := &http.Transport{MaxIdleConnsPerHost: 1}
			defer tr.CloseIdleConnections()
			hc := &http.Client{Transport: tr, Timeout: 5 * time.Second}
			tick := time.NewTicker(time.Second / time.Duration(rate))
			defer tick.Stop()
			for n := 0; ; n++ {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				err := predictOnce(hc, base, fmt.Sprintf("L-%d-%d", c, n))
				if err == nil {
					l.ok.Add(1)
					continue
				}
				l.mu.Lock()
				l.failures = append(l.failures, failure{time.Now(), err.Error()})
				l.mu.Unlock()
			}
		}()
	}
	return l
}

// finish stops the load and returns the successes and the failures.
func (l *load) finish() (int64, []failure) {
	l.stop()
	l.done.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.ok.Load(), l.failures
}

func predictOnce(hc *http.Client, base, id string) error {
	resp, err := hc.Post(base+"/v1/predict", "application/json", bytes.NewReader(application(id)))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("status %d: %.200s", resp.StatusCode, body)
	}
	return nil
}

func summary(fs []failure, max int) string {
	var b strings.Builder
	for i, f := range fs {
		if i == max {
			fmt.Fprintf(&b, "\n  ... %d more", len(fs)-max)
			break
		}
		fmt.Fprintf(&b, "\n  %s %s", f.at.Format("15:04:05.000"), f.err)
	}
	return b.String()
}

// TestDrillClientAborts: clients that give up never take a replica out.
// Two clients send 10,000-application batches with a 10 ms timeout every
// 0.1 s; meanwhile 100 normal /v1/predict requests all get 200, and HAProxy
// still has every replica in rotation.
func TestDrillClientAborts(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the stack")
	}
	top := startStack(t)
	top.waitRotation(t, replicas, 10*time.Second)

	var items []string
	for i := range 10000 {
		items = append(items, string(application(fmt.Sprintf("B-%05d", i))))
	}
	batch := []byte(`{"applications":[` + strings.Join(items, ",") + `]}`)

	downBefore := top.haproxyLogCount(t, " is DOWN")
	ctx, cancel := context.WithCancel(context.Background())
	var aborted, answered atomic.Int64
	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			hc := &http.Client{Timeout: 10 * time.Millisecond}
			tick := time.NewTicker(100 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				resp, err := hc.Post(top.lb+"/v1/predict/batch", "application/json", bytes.NewReader(batch))
				if err != nil {
					aborted.Add(1)
					continue
				}
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err != nil {
					aborted.Add(1)
				} else {
					answered.Add(1)
				}
			}
		}()
	}

	hc := &http.Client{Timeout: 5 * time.Second}
	var failed []string
	for n := range 100 {
		if err := predictOnce(hc, top.lb, fmt.Sprintf("N-%03d", n)); err != nil {
			failed = append(failed, err.Error())
		}
		time.Sleep(40 * time.Millisecond)
	}
	cancel()
	wg.Wait()
	t.Logf("100 normal requests: %d failed; meanwhile %d batches aborted by their clients, %d answered in time",
		len(failed), aborted.Load(), answered.Load())
	if len(failed) > 0 {
		t.Errorf("%d of 100 normal requests failed while other clients aborted: %v", len(failed), failed)
	}
	if aborted.Load() < 20 {
		t.Errorf("only %d batches were aborted: the drill did not drill", aborted.Load())
	}
	if n := top.inRotation(t); n != replicas {
		t.Errorf("after the aborts HAProxy has %d replicas in rotation, want %d", n, replicas)
	}
	if n := top.haproxyLogCount(t, " is DOWN") - downBefore; n > 0 {
		t.Errorf("HAProxy took a replica out %d times while clients aborted", n)
	}
}

// TestDrillKillReplica: one replica SIGKILLed under load. At most 1% of the
// requests fail, and none later than 5 s after the kill; then the replica
// is started again and rejoins.
func TestDrillKillReplica(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the stack")
	}
	top := startStack(t)
	top.waitRotation(t, replicas, 10*time.Second)

	l := startLoad(top.lb, loadClients, loadRate, 30*time.Second)
	time.Sleep(3 * time.Second)
	victim := top.pid(t, "serve-2")
	killed := time.Now()
	if err := syscall.Kill(victim, syscall.SIGKILL); err != nil {
		t.Fatalf("kill serve-2: %v", err)
	}
	time.Sleep(7 * time.Second)
	ok, failures := l.finish()
	total := ok + int64(len(failures))
	var late []failure
	for _, f := range failures {
		if f.at.Sub(killed) > 5*time.Second {
			late = append(late, f)
		}
	}
	share := float64(len(failures)) / float64(total)
	t.Logf("SIGKILL of serve-2 under %d clients × %d req/s: %d of %d requests failed (%.3f%%), %d later than 5 s after the kill%s",
		loadClients, loadRate, len(failures), total, 100*share, len(late), summary(failures, 10))
	if total < 1000 {
		t.Errorf("only %d requests: the load did not run", total)
	}
	if share > 0.01 {
		t.Errorf("%.2f%% of the requests failed, want ≤ 1%%", 100*share)
	}
	if len(late) > 0 {
		t.Errorf("%d requests failed later than 5 s after the kill:%s", len(late), summary(late, 10))
	}
	if n := top.inRotation(t); n != replicas-1 {
		t.Errorf("HAProxy has %d replicas in rotation after the kill, want %d", n, replicas-1)
	}

	// Bring it back (stack.sh restart: its PID file names a dead process).
	if out, err := top.run("restart", "serve-2"); err != nil {
		t.Fatalf("stack.sh restart serve-2: %v\n%s", err, out)
	}
	top.waitRotation(t, replicas, 10*time.Second)
}

// TestDrillRollingRestart: every replica SIGTERMed and started again, one
// at a time, under load (`stack.sh rolling-restart`, i.e. `make
// stack-rolling-restart`): not one request fails. Each replica drains
// (SERVE_SHUTDOWN_DRAIN, /ready 503) and HAProxy takes it out before it
// closes its listener; it rejoins after two passing checks.
func TestDrillRollingRestart(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the stack")
	}
	top := startStack(t)
	top.waitRotation(t, replicas, 10*time.Second)

	logFrom := len(top.haproxyLog(t))
	l := startLoad(top.lb, loadClients, loadRate, 2*time.Minute)
	time.Sleep(time.Second)
	start := time.Now()
	out, err := top.run("rolling-restart")
	took := time.Since(start)
	time.Sleep(time.Second)
	ok, failures := l.finish()
	if err != nil {
		t.Fatalf("stack.sh rolling-restart: %v\n%s", err, out)
	}
	restarts := bytes.Count(out, []byte("is back in rotation"))
	t.Logf("rolling restart of %d replicas in %s under %d clients × %d req/s: %d requests answered 200, %d failed%s",
		restarts, took.Round(time.Millisecond), loadClients, loadRate, ok, len(failures), summary(failures, 10))
	if restarts != replicas {
		t.Errorf("%d replicas restarted, want %d:\n%s", restarts, replicas, out)
	}
	if len(failures) > 0 {
		t.Errorf("%d requests failed during the rolling restart, want 0", len(failures))
	}
	if ok < 1000 {
		t.Errorf("only %d requests: the load did not run", ok)
	}
	if n := top.inRotation(t); n != replicas {
		t.Errorf("after the rolling restart HAProxy has %d replicas in rotation, want %d", n, replicas)
	}
	// Each replica left rotation because its /ready said 503 while it
	// drained, not because its port was gone: out before it stopped. The
	// check that took it out is the last failed one logged before its DOWN.
	var downs []string
	lastFail := map[string]string{}
	for _, line := range strings.Split(top.haproxyLog(t)[logFrom:], "\n") {
		var server string
		if _, rest, ok := strings.Cut(line, "Health check for server serve/"); ok && strings.Contains(line, " failed, ") {
			server, _, _ = strings.Cut(rest, " ")
			lastFail[server] = line
		}
		if rest, ok := strings.CutPrefix(line, "Server serve/"); ok && strings.Contains(line, " is DOWN") {
			server, _, _ = strings.Cut(rest, " ")
			downs = append(downs, server+": "+lastFail[server])
		}
	}
	if len(downs) != replicas {
		t.Errorf("HAProxy took replicas out %d times, want %d:\n%s", len(downs), replicas, strings.Join(downs, "\n"))
	}
	for _, d := range downs {
		if !strings.Contains(d, "Layer7 wrong status, code: 503") {
			t.Errorf("a replica left rotation for another reason than its drain's 503: %s", d)
		}
	}
}

// haproxyLog is HAProxy's log so far.
func (top *topology) haproxyLog(t *testing.T) string {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(top.dir, "logs", "haproxy.log"))
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

// haproxyLogCount counts the lines of HAProxy's log that contain substr.
func (top *topology) haproxyLogCount(t *testing.T, substr string) int {
	t.Helper()
	return strings.Count(top.haproxyLog(t), substr)
}

// TestComposeLBHealthcheck: the compose file's healthcheck of the lb service
// (bash's /dev/tcp, the official haproxy image has no HTTP client) passes
// against a HAProxy with replicas in rotation and fails against a port
// nobody listens on.
func TestComposeLBHealthcheck(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the stack")
	}
	raw, err := os.ReadFile(filepath.Join(servetest.ModuleRoot(), "docker-compose.yml"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?s)\n  lb:\n.*?test: \["CMD", "bash", "-c", "((?:[^"\\]|\\.)*)"\]`).FindSubmatch(raw)
	if m == nil {
		t.Fatal("no bash healthcheck on the lb service in docker-compose.yml")
	}
	script, err := strconv.Unquote(`"` + string(m[1]) + `"`)
	if err != nil {
		t.Fatal(err)
	}
	top := startStack(t)
	port := top.lb[strings.LastIndex(top.lb, ":")+1:]
	run := func(port string) error {
		return exec.Command("bash", "-c", strings.ReplaceAll(script, "/dev/tcp/127.0.0.1/8000", "/dev/tcp/127.0.0.1/"+port)).Run()
	}
	if err := run(port); err != nil {
		t.Errorf("the healthcheck fails against a healthy HAProxy: %v (%s)", err, script)
	}
	if err := run(strconv.Itoa(freeport.Ports(t, 1))); err == nil {
		t.Errorf("the healthcheck passes with nothing listening")
	}
}
