// Package mlflow is a small client for the REST API of an MLflow 3 tracking
// server: the Model Registry calls the server needs (aliases, tags, versions)
// and downloads of a version's files through the server's proxied artifacts
// (`mlflow server --serve-artifacts`), so the server needs no cloud-storage
// credentials of its own. *Client is a registry.Source.
//
// The official Go client does not exist, and the generated protos would pull
// in far more than these few calls need.
package mlflow

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"mlservice/internal/retry"
	"mlservice/registry"
)

// Config says how to reach an MLflow server. The server's configuration fills
// it from MLflow's own environment variables (MLFLOW_TRACKING_URI, ...); this
// package never reads the environment.
type Config struct {
	// TrackingURI is the server's base URL, e.g. http://mlflow:5000.
	TrackingURI string
	// Username and Password, when either is set, authenticate with HTTP basic
	// auth (MLflow's basic-auth app); otherwise Token, when set, is sent as a
	// bearer token.
	Username, Password string
	Token              string

	// HTTPClient sends the requests; nil means a new http.Client.
	HTTPClient *http.Client
	// Timeout bounds one attempt of one API call (default 30s);
	// DownloadTimeout one attempt of one file download (default 10m).
	Timeout, DownloadTimeout time.Duration
	// Attempts bounds the tries of one call when the server cannot be reached
	// or answers 429 or 5xx (default 4). Other errors are never retried.
	Attempts int
	// MaxFileBytes caps one file of a version (default 1 GiB) and
	// MaxVersionBytes all of them (default 4 GiB), whatever the listing
	// says: a listing may give no size, or a wrong one.
	MaxFileBytes, MaxVersionBytes int64
	// Backoff is the wait before the first retry (default 250ms); it doubles
	// each retry up to MaxBackoff (default 5s), with jitter so that replicas
	// do not retry in step.
	Backoff, MaxBackoff time.Duration
}

// Client talks to one MLflow server. It is safe for concurrent use.
type Client struct {
	cfg  Config
	base string // scheme://host[:port][/path] without credentials or trailing slash
	http *http.Client
}

var (
	_ registry.Source     = (*Client)(nil)
	_ registry.Writer     = (*Client)(nil)
	_ registry.Identifier = (*Client)(nil)
)

// New checks cfg and returns a client; it does not contact the server.
func New(cfg Config) (*Client, error) {
	u, err := url.Parse(cfg.TrackingURI)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("mlflow: tracking URI %q: want http(s)://host[:port]", redact(cfg.TrackingURI))
	}
	// Credentials in the URI work like the variables, but never reach logs.
	if u.User != nil {
		if cfg.Username == "" && cfg.Password == "" {
			cfg.Username = u.User.Username()
			cfg.Password, _ = u.User.Password()
		}
		u.User = nil
	}
	u.RawQuery, u.Fragment = "", ""
	setDefault(&cfg.Timeout, 30*time.Second)
	setDefault(&cfg.DownloadTimeout, 10*time.Minute)
	setDefault(&cfg.Backoff, 250*time.Millisecond)
	setDefault(&cfg.MaxBackoff, 5*time.Second)
	if cfg.Attempts <= 0 {
		cfg.Attempts = 4
	}
	if cfg.MaxFileBytes <= 0 {
		cfg.MaxFileBytes = 1 << 30
	}
	if cfg.MaxVersionBytes <= 0 {
		cfg.MaxVersionBytes = 4 << 30
	}
	hc := cfg.HTTPClient
	if hc == nil {
		hc = &http.Client{}
	}
	return &Client{cfg: cfg, base: strings.TrimRight(u.String(), "/"), http: hc}, nil
}

func setDefault(d *time.Duration, v time.Duration) {
	if *d <= 0 {
		*d = v
	}
}

// redact drops credentials from a URI that may not parse as a URL.
func redact(uri string) string {
	if u, err := url.Parse(uri); err == nil {
		u.User = nil
		return u.String()
	}
	return "(unparsable)"
}

// Key implements registry.Source: the same server always gets the same cache
// directory, and two servers never share one.
func (c *Client) Key() string {
	sum := sha256.Sum256([]byte(c.base))
	return "mlflow-" + hex.EncodeToString(sum[:6])
}

// Kind implements registry.Source.
func (c *Client) Kind() string { return "mlflow" }

// Describe implements registry.Source: the tracking URI without credentials.
func (c *Client) Describe() string { return c.base }

// APIError is an error answer from the server. It wraps registry.ErrNotFound
// when the model, version or alias does not exist, registry.ErrDenied for 401
// and 403 (wrong or read-only credentials), and registry.ErrUnavailable
// for 429 and 5xx answers that outlasted the retries, so callers can use
// errors.Is without knowing MLflow's error codes.
type APIError struct {
	Status  int    // HTTP status
	Code    string // MLflow's error_code, e.g. RESOURCE_DOES_NOT_EXIST
	Message string

	kind       error
	retryAfter time.Duration
}

func (e *APIError) Error() string {
	code := e.Code
	if code == "" {
		code = http.StatusText(e.Status)
	}
	return fmt.Sprintf("%d %s: %s", e.Status, code, e.Message)
}

// Unwrap returns the registry sentinel the error stands for, if any.
func (e *APIError) Unwrap() error { return e.kind }

// HTTPStatus and RetryAfter tell the retry policy what the server said.
func (e *APIError) HTTPStatus() int           { return e.Status }
func (e *APIError) RetryAfter() time.Duration { return e.retryAfter }

// apiError reads an error answer. MLflow answers {"error_code", "message"};
// a proxy in front of it may answer anything.
func apiError(resp *http.Response) *APIError {
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	e := &APIError{Status: resp.StatusCode}
	var body struct {
		Code    string `json:"error_code"`
		Message string `json:"message"`
	}
	if json.Unmarshal(raw, &body) == nil && (body.Code != "" || body.Message != "") {
		e.Code, e.Message = body.Code, body.Message
	} else {
		e.Message = strings.TrimSpace(string(raw[:min(len(raw), 200)]))
	}
	switch {
	case e.Status == http.StatusNotFound || e.Code == "RESOURCE_DOES_NOT_EXIST":
		e.kind = registry.ErrNotFound
	case e.Status == http.StatusUnauthorized || e.Status == http.StatusForbidden:
		e.kind = registry.ErrDenied
	case e.Status == http.StatusTooManyRequests || e.Status >= 500:
		e.kind = registry.ErrUnavailable
		e.retryAfter = retry.ParseRetryAfter(resp.Header.Get("Retry-After"), time.Now())
	}
	return e
}

// transportError is a failure to get any answer: refused, reset, timed out.
type transportError struct{ err error }

func (e *transportError) Error() string   { return e.err.Error() }
func (e *transportError) Unwrap() error   { return e.err }
func (e *transportError) Transient() bool { return true }

// retry runs attempt under the shared policy (internal/retry: network
// errors, 429 and 5xx are retried with backoff, Retry-After honoured up to
// MaxBackoff) until it succeeds, fails for good, or runs out of tries or ctx.
// Each attempt gets its own timeout, so one hung connection costs one
// attempt, not the whole call.
func (c *Client) retry(ctx context.Context, what string, timeout time.Duration, attempt func(ctx context.Context) error) error {
	n := 0
	policy := retry.Policy{Initial: c.cfg.Backoff, Max: c.cfg.MaxBackoff, Attempts: c.cfg.Attempts, AttemptTimeout: timeout}
	err := retry.Do(ctx, policy, func(ctx context.Context) error { n++; return attempt(ctx) }, nil)
	var te *transportError
	switch {
	case err == nil:
		return nil
	case ctx.Err() != nil:
		return fmt.Errorf("mlflow: %s: %w", what, err)
	case errors.As(err, &te):
		return fmt.Errorf("%w: mlflow: %s: %v (after %d attempts)", registry.ErrUnavailable, what, te.err, n)
	case retry.Retryable(err):
		return fmt.Errorf("mlflow: %s (after %d attempts): %w", what, n, err)
	}
	return fmt.Errorf("mlflow: %s: %w", what, err)
}

// send makes one HTTP request with auth; a non-2xx answer becomes an *APIError
// and no answer a *transportError. On success the caller closes the body.
func (c *Client) send(ctx context.Context, method, rawURL string, body []byte) (*http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, method, rawURL, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("User-Agent", "mlservice")
	switch {
	case c.cfg.Username != "" || c.cfg.Password != "":
		req.SetBasicAuth(c.cfg.Username, c.cfg.Password)
	case c.cfg.Token != "":
		req.Header.Set("Authorization", "Bearer "+c.cfg.Token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, &transportError{err}
	}
	if resp.StatusCode/100 != 2 {
		defer resp.Body.Close()
		return nil, apiError(resp)
	}
	return resp, nil
}

// call sends one registry API call (GET with query parameters, anything else
// with a JSON body, as MLflow's handlers read them) and decodes the answer
// into out, if out is not nil.
func (c *Client) call(ctx context.Context, method, endpoint string, params map[string]string, out any) error {
	u := c.base + "/api/2.0/mlflow/" + endpoint
	var body []byte
	if method == http.MethodGet {
		q := url.Values{}
		for k, v := range params {
			q.Set(k, v)
		}
		u += "?" + q.Encode()
	} else {
		body, _ = json.Marshal(params) // a map of strings always marshals
	}
	return c.retry(ctx, method+" "+endpoint, c.cfg.Timeout, func(ctx context.Context) error {
		resp, err := c.send(ctx, method, u, body)
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		return decodeJSON(resp.Body, out)
	})
}

// decodeJSON reads an answer into out (nil: read and drop it); a connection
// that breaks mid-answer is worth a retry, an answer that is not JSON is not.
func decodeJSON(r io.Reader, out any) error {
	raw, err := io.ReadAll(io.LimitReader(r, 32<<20))
	if err != nil {
		return &transportError{err}
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(raw, out); err != nil {
		return fmt.Errorf("unexpected answer: %w", err)
	}
	return nil
}
