// Package auth is who may call the server's protected routes: per-person
// bearer tokens from a tokens file (SERVE_TOKENS_FILE: name, sha256 of the
// token, roles) plus SERVE_ADMIN_TOKEN as the principal "admin", and the
// Fiber middleware Require that lets a request through only with a token of
// one of the given roles and names its principal for the audit lines.
//
// Failed attempts are audited, counted (auth_failures_total) and slowed: each
// client address gets a small budget of failures that refills slowly, and
// past it every attempt is refused with 429 before any token is checked.
package auth

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/gofiber/fiber/v2"
	"github.com/prometheus/client_golang/prometheus"
	"gopkg.in/yaml.v3"

	"mlservice/serve/api"
)

// Role is what a principal may do.
type Role string

// The roles.
const (
	// Admin may change the live models (/admin) and read the record.
	Admin Role = "admin"
	// Audit may read the decision record (/v1/decisions, /v1/outcomes).
	Audit Role = "audit"
)

// AdminName is the principal SERVE_ADMIN_TOKEN authenticates as.
const AdminName = "admin"

// Entry is one line of the tokens file.
type Entry struct {
	// Name is the person (or system) the token belongs to; audit lines name it.
	Name string `yaml:"name" json:"name"`
	// SHA256 is the hex sha256 of the token (never the token itself):
	// printf %s "$TOKEN" | sha256sum.
	SHA256 string `yaml:"sha256" json:"sha256"`
	Roles  []Role `yaml:"roles" json:"roles"`
}

// Principal is an authenticated caller.
type Principal struct {
	Name  string
	Roles []Role
}

// Has reports whether p has one of roles.
func (p Principal) Has(roles ...Role) bool {
	for _, have := range p.Roles {
		for _, want := range roles {
			if have == want {
				return true
			}
		}
	}
	return false
}

// Tokens is the set of principals by the sha256 of their token. It is
// immutable and safe for concurrent use.
type Tokens struct {
	sums       [][32]byte
	principals []Principal
}

var validName = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}$`)

// Load reads the tokens file at path (YAML, or JSON, which is YAML: a list
// of entries) and adds adminToken, when set, as the principal "admin" with
// the admin role. path "" means no file. Errors name the entry, never a token.
func Load(path, adminToken string) (*Tokens, error) {
	var entries []Entry
	if path != "" {
		raw, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("tokens file: %w", err)
		}
		if entries, err = Parse(raw); err != nil {
			return nil, fmt.Errorf("tokens file %s: %w", path, err)
		}
	}
	return New(entries, adminToken)
}

// Parse reads the entries of a tokens file.
func Parse(raw []byte) ([]Entry, error) {
	var entries []Entry
	dec := yaml.NewDecoder(strings.NewReader(string(raw)))
	dec.KnownFields(true)
	if err := dec.Decode(&entries); err != nil && !errors.Is(err, io.EOF) { // an empty file has no entries
		return nil, fmt.Errorf("want a list of {name, sha256, roles}: %w", err)
	}
	return entries, nil
}

// New checks entries and builds the set; adminToken, when set, is the
// principal "admin".
func New(entries []Entry, adminToken string) (*Tokens, error) {
	t := &Tokens{}
	names := map[string]bool{}
	add := func(sum [32]byte, p Principal) error {
		if names[p.Name] {
			return fmt.Errorf("principal %q appears twice", p.Name)
		}
		for i, s := range t.sums {
			if s == sum {
				return fmt.Errorf("principals %q and %q have the same token", t.principals[i].Name, p.Name)
			}
		}
		names[p.Name] = true
		t.sums = append(t.sums, sum)
		t.principals = append(t.principals, p)
		return nil
	}
	if adminToken != "" {
		if err := add(sha256.Sum256([]byte(adminToken)), Principal{Name: AdminName, Roles: []Role{Admin}}); err != nil {
			return nil, err
		}
	}
	for i, e := range entries {
		if !validName.MatchString(e.Name) {
			return nil, fmt.Errorf("entry %d: name %q: want 1-64 letters, digits or ._@+-", i+1, e.Name)
		}
		raw, err := hex.DecodeString(strings.ToLower(e.SHA256))
		if err != nil || len(raw) != sha256.Size {
			return nil, fmt.Errorf("entry %q: sha256 must be 64 hex digits (the sha256 of the token, not the token)", e.Name)
		}
		if len(e.Roles) == 0 {
			return nil, fmt.Errorf("entry %q: roles must name admin or audit", e.Name)
		}
		for _, r := range e.Roles {
			if r != Admin && r != Audit {
				return nil, fmt.Errorf("entry %q: unknown role %q (want admin or audit)", e.Name, r)
			}
		}
		if err := add([32]byte(raw), Principal{Name: e.Name, Roles: append([]Role(nil), e.Roles...)}); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// same reports whether t and u hold the same principals with the same tokens.
func (t *Tokens) same(u *Tokens) bool {
	if len(t.sums) != len(u.sums) {
		return false
	}
	for i := range t.sums {
		if t.sums[i] != u.sums[i] || t.principals[i].Name != u.principals[i].Name ||
			joinRoles(t.principals[i].Roles) != joinRoles(u.principals[i].Roles) {
			return false
		}
	}
	return true
}

// Any reports whether some principal has one of roles: a route nobody may
// call is disabled rather than open.
func (t *Tokens) Any(roles ...Role) bool {
	for _, p := range t.principals {
		if p.Has(roles...) {
			return true
		}
	}
	return false
}

// Lookup returns the principal of token. Every entry is compared, in
// constant time over sha256 sums, so neither the token's length nor which
// entry matched leaks through timing.
func (t *Tokens) Lookup(token string) (Principal, bool) {
	sum := sha256.Sum256([]byte(token))
	found := -1
	for i := range t.sums {
		if subtle.ConstantTimeCompare(sum[:], t.sums[i][:]) == 1 {
			found = i
		}
	}
	if found < 0 {
		return Principal{}, false
	}
	return t.principals[found], true
}

// BearerToken returns the token of an Authorization header; the scheme is
// case-insensitive (RFC 9110 §11.1).
func BearerToken(header string) (string, bool) {
	scheme, token, ok := strings.Cut(strings.TrimSpace(header), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	token = strings.TrimLeft(token, " ")
	return token, token != ""
}

// Config wires an Authenticator.
type Config struct {
	Tokens *Tokens
	// TrustedProxies are the peers whose X-Forwarded-For is believed (the
	// load balancer); from any other peer the header is ignored.
	TrustedProxies []netip.Prefix
	// Audit receives one line per refused attempt.
	Audit *slog.Logger
	// Registerer takes the auth_failures_total counter (nil: not registered).
	Registerer prometheus.Registerer
	// FailureBurst failures per address are allowed at once (default 10),
	// refilled one per FailureRefill (default 3s).
	FailureBurst  int
	FailureRefill time.Duration
	// Now is the clock (tests pass their own).
	Now func() time.Time
}

// Authenticator checks bearer tokens. Create it with NewAuthenticator; it is
// safe for concurrent use.
type Authenticator struct {
	cfg      Config
	tokens   atomic.Pointer[Tokens] // cfg.Tokens, then what Watch reloads
	failures *prometheus.CounterVec
	limit    *limiter
}

// NewAuthenticator returns an Authenticator.
func NewAuthenticator(cfg Config) *Authenticator {
	if cfg.Tokens == nil {
		cfg.Tokens = &Tokens{}
	}
	if cfg.Audit == nil {
		cfg.Audit = slog.Default()
	}
	if cfg.FailureBurst <= 0 {
		cfg.FailureBurst = 10
	}
	if cfg.FailureRefill <= 0 {
		cfg.FailureRefill = 3 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	a := &Authenticator{cfg: cfg,
		failures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "auth_failures_total",
			Help: "Refused authentications on /admin and the record routes, by reason (missing, invalid, forbidden, throttled).",
		}, []string{"reason"}),
		limit: newLimiter(cfg.FailureBurst, cfg.FailureRefill),
	}
	a.tokens.Store(cfg.Tokens)
	if cfg.Registerer != nil {
		cfg.Registerer.MustRegister(a.failures)
	}
	return a
}

// Watch reads the tokens file at path every interval until ctx ends and,
// when it has changed, makes its principals (with adminToken, as Load) the
// ones Require checks: a person taken out of the file (a Secret updated in
// place) loses access without a restart. A file that does not load keeps
// the set that did, and log says why.
func (a *Authenticator) Watch(ctx context.Context, path, adminToken string, interval time.Duration, log *slog.Logger) {
	var last []byte // the first read loads, whatever changed since the start
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		raw, err := os.ReadFile(path)
		if err == nil && last != nil && bytes.Equal(raw, last) {
			continue
		}
		last = raw
		tokens, err := Load(path, adminToken)
		if err != nil {
			log.Error("tokens file not reloaded: the principals loaded before still apply", "error", err)
			continue
		}
		if old := a.tokens.Swap(tokens); !old.same(tokens) {
			log.Info("tokens file reloaded", "path", path, "principals", len(tokens.principals))
		}
	}
}

// Locals keys.
const (
	principalKey = "auth.principal"
	clientIDKey  = "auth.client_request_id"
	// serverIDKey is the key serve/api keeps the request id under; Require
	// replaces a client-chosen id there with the server's own, so error
	// bodies and audit lines carry the id the server made.
	serverIDKey = "request_id"
)

// Require lets a request through only with a bearer token of a principal
// that has one of roles; it puts the principal in the context (Name). With
// no principal holding any of roles the route answers 403 admin_disabled:
// it is never open. The response's X-Request-ID is the server's own id; a
// client's X-Request-ID is kept for the audit line (ClientRequestID).
func (a *Authenticator) Require(roles ...Role) fiber.Handler {
	return func(c *fiber.Ctx) error {
		tokens := a.tokens.Load()
		serverID := newRequestID()
		c.Locals(clientIDKey, string(c.Request().Header.Peek(fiber.HeaderXRequestID)))
		c.Locals(serverIDKey, serverID)
		c.Set(fiber.HeaderXRequestID, serverID)
		if !tokens.Any(roles...) {
			return &api.Error{Status: http.StatusForbidden, Code: api.CodeAdminDisabled,
				Message: "this route is disabled: no token with the role " + joinRoles(roles) + " is configured (SERVE_ADMIN_TOKEN or SERVE_TOKENS_FILE)"}
		}
		remote := a.Remote(c)
		now := a.cfg.Now()
		if wait := a.limit.blocked(remote, now); wait > 0 {
			a.refuse(c, remote, "throttled", "")
			c.Set(fiber.HeaderRetryAfter, strconv.Itoa(int(wait.Round(time.Second)/time.Second)+1))
			return &api.Error{Status: http.StatusTooManyRequests, Code: api.CodeTooManyAttempts,
				Message: "too many failed authentications from this address; retry later"}
		}
		token, ok := BearerToken(c.Get(fiber.HeaderAuthorization))
		if !ok {
			a.limit.fail(remote, now)
			a.refuse(c, remote, "missing", "")
			return &api.Error{Status: http.StatusUnauthorized, Code: api.CodeUnauthorized, Message: "a valid bearer token is required"}
		}
		p, ok := tokens.Lookup(token)
		if !ok {
			a.limit.fail(remote, now)
			a.refuse(c, remote, "invalid", "")
			return &api.Error{Status: http.StatusUnauthorized, Code: api.CodeUnauthorized, Message: "a valid bearer token is required"}
		}
		if !p.Has(roles...) {
			a.refuse(c, remote, "forbidden", p.Name)
			return &api.Error{Status: http.StatusForbidden, Code: api.CodeForbidden,
				Message: fmt.Sprintf("%s may not call this route (it needs the role %s)", p.Name, joinRoles(roles))}
		}
		c.Locals(principalKey, p.Name)
		return c.Next()
	}
}

func (a *Authenticator) refuse(c *fiber.Ctx, remote, reason, principal string) {
	a.failures.WithLabelValues(reason).Inc()
	attrs := []any{"audit", true, "result", "refused", "reason", reason, "remote", remote,
		"method", c.Method(), "path", c.Path(), "request_id", RequestID(c)}
	if principal != "" {
		attrs = append(attrs, "principal", principal)
	}
	if id := ClientRequestID(c); id != "" {
		attrs = append(attrs, "client_request_id", id)
	}
	a.cfg.Audit.Warn("authentication refused", attrs...)
}

func joinRoles(roles []Role) string {
	s := make([]string, len(roles))
	for i, r := range roles {
		s[i] = string(r)
	}
	return strings.Join(s, " or ")
}

// Name returns the authenticated principal's name ("" before Require).
func Name(c *fiber.Ctx) string {
	name, _ := c.Locals(principalKey).(string)
	return name
}

// RequestID returns the server's id of the request.
func RequestID(c *fiber.Ctx) string {
	id, _ := c.Locals(serverIDKey).(string)
	return id
}

// ClientRequestID returns the X-Request-ID the client sent ("" for none),
// truncated to 128 bytes.
func ClientRequestID(c *fiber.Ctx) string {
	id, _ := c.Locals(clientIDKey).(string)
	return id[:min(len(id), 128)]
}

// Remote returns the client's address: the peer, or, when the peer is a
// trusted proxy, the right-most X-Forwarded-For entry that is not itself a
// trusted proxy. Every X-Forwarded-For line counts, in order: HAProxy's
// option forwardfor adds a line of its own after the client's, so the first
// line alone is whatever the client chose.
func (a *Authenticator) Remote(c *fiber.Ctx) string {
	forwarded := bytes.Join(c.Request().Header.PeekAll(fiber.HeaderXForwardedFor), []byte(","))
	return remoteAddr(c.Context().RemoteIP().String(), string(forwarded), a.cfg.TrustedProxies)
}

func remoteAddr(peer, forwarded string, trusted []netip.Prefix) string {
	isTrusted := func(s string) bool {
		addr, err := netip.ParseAddr(strings.TrimSpace(s))
		if err != nil {
			return false
		}
		for _, p := range trusted {
			if p.Contains(addr.Unmap()) {
				return true
			}
		}
		return false
	}
	if !isTrusted(peer) || forwarded == "" {
		return peer
	}
	hops := strings.Split(forwarded, ",")
	for i := len(hops) - 1; i >= 0; i-- {
		hop := strings.TrimSpace(hops[i])
		if _, err := netip.ParseAddr(hop); err != nil {
			return peer // garbage: believe nothing
		}
		if !isTrusted(hop) {
			return hop
		}
	}
	return peer
}

// ParseTrustedProxies reads a comma-separated list of addresses and CIDR
// prefixes ("10.0.0.0/8, 127.0.0.1").
func ParseTrustedProxies(s string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, f := range strings.Split(s, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			continue
		}
		if p, err := netip.ParsePrefix(f); err == nil {
			out = append(out, p.Masked())
			continue
		}
		addr, err := netip.ParseAddr(f)
		if err != nil {
			return nil, fmt.Errorf("%q is neither an address nor a CIDR prefix", f)
		}
		out = append(out, netip.PrefixFrom(addr.Unmap(), addr.Unmap().BitLen()))
	}
	return out, nil
}

func newRequestID() string {
	var b [12]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
