package deploy

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/compose-spec/compose-go/v2/cli"
	"github.com/compose-spec/compose-go/v2/types"
	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"gopkg.in/yaml.v3"
)

// debianHAProxy is the version of Debian bookworm's haproxy package, which
// `make stack` installs; compose pins the official image at the same one.
const debianHAProxy = "2.6.12"

// root is the repository root; `go test` runs in deploy/.
func root(t *testing.T) string {
	t.Helper()
	dir, err := filepath.Abs("..")
	if err != nil {
		t.Fatal(err)
	}
	return dir
}

// loadCompose loads docker-compose.yml with the compose-spec loader (schema
// validation, interpolation, extends/anchors, paths resolved against the
// repository root) and only the given variables, so the host's environment
// cannot change the result. LOAN_DATA, which lies outside the repository, is
// pointed at a temporary file unless env sets it.
func loadCompose(t *testing.T, env map[string]string) *types.Project {
	t.Helper()
	for k, v := range composeSecrets {
		if _, ok := env[k]; !ok {
			env = mapsWith(env, k, v)
		}
	}
	p, err := tryLoadCompose(t, env)
	if err != nil {
		t.Fatalf("docker-compose.yml does not load: %v", err)
	}
	return p
}

// tryLoadCompose is loadCompose without the secrets' test values.
func tryLoadCompose(t *testing.T, env map[string]string) (*types.Project, error) {
	t.Helper()
	r := root(t)
	if _, ok := env["LOAN_DATA"]; !ok {
		data := filepath.Join(t.TempDir(), "loan_approval.csv")
		if err := os.WriteFile(data, []byte("income\n1\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		env = mapsWith(env, "LOAN_DATA", data)
	}
	var list []string
	for k, v := range env {
		list = append(list, k+"="+v)
	}
	opts, err := cli.NewProjectOptions([]string{filepath.Join(r, "docker-compose.yml")},
		cli.WithWorkingDirectory(r), cli.WithEnv(list), cli.WithResolvedPaths(true), cli.WithInterpolation(true))
	if err != nil {
		t.Fatal(err)
	}
	return opts.LoadProject(context.Background())
}

// composeSecrets are the variables docker-compose.yml requires (no default:
// `make compose-env` writes fresh ones into .env), with values for the tests.
var composeSecrets = map[string]string{
	"MLFLOW_ADMIN_PASSWORD":   "test-admin-password-0123",
	"MLFLOW_READER_PASSWORD":  "test-reader-password-0123",
	"MLFLOW_WRITER_PASSWORD":  "test-writer-password-0123",
	"MLFLOW_FLASK_SECRET_KEY": "test-flask-secret-key-0123",
	"POSTGRES_PASSWORD":       "0123456789abcdef0123",
}

func mapsWith(m map[string]string, k, v string) map[string]string {
	out := map[string]string{k: v}
	for kk, vv := range m {
		out[kk] = vv
	}
	return out
}

func TestComposeServices(t *testing.T) {
	p := loadCompose(t, nil)
	if p.Name != "mlservice" {
		t.Errorf("project name %q", p.Name)
	}
	want := []string{"grafana", "lb", "legacy", "mlflow", "postgres", "prometheus", "serve", "trainer"}
	if got := p.ServiceNames(); !slices.Equal(sorted(got), want) {
		t.Fatalf("services %v, want %v", sorted(got), want)
	}

	// depends_on: service -> dependency -> condition.
	deps := map[string]map[string]string{
		"trainer": {"mlflow": types.ServiceConditionHealthy},
		"serve": {"mlflow": types.ServiceConditionHealthy, "trainer": types.ServiceConditionCompletedSuccessfully,
			"postgres": types.ServiceConditionHealthy},
		"postgres":   {},
		"lb":         {"serve": types.ServiceConditionHealthy},
		"prometheus": {"serve": types.ServiceConditionStarted},
		"grafana":    {"prometheus": types.ServiceConditionHealthy},
		"legacy":     {"lb": types.ServiceConditionStarted},
		"mlflow":     {},
	}
	for name, want := range deps {
		got := map[string]string{}
		for dep, d := range p.Services[name].DependsOn {
			got[dep] = d.Condition
		}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("%s depends_on %v, want %v", name, got, want)
		}
	}

	for name, s := range p.Services {
		t.Run(name, func(t *testing.T) {
			// Long-running services restart; the trainer runs once.
			wantRestart := types.RestartPolicyUnlessStopped
			if name == "trainer" {
				wantRestart = types.RestartPolicyNo
			} else if s.HealthCheck == nil || s.HealthCheck.Disable || len(s.HealthCheck.Test) == 0 {
				t.Errorf("no healthcheck")
			}
			if s.Restart != wantRestart {
				t.Errorf("restart %q, want %q", s.Restart, wantRestart)
			}
			checkImageRef(t, s.Image)
			if s.Build != nil {
				df := filepath.Join(s.Build.Context, s.Build.Dockerfile)
				if s.Build.Context != root(t) {
					t.Errorf("build context %s, want the repository root", s.Build.Context)
				}
				if _, err := os.Stat(df); err != nil {
					t.Errorf("dockerfile: %v", err)
				}
			}
			for _, port := range s.Ports {
				if port.HostIP != "127.0.0.1" {
					t.Errorf("port %d published on %q, want 127.0.0.1 only", port.Target, port.HostIP)
				}
			}
			for _, v := range s.Volumes {
				switch v.Type {
				case types.VolumeTypeBind:
					if _, err := os.Stat(v.Source); err != nil {
						t.Errorf("bind mount %s -> %s: %v", v.Source, v.Target, err)
					}
					if !v.ReadOnly {
						t.Errorf("bind mount %s is writable; mount repository files read-only", v.Source)
					}
				case types.VolumeTypeVolume:
					if v.Source == "" && name == "serve" {
						break // anonymous: one per replica (the cache)
					}
					if _, ok := p.Volumes[v.Source]; !ok {
						t.Errorf("named volume %q is not declared", v.Source)
					}
				default:
					t.Errorf("volume type %q", v.Type)
				}
			}
		})
	}

	serve := p.Services["serve"]
	if serve.ContainerName != "" || len(serve.Ports) != 0 {
		t.Errorf("serve must be scalable: container_name %q, ports %v", serve.ContainerName, serve.Ports)
	}
	if got := env(serve, "MLFLOW_TRACKING_URI"); got != "http://mlflow:5000" {
		t.Errorf("serve MLFLOW_TRACKING_URI %q", got)
	}
	if got := env(p.Services["trainer"], "MLFLOW_TRACKING_URI"); got != "http://mlflow:5000" {
		t.Errorf("trainer MLFLOW_TRACKING_URI %q", got)
	}
	// The load balancer is HAProxy's official image at Debian's version,
	// configured by stack/haproxy.cfg (which stack/haproxy_test.go checks),
	// following the replicas through Docker's DNS.
	if got := p.Services["lb"].Image; got != "haproxy:"+debianHAProxy {
		t.Errorf("lb image %q, want haproxy:%s (Debian bookworm's, as make stack runs)", got, debianHAProxy)
	}
	cfg, err := os.ReadFile(filepath.Join(root(t), "stack", "haproxy.cfg"))
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`(?m)^\s*server-template serve- \d+ serve:8000 resolvers docker\b`).Match(cfg) ||
		!regexp.MustCompile(`(?m)^\s*nameserver \S+ 127\.0\.0\.11:53$`).Match(cfg) {
		t.Errorf("stack/haproxy.cfg does not follow the serve replicas through Docker's DNS (server-template serve:8000, resolvers docker at 127.0.0.11)")
	}
	if got := env(serve, "SERVE_SHUTDOWN_DRAIN"); got != "3s" {
		t.Errorf("serve SERVE_SHUTDOWN_DRAIN %q, want 3s (longer than HAProxy's fall × inter + timeout check)", got)
	}
	if serve.StopGracePeriod == nil || time.Duration(*serve.StopGracePeriod) < 23*time.Second {
		t.Errorf("serve stop_grace_period %v: must cover the drain (3s) and SERVE_SHUTDOWN_TIMEOUT (20s)", serve.StopGracePeriod)
	}
	cache := false
	for _, v := range serve.Volumes {
		cache = cache || (v.Type == types.VolumeTypeVolume && v.Source == "" && v.Target == "/var/lib/mlservice/cache")
	}
	if !cache {
		t.Errorf("serve has no anonymous (per-replica) volume on its cache /var/lib/mlservice/cache")
	}
	if cmd := strings.Join(p.Services["legacy"].Command, " "); !strings.Contains(cmd, "-api http://lb:8000") {
		t.Errorf("legacy does not call the load balancer: %q", cmd)
	}
	mounts := map[string]string{}
	for name, s := range p.Services {
		for _, v := range s.Volumes {
			mounts[name+":"+v.Target] = v.Source
		}
	}
	r := root(t)
	for key, want := range map[string]string{
		"prometheus:/etc/prometheus":            filepath.Join(r, "monitoring/prometheus"),
		"grafana:/etc/grafana/provisioning":     filepath.Join(r, "monitoring/grafana/provisioning"),
		"grafana:/var/lib/grafana/dashboards":   filepath.Join(r, "monitoring/grafana/dashboards"),
		"trainer:/data/loan_approval.csv":       "", // from LOAN_DATA, checked below
		"mlflow:/mlflow":                        "mlflow-data",
		"legacy:/var/lib/legacy/queue":          "legacy-queue",
		"prometheus:/prometheus":                "prometheus-data",
		"postgres:/var/lib/postgresql/data":     "postgres-data",
		"lb:/usr/local/etc/haproxy/haproxy.cfg": filepath.Join(r, "stack/haproxy.cfg"),
	} {
		got, ok := mounts[key]
		if !ok || (want != "" && got != want) {
			t.Errorf("mount %s = %q, want %q", key, got, want)
		}
	}
}

func TestComposeSettings(t *testing.T) {
	data := filepath.Join(t.TempDir(), "elsewhere.csv")
	if err := os.WriteFile(data, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	p := loadCompose(t, map[string]string{"GRAFANA_ADMIN_PASSWORD": "s3cret", "LOAN_DATA": data,
		"SERVE_ADMIN_TOKEN": "0123456789abcdef", "SERVE_POLL_INTERVAL": "1s", "SERVE_PORT": "18000"})
	if got := env(p.Services["grafana"], "GF_SECURITY_ADMIN_PASSWORD"); got != "s3cret" {
		t.Errorf("grafana password %q", got)
	}
	if got := p.Services["trainer"].Volumes[0].Source; got != data {
		t.Errorf("data mount %q, want LOAN_DATA %q", got, data)
	}
	serve := p.Services["serve"]
	if env(serve, "SERVE_ADMIN_TOKEN") != "0123456789abcdef" || env(serve, "SERVE_POLL_INTERVAL") != "1s" {
		t.Errorf("serve environment %v", serve.Environment)
	}
	if got := p.Services["lb"].Ports[0].Published; got != "18000" {
		t.Errorf("lb published on %q", got)
	}

	// Defaults: a local-only Grafana password, /admin off.
	p = loadCompose(t, nil)
	if got := env(p.Services["grafana"], "GF_SECURITY_ADMIN_PASSWORD"); got != "mlservice-local-only" {
		t.Errorf("default grafana password %q (docker/README.md names it)", got)
	}
	if got := env(p.Services["serve"], "SERVE_ADMIN_TOKEN"); got != "" {
		t.Errorf("default admin token %q", got)
	}
}

// TestComposeMLflowAuth: MLflow runs its basic-auth app; the trainer is its
// admin, the servers read as a read-only user and write (/admin) as another,
// and every replica records its decisions in the one PostgreSQL. None of
// these secrets has a default: without them compose refuses to start.
func TestComposeMLflowAuth(t *testing.T) {
	p := loadCompose(t, nil)
	mlflow, trainer, serve := p.Services["mlflow"], p.Services["trainer"], p.Services["serve"]
	if got := env(mlflow, "MLFLOW_AUTH_ADMIN_PASSWORD"); got != composeSecrets["MLFLOW_ADMIN_PASSWORD"] {
		t.Errorf("mlflow admin password %q", got)
	}
	if env(mlflow, "MLFLOW_FLASK_SERVER_SECRET_KEY") == "" {
		t.Errorf("mlflow has no MLFLOW_FLASK_SERVER_SECRET_KEY (the auth app refuses to start)")
	}
	if env(trainer, "MLFLOW_TRACKING_USERNAME") != "admin" || env(trainer, "MLFLOW_TRACKING_PASSWORD") != composeSecrets["MLFLOW_ADMIN_PASSWORD"] {
		t.Errorf("the trainer does not run as MLflow's admin")
	}
	if cmd := strings.Join(trainer.Command, " "); !strings.Contains(cmd, "--reader mlservice-reader") || !strings.Contains(cmd, "--writer mlservice-admin-api") {
		t.Errorf("the trainer does not set up the servers' accounts: %q", cmd)
	}
	for k, want := range map[string]string{
		"MLFLOW_TRACKING_USERNAME":    "mlservice-reader",
		"MLFLOW_TRACKING_PASSWORD":    composeSecrets["MLFLOW_READER_PASSWORD"],
		"SERVE_MLFLOW_WRITE_USERNAME": "mlservice-admin-api",
		"SERVE_MLFLOW_WRITE_PASSWORD": composeSecrets["MLFLOW_WRITER_PASSWORD"],
		"SERVE_DECISIONS_URL":         "postgres://mlservice:" + composeSecrets["POSTGRES_PASSWORD"] + "@postgres:5432/decisions?sslmode=disable",
	} {
		if got := env(serve, k); got != want {
			t.Errorf("serve %s = %q, want %q", k, got, want)
		}
	}
	for name, s := range p.Services {
		for k, v := range s.Environment {
			if v != nil && *v == composeSecrets["MLFLOW_ADMIN_PASSWORD"] && name != "mlflow" && name != "trainer" {
				t.Errorf("%s gets MLflow's admin password (%s)", name, k)
			}
		}
	}
	// The replicas believe X-Forwarded-For from HAProxy's fixed address only.
	lbNet := p.Services["lb"].Networks["default"]
	if lbNet == nil || lbNet.Ipv4Address == "" || env(serve, "SERVE_TRUSTED_PROXIES") != lbNet.Ipv4Address {
		t.Errorf("serve SERVE_TRUSTED_PROXIES %q is not HAProxy's fixed address %+v", env(serve, "SERVE_TRUSTED_PROXIES"), lbNet)
	} else if ipam := p.Networks["default"].Ipam.Config; len(ipam) != 1 || !netip.MustParsePrefix(ipam[0].Subnet).Contains(netip.MustParseAddr(lbNet.Ipv4Address)) {
		t.Errorf("HAProxy's address %s is not in the network's subnet %+v", lbNet.Ipv4Address, ipam)
	}
	pg := p.Services["postgres"]
	if env(pg, "POSTGRES_USER") != "mlservice" || env(pg, "POSTGRES_DB") != "decisions" || len(pg.Ports) != 0 {
		t.Errorf("postgres: user %q, database %q, published ports %v", env(pg, "POSTGRES_USER"), env(pg, "POSTGRES_DB"), pg.Ports)
	}
	df, err := os.ReadFile(filepath.Join(root(t), "docker", "mlflow.Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(df), `"--app-name", "basic-auth"`) || !strings.Contains(string(df), "MLFLOW_AUTH_CONFIG_PATH=/etc/mlflow/basic_auth.ini") {
		t.Errorf("docker/mlflow.Dockerfile does not run the basic-auth app with docker/mlflow-basic-auth.ini")
	}

	for secret := range composeSecrets {
		t.Run("without "+secret, func(t *testing.T) {
			env := map[string]string{}
			for k, v := range composeSecrets {
				if k != secret {
					env[k] = v
				}
			}
			env[secret] = ""
			if _, err := tryLoadCompose(t, env); err == nil || !strings.Contains(err.Error(), secret) {
				t.Errorf("compose loads without %s (%v)", secret, err)
			}
		})
	}
}

// TestComposePrometheusFindsReplicas: the Prometheus config that compose
// mounts discovers the scaled serve service by DNS on its container port.
func TestComposePrometheusFindsReplicas(t *testing.T) {
	for _, sc := range composePrometheus(t).ScrapeConfigs {
		for _, d := range sc.DNSSDConfigs {
			if slices.Contains(d.Names, "serve") && d.Type == "A" && d.Port == 8000 {
				return
			}
		}
	}
	t.Fatalf("no dns_sd_configs for the serve service (names [serve], type A, port 8000) in prometheus.yml")
}

// TestComposePrometheusScrapesHAProxy: compose's Prometheus scrapes HAProxy
// on the stats frontend of stack/haproxy.cfg (its port and the exporter's
// path), which the lb service exposes on the project network and publishes
// nowhere.
func TestComposePrometheusScrapesHAProxy(t *testing.T) {
	cfg, err := os.ReadFile(filepath.Join(root(t), "stack", "haproxy.cfg"))
	if err != nil {
		t.Fatal(err)
	}
	stats := regexp.MustCompile(`(?ms)^frontend stats\n(.*?)(?:^\S|\z)`).FindSubmatch(cfg)
	if stats == nil {
		t.Fatal("stack/haproxy.cfg has no frontend stats")
	}
	bind := regexp.MustCompile(`(?m)^\s*bind :(\d+)$`).FindSubmatch(stats[1])
	path := regexp.MustCompile(`(?m)^\s*http-request use-service prometheus-exporter if \{ path (\S+) \}`).FindSubmatch(stats[1])
	if bind == nil || path == nil {
		t.Fatalf("frontend stats has no `bind :PORT` or no exporter:\n%s", stats[1])
	}
	port, exporterPath := string(bind[1]), string(path[1])

	found := false
	for _, sc := range composePrometheus(t).ScrapeConfigs {
		for _, s := range sc.StaticConfigs {
			if slices.Contains(s.Targets, "lb:"+port) {
				found = true
				if sc.MetricsPath != exporterPath {
					t.Errorf("job %s scrapes lb:%s at %q, the exporter is at %q", sc.JobName, port, sc.MetricsPath, exporterPath)
				}
			}
		}
	}
	if !found {
		t.Errorf("prometheus.yml does not scrape HAProxy's exporter (target lb:%s)", port)
	}

	lb := loadCompose(t, nil).Services["lb"]
	if !slices.Contains(lb.Expose, port) {
		t.Errorf("lb does not expose %s (expose %v)", port, lb.Expose)
	}
	for _, p := range lb.Ports {
		if strconv.Itoa(int(p.Target)) == port {
			t.Errorf("lb publishes HAProxy's exporter port %s on the host", port)
		}
	}
}

// prometheusConfig is the part of a Prometheus configuration the tests read.
type prometheusConfig struct {
	ScrapeConfigs []struct {
		JobName      string `yaml:"job_name"`
		MetricsPath  string `yaml:"metrics_path"`
		DNSSDConfigs []struct {
			Names []string `yaml:"names"`
			Type  string   `yaml:"type"`
			Port  int      `yaml:"port"`
		} `yaml:"dns_sd_configs"`
		StaticConfigs []struct {
			Targets []string `yaml:"targets"`
		} `yaml:"static_configs"`
	} `yaml:"scrape_configs"`
}

// composePrometheus is monitoring/prometheus/prometheus.yml, the
// configuration compose mounts.
func composePrometheus(t *testing.T) prometheusConfig {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join(root(t), "monitoring/prometheus/prometheus.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var cfg prometheusConfig
	if err := yaml.Unmarshal(raw, &cfg); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func env(s types.ServiceConfig, k string) string {
	if v := s.Environment[k]; v != nil {
		return *v
	}
	return ""
}

func sorted(s []string) []string { s = slices.Clone(s); slices.Sort(s); return s }

var digestRef = regexp.MustCompile(`@sha256:[0-9a-f]{64}$`)

// checkImageRef fails for an image with no tag or the tag "latest".
func checkImageRef(t *testing.T, ref string) {
	t.Helper()
	if ref == "" {
		t.Errorf("no image name")
		return
	}
	name := digestRef.ReplaceAllString(ref, "")
	tag := ""
	if i := strings.LastIndex(name, ":"); i > strings.LastIndex(name, "/") {
		tag = name[i+1:]
	}
	if tag == "" || tag == "latest" {
		t.Errorf("image %q: pin a tag other than latest", ref)
	}
}

// dockerfile is one parsed docker/*.Dockerfile.
type dockerfile struct {
	path     string
	stages   []instructions.Stage
	warnings []string
}

func parseDockerfiles(t *testing.T) []dockerfile {
	t.Helper()
	paths, err := filepath.Glob(filepath.Join(root(t), "docker", "*.Dockerfile"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no docker/*.Dockerfile (%v)", err)
	}
	var out []dockerfile
	for _, path := range paths {
		f, err := os.Open(path)
		if err != nil {
			t.Fatal(err)
		}
		res, err := parser.Parse(f)
		f.Close()
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		d := dockerfile{path: path}
		for _, w := range res.Warnings {
			d.warnings = append(d.warnings, w.Short)
		}
		lint := linter.New(&linter.Config{Warn: func(rule, desc, url, msg string, _ []parser.Range) {
			d.warnings = append(d.warnings, rule+": "+msg)
		}})
		stages, metaArgs, err := instructions.Parse(res.AST, lint)
		if err != nil {
			t.Fatalf("%s: %v", path, err)
		}
		if len(metaArgs) > 0 {
			t.Errorf("%s: ARG before FROM; write base images out so that they can be checked", path)
		}
		d.stages = stages
		out = append(out, d)
	}
	return out
}

func TestDockerfiles(t *testing.T) {
	wantHealthcheck := map[string]bool{"serve": true, "mlflow": true, "legacy": true, "trainer": false}
	seen := map[string]bool{}
	for _, d := range parseDockerfiles(t) {
		name := strings.TrimSuffix(filepath.Base(d.path), ".Dockerfile")
		seen[name] = true
		t.Run(name, func(t *testing.T) {
			for _, w := range d.warnings {
				t.Errorf("buildkit lint: %s", w)
			}
			stageNames := map[string]bool{}
			for _, s := range d.stages {
				if !stageNames[strings.ToLower(s.BaseName)] && s.BaseName != "scratch" {
					checkImageRef(t, s.BaseName)
				}
				if s.Name != "" {
					stageNames[strings.ToLower(s.Name)] = true
				}
			}
			final := d.stages[len(d.stages)-1]
			user, health := "", false
			for _, c := range final.Commands {
				switch c := c.(type) {
				case *instructions.UserCommand:
					user = c.User
				case *instructions.HealthCheckCommand:
					health = c.Health != nil && len(c.Health.Test) > 0 && c.Health.Test[0] != "NONE"
				}
			}
			if u, _, _ := strings.Cut(user, ":"); u == "" || u == "root" || u == "0" {
				t.Errorf("final stage runs as root (USER %q)", user)
			}
			if want, ok := wantHealthcheck[name]; !ok {
				t.Errorf("unknown image %s: say in wantHealthcheck whether it needs a HEALTHCHECK", name)
			} else if health != want {
				t.Errorf("HEALTHCHECK present = %v, want %v", health, want)
			}
		})
	}
	for name := range wantHealthcheck {
		if !seen[name] {
			t.Errorf("no docker/%s.Dockerfile", name)
		}
	}
}

// TestHadolint runs hadolint (from `make stack-test-deps`, or on PATH) on
// every Dockerfile; it skips when hadolint is not installed.
func TestHadolint(t *testing.T) {
	bin, _ := filepath.Glob(filepath.Join(root(t), ".cache", "tools", "hadolint-*", "hadolint"))
	path := ""
	if len(bin) > 0 {
		path = bin[len(bin)-1]
	} else if p, err := exec.LookPath("hadolint"); err == nil {
		path = p
	} else {
		t.Fatal("hadolint not installed: run `make stack-test-deps` (make test and make deploy-test do)")
	}
	for _, d := range parseDockerfiles(t) {
		out, err := exec.Command(path, "--no-color", d.path).CombinedOutput()
		if err != nil {
			t.Errorf("hadolint %s: %v\n%s", d.path, err, out)
		}
	}
}

// TestComposeRecordConnections: HAProxy follows up to as many replicas as
// its server-template has slots, each opening up to recordConnections
// connections to the one PostgreSQL; its max_connections must hold them
// (the official image's default, 100, holds 8 replicas, not 10).
func TestComposeRecordConnections(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(root(t), "stack", "haproxy.cfg"))
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^\s*server-template \S+ (\d+) `).FindSubmatch(raw)
	if m == nil {
		t.Fatal("stack/haproxy.cfg has no server-template")
	}
	var slots int
	fmt.Sscan(string(m[1]), &slots)
	need := slots * recordConnections(t)
	cmd := strings.Join(loadCompose(t, nil).Services["postgres"].Command, " ")
	c := regexp.MustCompile(`max_connections=(\d+)`).FindStringSubmatch(cmd)
	if c == nil {
		t.Fatalf("postgres runs with the default max_connections (100); %d replicas need %d (command %q)", slots, need, cmd)
	}
	var have int
	fmt.Sscan(c[1], &have)
	if have < need {
		t.Errorf("postgres max_connections=%d; %d replicas need %d", have, slots, need)
	}
}
