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
)

// config is the server's configuration: environment variables, each mirrored
// by a flag that wins over it. See the README's configuration table.
type config struct {
	Addr             string
	Model            string
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
}

// setting is one configuration entry: its variable, flag, default and meaning.
type setting struct {
	env, flag, def, usage string
	parse                 func(string) error
}

func loadConfig(args []string, getenv func(string) string, stderr io.Writer) (config, error) {
	var c config
	cacheDefault := ""
	if dir, err := os.UserCacheDir(); err == nil {
		cacheDefault = filepath.Join(dir, "mlservice")
	}
	str := func(dst *string) func(string) error { return func(v string) error { *dst = v; return nil } }
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
		{"SERVE_MODEL", "model", "loan-approval", "registered model name", func(v string) error {
			if strings.TrimSpace(v) == "" {
				return errors.New("must not be empty")
			}
			c.Model = v
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
	}
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	values := make([]*string, len(settings))
	for i, s := range settings {
		v := s.def
		if env := getenv(s.env); env != "" {
			v = env
		}
		values[i] = fs.String(s.flag, v, s.usage+" (env "+s.env+")")
	}
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected argument %q", fs.Arg(0))
	}
	for i, s := range settings {
		if err := s.parse(*values[i]); err != nil {
			return c, fmt.Errorf("%s=%q: %w", s.env, *values[i], err)
		}
	}
	return c, nil
}
