// Package schematest checks what a test got against the published contract:
// the OpenAPI document the server serves (schemas.OpenAPI, with every JSON
// Schema file in its components), read by a real JSON Schema validator, so a
// test compares the server with the standard's reading of the contract, not
// with ours. Formats ("uuid", "date-time", ...) are asserted, not just
// annotated. For tests only.
package schematest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/santhosh-tekuri/jsonschema/v6"

	"mlservice/schemas"
)

// Contract is the compiled OpenAPI document. It is safe for concurrent use.
type Contract struct {
	raw      []byte
	compiler *jsonschema.Compiler
	mu       sync.Mutex
	compiled map[string]*jsonschema.Schema
}

// OpenAPI returns the published OpenAPI document, compiled once per test
// binary (the document is embedded, so every caller gets the same one).
func OpenAPI(tb testing.TB) *Contract {
	tb.Helper()
	c, err := openAPI()
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

var openAPI = sync.OnceValues(func() (*Contract, error) {
	raw, err := schemas.OpenAPI()
	if err != nil {
		return nil, err
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		return nil, fmt.Errorf("openapi.json: %w", err)
	}
	c := jsonschema.NewCompiler()
	c.AssertFormat()
	if err := c.AddResource("openapi.json", doc); err != nil {
		return nil, err
	}
	return &Contract{raw: raw, compiler: c, compiled: map[string]*jsonschema.Schema{}}, nil
})

// Raw is the document as served.
func (c *Contract) Raw() []byte { return c.raw }

// Validate checks a JSON body against one of the document's
// components/schemas (e.g. "AdminChange", "Error").
func (c *Contract) Validate(component string, body []byte) error {
	c.mu.Lock()
	s, ok := c.compiled[component]
	if !ok {
		var err error
		if s, err = c.compiler.Compile("openapi.json#/components/schemas/" + component); err != nil {
			c.mu.Unlock()
			return fmt.Errorf("schema %s: %w", component, err)
		}
		c.compiled[component] = s
	}
	c.mu.Unlock()
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("not JSON: %w", err)
	}
	if err := s.Validate(v); err != nil {
		return fmt.Errorf("does not match %s: %w", component, err)
	}
	return nil
}

// Operation is one operation of the document's paths: its template
// ("/v1/decisions/{application_id}") and its method in upper case.
type Operation struct{ Method, Path string }

func (o Operation) String() string { return o.Method + " " + o.Path }

// document is the part of the OpenAPI document an answer is checked
// against.
type document struct {
	Paths      map[string]map[string]json.RawMessage `json:"paths"`
	Components struct {
		Responses  map[string]response `json:"responses"`
		Parameters map[string]struct {
			Name    string `json:"name"`
			In      string `json:"in"`
			Example any    `json:"example"`
		} `json:"parameters"`
	} `json:"components"`
}

type operation struct {
	Parameters  []parameter         `json:"parameters"`
	RequestBody *requestBody        `json:"requestBody"`
	Responses   map[string]response `json:"responses"`
}

type parameter struct {
	Ref     string `json:"$ref"`
	Name    string `json:"name"`
	In      string `json:"in"`
	Example any    `json:"example"`
}

type requestBody struct {
	Content map[string]struct {
		Example json.RawMessage `json:"example"`
	} `json:"content"`
}

type response struct {
	Ref     string                     `json:"$ref"`
	Content map[string]json.RawMessage `json:"content"`
	Headers map[string]struct {
		Required bool `json:"required"`
	} `json:"headers"`
}

func (c *Contract) document() (*document, error) {
	var d document
	if err := json.Unmarshal(c.raw, &d); err != nil {
		return nil, err
	}
	return &d, nil
}

// Operations lists every operation the document describes.
func (c *Contract) Operations() ([]Operation, error) {
	d, err := c.document()
	if err != nil {
		return nil, err
	}
	var ops []Operation
	for path, methods := range d.Paths {
		for m := range methods {
			if m != "parameters" {
				ops = append(ops, Operation{strings.ToUpper(m), path})
			}
		}
	}
	return ops, nil
}

// Find names the operation a request is answered by: the path template that
// matches the request's path segment by segment, the one with the most
// literal segments when several do (/v1/decisions/by-decision-id/{id} over
// /v1/decisions/{application_id}/legal-hold).
func (c *Contract) Find(method, path string) (Operation, bool) {
	d, err := c.document()
	if err != nil {
		return Operation{}, false
	}
	path, _, _ = strings.Cut(path, "?")
	segs := strings.Split(path, "/")
	best, bestLiterals := "", -1
	for tpl, methods := range d.Paths {
		if _, ok := methods[strings.ToLower(method)]; !ok {
			continue
		}
		parts := strings.Split(tpl, "/")
		if len(parts) != len(segs) {
			continue
		}
		literals := 0
		for i, p := range parts {
			if strings.HasPrefix(p, "{") && strings.HasSuffix(p, "}") && segs[i] != "" {
				continue
			}
			if p != segs[i] {
				literals = -1
				break
			}
			literals++
		}
		if literals > bestLiterals {
			best, bestLiterals = tpl, literals
		}
	}
	return Operation{strings.ToUpper(method), best}, best != ""
}

// Example is what the document offers Swagger UI's "Try it out" for an
// operation: its path with each path parameter's example, and its JSON
// request body's example (nil when it takes none). A path parameter or a
// request body without an example is an error.
func (c *Contract) Example(op Operation) (path string, body []byte, err error) {
	d, err := c.document()
	if err != nil {
		return "", nil, err
	}
	o, params, err := d.operation(op)
	if err != nil {
		return "", nil, err
	}
	path = op.Path
	for _, p := range params {
		if p.In != "path" {
			continue
		}
		if p.Example == nil {
			return "", nil, fmt.Errorf("%s: path parameter %s has no example", op, p.Name)
		}
		path = strings.ReplaceAll(path, "{"+p.Name+"}", url.PathEscape(fmt.Sprint(p.Example)))
	}
	if o.RequestBody != nil {
		if body = o.RequestBody.Content["application/json"].Example; body == nil {
			return "", nil, fmt.Errorf("%s: its JSON request body has no example for Swagger UI's \"Try it out\"", op)
		}
	}
	return path, body, nil
}

// operation is op's entry in the document, with its parameters (the path's
// and the operation's, references resolved).
func (d *document) operation(op Operation) (*operation, []parameter, error) {
	methods, ok := d.Paths[op.Path]
	if !ok {
		return nil, nil, fmt.Errorf("%s is not in the contract", op)
	}
	raw, ok := methods[strings.ToLower(op.Method)]
	if !ok {
		return nil, nil, fmt.Errorf("%s is not in the contract", op)
	}
	var o operation
	if err := json.Unmarshal(raw, &o); err != nil {
		return nil, nil, fmt.Errorf("%s: %w", op, err)
	}
	var shared []parameter
	if raw, ok := methods["parameters"]; ok {
		if err := json.Unmarshal(raw, &shared); err != nil {
			return nil, nil, fmt.Errorf("%s: %w", op, err)
		}
	}
	var params []parameter
	for _, p := range append(shared, o.Parameters...) {
		if name, ok := strings.CutPrefix(p.Ref, "#/components/parameters/"); ok {
			c, ok := d.Components.Parameters[name]
			if !ok {
				return nil, nil, fmt.Errorf("%s: dangling %s", op, p.Ref)
			}
			p = parameter{Name: c.Name, In: c.In, Example: c.Example}
		}
		params = append(params, p)
	}
	return &o, params, nil
}

// ValidateAnswer checks one answer against what the document says op
// answers: the status is one it lists, the Content-Type one that status
// lists (and no body where it lists none), its required headers are set,
// and a JSON body (each line of an NDJSON one) satisfies that status's
// schema. A client generated from the document can then read every answer
// the server gives.
func (c *Contract) ValidateAnswer(op Operation, status int, header http.Header, body []byte) error {
	d, err := c.document()
	if err != nil {
		return err
	}
	o, _, err := d.operation(op)
	if err != nil {
		return err
	}
	code := strconv.Itoa(status)
	pointer := "#/paths/" + escapePointer(op.Path) + "/" + strings.ToLower(op.Method) + "/responses/" + code
	r, ok := o.Responses[code]
	if !ok {
		return fmt.Errorf("%s: status %d is not in the contract (it lists %v)", op, status, keys(o.Responses))
	}
	if name, ok := strings.CutPrefix(r.Ref, "#/components/responses/"); ok {
		if r, ok = d.Components.Responses[name]; !ok {
			return fmt.Errorf("%s %d: dangling %s", op, status, r.Ref)
		}
		pointer = "#/components/responses/" + escapePointer(name)
	}
	for h, spec := range r.Headers {
		if spec.Required && header.Get(h) == "" {
			return fmt.Errorf("%s %d: no %s header, which the contract requires", op, status, h)
		}
	}
	if len(r.Content) == 0 {
		if len(body) > 0 {
			return fmt.Errorf("%s %d: the contract declares no body, the server sent %q", op, status, truncate(body))
		}
		return nil
	}
	mediaType, _, _ := strings.Cut(header.Get("Content-Type"), ";")
	mediaType = strings.TrimSpace(mediaType)
	if _, ok := r.Content[mediaType]; !ok {
		return fmt.Errorf("%s %d: Content-Type %q is not in the contract (it lists %v)", op, status, header.Get("Content-Type"), keys(r.Content))
	}
	schema := pointer + "/content/" + escapePointer(mediaType) + "/schema"
	switch mediaType {
	case "application/json":
		return c.validateAt(schema, body)
	case "application/x-ndjson":
		for i, line := range bytes.Split(bytes.TrimSuffix(body, []byte("\n")), []byte("\n")) {
			if err := c.validateAt(schema, line); err != nil {
				return fmt.Errorf("%s %d: line %d: %w", op, status, i+1, err)
			}
		}
	}
	return nil
}

// validateAt validates a JSON body against the schema at a pointer into the
// document.
func (c *Contract) validateAt(pointer string, body []byte) error {
	c.mu.Lock()
	s, ok := c.compiled[pointer]
	if !ok {
		var err error
		if s, err = c.compiler.Compile("openapi.json" + pointer); err != nil {
			c.mu.Unlock()
			return fmt.Errorf("schema %s: %w", pointer, err)
		}
		c.compiled[pointer] = s
	}
	c.mu.Unlock()
	v, err := jsonschema.UnmarshalJSON(bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("not JSON (%w): %q", err, truncate(body))
	}
	if err := s.Validate(v); err != nil {
		return fmt.Errorf("does not match %s: %w", pointer, err)
	}
	return nil
}

// escapePointer escapes one JSON Pointer token (RFC 6901).
func escapePointer(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "~", "~0"), "/", "~1")
}

func keys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}

func truncate(b []byte) []byte {
	if len(b) > 200 {
		return b[:200]
	}
	return b
}
