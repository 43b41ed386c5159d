// Package schematest checks what a test got against the published contract:
// the OpenAPI document the server serves (schemas.OpenAPI, with every JSON
// Schema file in its components), read by a real JSON Schema validator, so a
// test compares the server with the standard's reading of the contract, not
// with ours. Formats ("uuid", "date-time", ...) are asserted, not just
// annotated. For tests only.
package schematest

import (
	"bytes"
	"fmt"
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
