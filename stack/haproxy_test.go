package stack

import (
	"bytes"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"mlservice/internal/freeport"
	"mlservice/internal/servetest"
)

// haproxyConfigs are stack/haproxy.cfg as compose mounts it and the copy
// `stack.sh up` writes for three local replicas.
func haproxyConfigs(t *testing.T) map[string]string {
	t.Helper()
	root := servetest.ModuleRoot()
	compose, err := os.ReadFile(filepath.Join(root, "stack", "haproxy.cfg"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("bash", filepath.Join(root, "stack", "stack.sh"), "haproxy-config")
	cmd.Env = append(os.Environ(), "STACK_HOST=127.0.0.1", "STACK_LB_PORT=18000", "STACK_LB_STATS_PORT=18404",
		"STACK_SERVE_PORT=18001", "STACK_REPLICAS=3")
	local, err := cmd.Output()
	if err != nil {
		t.Fatalf("stack.sh haproxy-config: %v", err)
	}
	return map[string]string{"compose": string(compose), "local": string(local)}
}

// TestHAProxyConfig: both configurations are valid for Debian's haproxy
// (`haproxy -c`) and have the settings the drills depend on.
func TestHAProxyConfig(t *testing.T) {
	bin, err := exec.LookPath("haproxy")
	if err != nil {
		t.Fatal("no haproxy: run `make stack-test-deps` (make test does)")
	}
	for name, cfg := range haproxyConfigs(t) {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "haproxy.cfg")
			if err := os.WriteFile(path, []byte(cfg), 0o644); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command(bin, "-c", "-f", path).CombinedOutput(); err != nil {
				t.Fatalf("haproxy -c: %v\n%s", err, out)
			} else if strings.Contains(string(out), "WARNING") || strings.Contains(string(out), "ALERT") {
				t.Errorf("haproxy -c warns:\n%s", out)
			}
			for _, want := range []string{
				`option httpchk`,
				`http-check send meth GET uri /ready`,
				`http-check expect status 200`,
				`retry-on conn-failure`, // connection failures only: nothing a replica started is sent twice
				`option redispatch`,     // and the retry goes to another replica
				`option abortonclose`,
				`timeout connect `, `timeout client `, `timeout server `, `timeout http-request `,
				`timeout http-keep-alive `, `timeout queue `, `timeout check `,
			} {
				if !regexp.MustCompile(`(?m)^\s*` + regexp.QuoteMeta(want)).MatchString(cfg) {
					t.Errorf("no %q", want)
				}
			}
			ds := regexp.MustCompile(`(?m)^\s*default-server (.*)$`).FindStringSubmatch(cfg)
			if ds == nil {
				t.Fatal("no default-server line")
			}
			opts := " " + ds[1] + " "
			for _, want := range []string{" check ", " observe layer4 ", " maxconn "} {
				if !strings.Contains(opts, want) {
					t.Errorf("default-server lacks %q: %s", strings.TrimSpace(want), ds[1])
				}
			}
			if strings.Contains(opts, "observe layer7") {
				t.Errorf("default-server observes layer 7: an answer or an aborting client could eject a replica")
			}
			if !regexp.MustCompile(`(?m)^\s*maxconn \d+`).MatchString(cfg) {
				t.Errorf("no connection cap (maxconn)")
			}

			// A draining replica leaves rotation before it stops accepting:
			// fall × inter + timeout check < SERVE_SHUTDOWN_DRAIN.
			inter := duration(t, opts, "inter")
			fall := count(t, opts, "fall")
			check := duration(t, cfg, "timeout check")
			out := time.Duration(fall)*inter + check
			if drain := stackDrain(t); out >= drain {
				t.Errorf("HAProxy takes up to %s to take a draining replica out (fall %d × inter %s + timeout check %s), not less than the drain %s",
					out, fall, inter, check, drain)
			}
		})
	}
	cfgs := haproxyConfigs(t)
	for name, cfg := range cfgs {
		// The exporter is on the stats frontend only, not on the API's.
		if fe := frontend(cfg, "stats"); !regexp.MustCompile(`(?m)^\s*http-request use-service prometheus-exporter if \{ path /metrics \}`).MatchString(fe) ||
			!regexp.MustCompile(`(?m)^\s*bind \S*:\d+$`).MatchString(fe) {
			t.Errorf("%s: no stats frontend with a bind and the exporter on /metrics:\n%s", name, fe)
		}
		if strings.Contains(frontend(cfg, "api"), "prometheus-exporter") {
			t.Errorf("%s: the API's frontend serves HAProxy's exporter", name)
		}
	}
	if !strings.Contains(frontend(cfgs["local"], "stats"), "bind 127.0.0.1:18404") {
		t.Errorf("the local configuration does not bind the exporter to STACK_LB_STATS_PORT:\n%s", frontend(cfgs["local"], "stats"))
	}
	if got := strings.Count(cfgs["local"], "\n    server serve-"); got != 3 {
		t.Errorf("the local configuration has %d server lines, want 3:\n%s", got, cfgs["local"])
	}
	if strings.Contains(cfgs["local"], "server-template") || !strings.Contains(cfgs["local"], "bind 127.0.0.1:18000") {
		t.Errorf("the local configuration keeps compose's servers or bind:\n%s", cfgs["local"])
	}
}

// frontend is the text of one frontend section of an HAProxy configuration.
func frontend(cfg, name string) string {
	m := regexp.MustCompile(`(?ms)^frontend ` + regexp.QuoteMeta(name) + `\n(.*?)(?:^\S|\z)`).FindStringSubmatch(cfg)
	if m == nil {
		return ""
	}
	return m[1]
}

// TestHAProxyExporter runs Debian's haproxy with the configuration `make
// stack` writes, in front of one stand-in replica: the stats port answers
// Prometheus' scrape with HAProxy's metrics (the replica in rotation), and
// the API port does not serve them.
func TestHAProxyExporter(t *testing.T) {
	bin, err := exec.LookPath("haproxy")
	if err != nil {
		t.Fatal("no haproxy: run `make stack-test-deps` (make test does)")
	}
	replica := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/ready" {
			w.Write([]byte(`{"ready":true}`))
			return
		}
		http.NotFound(w, r)
	}))
	defer replica.Close()
	replicaPort := replica.Listener.Addr().(*net.TCPAddr).Port
	ports := freeport.Ports(t, 2)
	lb, stats := "http://127.0.0.1:"+strconv.Itoa(ports), "http://127.0.0.1:"+strconv.Itoa(ports+1)
	cmd := exec.Command("bash", filepath.Join(servetest.ModuleRoot(), "stack", "stack.sh"), "haproxy-config")
	cmd.Env = append(os.Environ(), "STACK_HOST=127.0.0.1", "STACK_LB_PORT="+strconv.Itoa(ports),
		"STACK_LB_STATS_PORT="+strconv.Itoa(ports+1), "STACK_SERVE_PORT="+strconv.Itoa(replicaPort), "STACK_REPLICAS=1")
	cfg, err := cmd.Output()
	if err != nil {
		t.Fatalf("stack.sh haproxy-config: %v", err)
	}
	path := filepath.Join(t.TempDir(), "haproxy.cfg")
	if err := os.WriteFile(path, cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	proc := exec.Command(bin, "-db", "-f", path)
	proc.Stdout, proc.Stderr = &log, &log
	if err := proc.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		proc.Process.Kill()
		proc.Wait()
		if t.Failed() {
			t.Logf("haproxy:\n%s", log.String())
		}
	}()

	get := func(url string) (int, string) {
		resp, err := http.Get(url)
		if err != nil {
			return 0, err.Error()
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(raw)
	}
	// Until the replica is in rotation (rise 2 × inter 500ms).
	want := `haproxy_backend_active_servers{proxy="serve"} 1`
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, body := get(stats + "/metrics")
		if code == 200 && strings.Contains(body, want) {
			if !strings.Contains(body, `haproxy_server_status{proxy="serve",server="serve-1",state="UP"} 1`) {
				t.Errorf("the exporter does not report serve-1 as UP")
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s/metrics: %d, no %s after 10s:\n%.2000s", stats, code, want, body)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if code, body := get(lb + "/-/metrics"); strings.Contains(body, "haproxy_") {
		t.Errorf("the API port serves HAProxy's metrics: %d", code)
	}
	if code, body := get(lb + "/-/lb"); code != 200 || body != `{"up":1}` {
		t.Errorf("/-/lb: %d %s", code, body)
	}
	if code, _ := get(stats + "/"); code != 404 {
		t.Errorf("the stats port answers / with %d, want 404", code)
	}
}

// stackDrain is the SERVE_SHUTDOWN_DRAIN stack.sh gives its replicas.
func stackDrain(t *testing.T) time.Duration {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(servetest.ModuleRoot(), "stack", "stack.sh"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`SERVE_SHUTDOWN_DRAIN="\$\{SERVE_SHUTDOWN_DRAIN:-(\w+)\}"`).FindSubmatch(raw)
	if m == nil {
		t.Fatal("stack.sh sets no default SERVE_SHUTDOWN_DRAIN")
	}
	d, err := time.ParseDuration(string(m[1]))
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func duration(t *testing.T, text, key string) time.Duration {
	t.Helper()
	m := regexp.MustCompile(`(?:^|\s)` + regexp.QuoteMeta(key) + ` (\d+)(ms|s)\b`).FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("no %q with a unit", key)
	}
	d, _ := time.ParseDuration(m[1] + m[2])
	return d
}

func count(t *testing.T, text, key string) int {
	t.Helper()
	m := regexp.MustCompile(`(?:^|\s)` + key + ` (\d+)\b`).FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("no %q", key)
	}
	n := 0
	for _, c := range m[1] {
		n = n*10 + int(c-'0')
	}
	return n
}

// TestStackStopGrace: `make stack-down` and a rolling restart give a
// replica as long as the server itself takes on SIGTERM (the drain, then
// in-flight requests) before they SIGKILL it, as compose's
// stop_grace_period and Kubernetes' terminationGracePeriodSeconds do.
func TestStackStopGrace(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(servetest.ModuleRoot(), "stack", "stack.sh"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`STACK_SERVE_STOP_GRACE="\$\{STACK_SERVE_STOP_GRACE:-(\d+)\}"`).FindSubmatch(raw)
	if m == nil {
		t.Fatal("stack.sh has no STACK_SERVE_STOP_GRACE: it SIGKILLs a replica after stop's 15 s, before its drain and in-flight requests are done")
	}
	grace, _ := time.ParseDuration(string(m[1]) + "s")
	m = regexp.MustCompile(`SERVE_SHUTDOWN_TIMEOUT="\$\{SERVE_SHUTDOWN_TIMEOUT:-(\w+)\}"`).FindSubmatch(raw)
	if m == nil {
		t.Fatal("stack.sh sets no default SERVE_SHUTDOWN_TIMEOUT")
	}
	timeout, err := time.ParseDuration(string(m[1]))
	if err != nil {
		t.Fatal(err)
	}
	if drain := stackDrain(t); grace < drain+timeout {
		t.Errorf("stack.sh SIGKILLs a replica after %s, before its drain %s and in-flight %s are over", grace, drain, timeout)
	}
}
