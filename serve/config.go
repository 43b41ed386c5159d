package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"mlservice/serve/auth"
	"mlservice/serve/record"
)

// config is the server's configuration: environment variables, each mirrored
// by a flag that wins over it. See the README's configuration table.
type config struct {
	Addr             string
	Model            string   // the loan model: /v1/predict's, the first of Models
	Models           []string // every served model (/v2/models/{name}), Model first
	TrackingURI      string
	TrackingUsername string
	TrackingPassword string
	TrackingToken    string
	// The MLflow credential /admin writes with (aliases, tags); the sync
	// reads with the ones above, which may be read-only.
	TrackingWriteUsername string
	TrackingWritePassword string
	AllowEmbeddedFallback bool
	LoadTimeout           time.Duration
	TokensFile            string
	TrustedProxies        []netip.Prefix
	PollInterval          time.Duration
	AdminToken            string
	WebhookSecret         string
	CacheDir              string
	ArtifactsDir          string
	ORTLibrary            string
	InferThreads          int
	ShutdownTimeout       time.Duration
	ShutdownDrain         time.Duration
	LogLevel              string
	BatchConcurrency      int
	BatchQueue            int
	// MemoryLimit is the Go heap's soft limit in bytes (0: leave it to GOMEMLIMIT).
	MemoryLimit int64
	// The decision record (serve/record): SQLite under DataDir, or
	// PostgreSQL at DecisionsURL; "off" only for benchmarks.
	DataDir       string
	DecisionsURL  string
	DecisionsSync string
	Retention     record.Retention
	// AllowWithoutReasons lets a version that cannot give reasons be
	// champion or challenger (tests on the legacy versions only).
	AllowWithoutReasons bool
	// DriftWindow is how far back model_feature_psi looks (0: no drift monitoring).
	DriftWindow time.Duration
}

// setting is one configuration entry: its variable, flag, default and meaning.
type setting struct {
	env, flag, def, usage string
	parse                 func(string) error
}

// secret reports whether a setting's value must never be printed: not in
// -h, not in an error.
func (s setting) secret() bool {
	switch s.env {
	case "MLFLOW_TRACKING_PASSWORD", "MLFLOW_TRACKING_TOKEN", "SERVE_MLFLOW_WRITE_PASSWORD", "SERVE_ADMIN_TOKEN", "SERVE_WEBHOOK_SECRET":
		return true
	}
	return false
}

// shown is how a setting's value may appear in an error message: secrets
// by their length only, a URL without its user:password.
func (s setting) shown(v string) string {
	switch {
	case s.secret():
		return fmt.Sprintf("(%d characters, not shown)", len(v))
	case s.env == "MLFLOW_TRACKING_URI", s.env == "SERVE_DECISIONS_URL":
		return strconv.Quote(redactURL(v))
	}
	return strconv.Quote(v)
}

// redactURL removes the credentials from a URL, even one that does not parse.
func redactURL(v string) string {
	if u, err := url.Parse(v); err == nil && u.User != nil {
		u.User = url.User("xxxxx")
		return u.String()
	}
	if at := strings.LastIndex(v, "@"); at >= 0 {
		start := 0
		if i := strings.Index(v, "://"); i >= 0 && i < at {
			start = i + 3
		}
		return v[:start] + "xxxxx" + v[at:]
	}
	return v
}

// parseBytes reads a size such as 512MiB, 2GiB or 1073741824.
func parseBytes(v string) (int64, error) {
	units := []struct {
		suffix string
		mult   int64
	}{{"KiB", 1 << 10}, {"MiB", 1 << 20}, {"GiB", 1 << 30}, {"B", 1}}
	mult := int64(1)
	for _, u := range units {
		if n, ok := strings.CutSuffix(v, u.suffix); ok {
			v, mult = n, u.mult
			break
		}
	}
	n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
	if err != nil || n < 0 {
		return 0, errors.New("not a size (write e.g. 768MiB or 2GiB)")
	}
	return n * mult, nil
}

func loadConfig(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	var c config
	cacheDefault := ""
	if dir, err := os.UserCacheDir(); err == nil {
		cacheDefault = filepath.Join(dir, "mlservice")
	}
	dataDefault := "" // the decision record is data, not cache: $XDG_DATA_HOME or ~/.local/share
	if dir := getenv("XDG_DATA_HOME"); dir != "" {
		dataDefault = filepath.Join(dir, "mlservice")
	} else if home, err := os.UserHomeDir(); err == nil {
		dataDefault = filepath.Join(home, ".local", "share", "mlservice")
	}
	str := func(dst *string) func(string) error { return func(v string) error { *dst = v; return nil } }
	whole := func(dst *int, min, max int) func(string) error {
		return func(v string) error {
			n, err := strconv.Atoi(v)
			if err != nil || n < min || n > max {
				return fmt.Errorf("must be a whole number from %d to %d", min, max)
			}
			*dst = n
			return nil
		}
	}
	memoryDefault := "1GiB"
	if getenv("GOMEMLIMIT") != "" {
		memoryDefault = "" // the runtime already has a limit
	}
	duration := func(dst *time.Duration, min time.Duration) func(string) error {
		return func(v string) error {
			d, err := time.ParseDuration(v)
			if err != nil {
				return fmt.Errorf("not a duration (write e.g. 10s or 500ms)")
			}
			if d < min {
				return fmt.Errorf("must be at least %s", min)
			}
			*dst = d
			return nil
		}
	}
	settings := []setting{
		{"SERVE_ADDR", "addr", ":8000", "listen address", str(&c.Addr)},
		{"SERVE_MODEL", "model", "loan-approval", "registered model name, or a comma-separated list served together (the first is /v1's)", func(v string) error {
			models, err := modelList(v)
			if err != nil {
				return err
			}
			c.Model, c.Models = models[0], models
			return nil
		}},
		{"MLFLOW_TRACKING_URI", "mlflow", "", "MLflow server URL; unset serves the local registry over artifacts/", func(v string) error {
			if v == "" {
				return nil
			}
			u, err := url.Parse(v)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				return errors.New("must be an http(s) URL such as http://127.0.0.1:5000")
			}
			c.TrackingURI = strings.TrimRight(v, "/")
			return nil
		}},
		{"MLFLOW_TRACKING_USERNAME", "mlflow-username", "", "MLflow basic-auth user", str(&c.TrackingUsername)},
		{"MLFLOW_TRACKING_PASSWORD", "mlflow-password", "", "MLflow basic-auth password", str(&c.TrackingPassword)},
		{"MLFLOW_TRACKING_TOKEN", "mlflow-token", "", "MLflow bearer token", str(&c.TrackingToken)},
		{"SERVE_MLFLOW_WRITE_USERNAME", "mlflow-write-username", "", "MLflow user /admin writes aliases and tags as (EDIT on the model); unset: the sync credentials", str(&c.TrackingWriteUsername)},
		{"SERVE_MLFLOW_WRITE_PASSWORD", "mlflow-write-password", "", "password of SERVE_MLFLOW_WRITE_USERNAME", str(&c.TrackingWritePassword)},
		{"SERVE_ALLOW_EMBEDDED_FALLBACK", "allow-embedded-fallback", "false", "in MLflow mode, serve the artifacts embedded in the binary when MLflow is unreachable and no version it approved is cached", func(v string) error {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return errors.New("must be true or false")
			}
			c.AllowEmbeddedFallback = b
			return nil
		}},
		{"SERVE_LOAD_TIMEOUT", "load-timeout", "5m", "how long loading one model version (download included) may take", duration(&c.LoadTimeout, time.Second)},
		{"SERVE_TOKENS_FILE", "tokens-file", "", "per-person bearer tokens (YAML/JSON list of name, sha256, roles admin|audit)", func(v string) error {
			if v != "" {
				if _, err := os.Stat(v); err != nil {
					return errors.New("must be a readable file")
				}
			}
			c.TokensFile = v
			return nil
		}},
		{"SERVE_TRUSTED_PROXIES", "trusted-proxies", "", "addresses/CIDRs of load balancers whose X-Forwarded-For names the client in audit lines", func(v string) error {
			p, err := auth.ParseTrustedProxies(v)
			c.TrustedProxies = p
			return err
		}},
		{"SERVE_POLL_INTERVAL", "poll-interval", "10s", "registry reconciliation period", duration(&c.PollInterval, 100*time.Millisecond)},
		{"SERVE_ADMIN_TOKEN", "admin-token", "", "bearer token for /admin; unset disables /admin", func(v string) error {
			if v != "" && len(v) < 16 {
				return errors.New("must be at least 16 characters")
			}
			c.AdminToken = v
			return nil
		}},
		{"SERVE_WEBHOOK_SECRET", "webhook-secret", "", "HMAC secret for MLflow webhooks; unset disables /hooks/mlflow", str(&c.WebhookSecret)},
		{"SERVE_CACHE_DIR", "cache-dir", cacheDefault, "verified artifact cache and local state", func(v string) error {
			if v == "" {
				return errors.New("must not be empty (no user cache directory to default to)")
			}
			c.CacheDir = v
			return nil
		}},
		{"SERVE_ARTIFACTS_DIR", "artifacts-dir", "", "serve the local registry from this directory instead of the embedded artifacts/", func(v string) error {
			if v != "" {
				if st, err := os.Stat(v); err != nil || !st.IsDir() {
					return errors.New("must be an existing directory")
				}
			}
			c.ArtifactsDir = v
			return nil
		}},
		{"ONNXRUNTIME_SHARED_LIBRARY_PATH", "onnxruntime", "", "path to libonnxruntime.so", str(&c.ORTLibrary)},
		{"SERVE_INFERENCE_THREADS", "inference-threads", "1", "ONNX Runtime threads per model run", func(v string) error {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 64 {
				return errors.New("must be a whole number from 1 to 64")
			}
			c.InferThreads = n
			return nil
		}},
		{"SERVE_DRIFT_WINDOW", "drift-window", "1h", "how far back the input and score distributions are compared with the training data (model_feature_psi); 0 turns drift monitoring off", duration(&c.DriftWindow, 0)},
		{"SERVE_SHUTDOWN_TIMEOUT", "shutdown-timeout", "20s", "how long in-flight requests get to finish on SIGTERM", duration(&c.ShutdownTimeout, 0)},
		{"SERVE_SHUTDOWN_DRAIN", "shutdown-drain", "1s", "on SIGTERM, how long to keep accepting while /ready says 503, before closing the listener", duration(&c.ShutdownDrain, 0)},
		{"SERVE_LOG_LEVEL", "log-level", "info", "debug, info, warn or error", func(v string) error {
			switch v {
			case "debug", "info", "warn", "error":
				c.LogLevel = v
				return nil
			}
			return errors.New("must be debug, info, warn or error")
		}},
		{"SERVE_BATCH_CONCURRENCY", "batch-concurrency", "2", "batches decided at once; more wait briefly, then get 503", whole(&c.BatchConcurrency, 1, 64)},
		{"SERVE_BATCH_QUEUE", "batch-queue", "16", "batches that may wait for a slot (0: none)", whole(&c.BatchQueue, 0, 10000)},
		{"SERVE_DATA_DIR", "data-dir", dataDefault, "directory of the decision record's SQLite file (decisions.db)", func(v string) error {
			if v == "" {
				return errors.New("must not be empty (no home directory to default to)")
			}
			c.DataDir = v
			return nil
		}},
		{"SERVE_DECISIONS_URL", "decisions-url", "", "postgres://... keeps the decision record in PostgreSQL (several replicas); unset: SQLite in SERVE_DATA_DIR; off: no record (benchmarks only)", func(v string) error {
			if v != "" && v != "off" && !strings.HasPrefix(v, "postgres://") && !strings.HasPrefix(v, "postgresql://") {
				return errors.New("must be a postgres:// URL, or off")
			}
			c.DecisionsURL = v
			return nil
		}},
		{"SERVE_ALLOW_VERSIONS_WITHOUT_REASONS", "allow-versions-without-reasons", "false", "let a version without a reasons table be champion or challenger (tests on the legacy versions only; by default /admin answers 409 and a registry alias naming one is refused as a failed load)", func(v string) error {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return errors.New("must be true or false")
			}
			c.AllowWithoutReasons = b
			return nil
		}},
		{"SERVE_DECISIONS_SYNC", "decisions-sync", "full", "SQLite record: full fsyncs every commit (survives power loss); normal only at checkpoints (survives a process crash, not an OS crash)", func(v string) error {
			if v != record.SyncFull && v != record.SyncNormal {
				return errors.New("must be full or normal")
			}
			c.DecisionsSync = v
			return nil
		}},
		{"SERVE_DECISIONS_RETENTION", "decisions-retention", "25mo", "how long decisions are kept (25mo, 2y, 800d; at least 6mo)", func(v string) error {
			r, err := record.ParseRetention(v)
			c.Retention = r
			return err
		}},
		{"SERVE_MEMORY_LIMIT", "memory-limit", memoryDefault, "soft limit of the Go heap (e.g. 768MiB; 0 or unset with GOMEMLIMIT: the runtime's)", func(v string) error {
			if v == "" {
				return nil
			}
			n, err := parseBytes(v)
			c.MemoryLimit = n
			return err
		}},
	}
	// A flag's default is the built-in default, never the environment's
	// value: -h and a mistyped flag print the defaults, and secrets must not
	// appear there. The environment is read after the flags.
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	values := make([]*string, len(settings))
	for i, s := range settings {
		values[i] = fs.String(s.flag, s.def, s.usage+" (env "+s.env+")")
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	for i, s := range settings {
		v := *values[i]
		if env := getenv(s.env); env != "" && !set[s.flag] {
			v = env
		}
		if err := s.parse(v); err != nil {
			return c, fmt.Errorf("%s=%s: %w", s.env, s.shown(v), err)
		}
	}
	return c, nil
}

// modelList parses SERVE_MODEL: one registered model name or several,
// comma-separated, each once.
func modelList(v string) ([]string, error) {
	if strings.TrimSpace(v) == "" {
		return nil, errors.New("must not be empty")
	}
	var models []string
	seen := map[string]bool{}
	for _, name := range strings.Split(v, ",") {
		name = strings.TrimSpace(name)
		switch {
		case name == "":
			return nil, errors.New("has an empty name: write one model or a comma-separated list, e.g. loan-approval,credit-line")
		case seen[name]:
			return nil, fmt.Errorf("names %q twice", name)
		case strings.ContainsAny(name, "/?#%") || len(name) > 256:
			return nil, fmt.Errorf("%q is not a model name this server can route (no / ? # %%, at most 256 characters)", name)
		}
		seen[name] = true
		models = append(models, name)
	}
	return models, nil
}
