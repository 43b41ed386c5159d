// Package schematest checks what a test got against the published contract:
// the OpenAPI document the server serves (schemas.OpenAPI, with every JSON
// Schema file in its components), read by a real JSON Schema validator, so a
// test compares the server with the standard's reading of the contract, not
// with ours. For tests only.
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

// OpenAPI loads the published OpenAPI document.
func OpenAPI(tb testing.TB) *Contract {
	tb.Helper()
	raw, err := schemas.OpenAPI()
	if err != nil {
		tb.Fatal(err)
	}
	doc, err := jsonschema.UnmarshalJSON(bytes.NewReader(raw))
	if err != nil {
		tb.Fatal(err)
	}
	c := jsonschema.NewCompiler()
	if err := c.AddResource("openapi.json", doc); err != nil {
		tb.Fatal(err)
	}
	return &Contract{raw: raw, compiler: c, compiled: map[string]*jsonschema.Schema{}}
}

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
