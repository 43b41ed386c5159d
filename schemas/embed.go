package schemas

import (
	"embed"
	"encoding/json"
	"fmt"
)

//go:embed *.schema.json openapi.json
var files embed.FS

// schemaFiles names each JSON Schema file by the component name OpenAPI uses.
var schemaFiles = map[string]string{
	"Application":   "application.schema.json",
	"Decision":      "decision.schema.json",
	"Error":         "error.schema.json",
	"BatchRequest":  "batch-request.schema.json",
	"BatchResponse": "batch-response.schema.json",
}

// Schema returns the raw JSON Schema of a component ("Application", ...).
func Schema(component string) ([]byte, error) {
	name, ok := schemaFiles[component]
	if !ok {
		return nil, fmt.Errorf("schemas: no schema %q", component)
	}
	return files.ReadFile(name)
}

// OpenAPI returns the OpenAPI document with every JSON Schema placed in its
// components, so the published contract is built from the very files the
// contract test checks the Go validation against.
func OpenAPI() ([]byte, error) {
	raw, err := files.ReadFile("openapi.json")
	if err != nil {
		return nil, err
	}
	var doc map[string]any
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("schemas: openapi.json: %w", err)
	}
	components, _ := doc["components"].(map[string]any)
	if components == nil {
		return nil, fmt.Errorf("schemas: openapi.json has no components")
	}
	inlined := map[string]any{}
	for component := range schemaFiles {
		raw, err := Schema(component)
		if err != nil {
			return nil, err
		}
		var s map[string]any
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, fmt.Errorf("schemas: %s: %w", schemaFiles[component], err)
		}
		delete(s, "$schema")
		delete(s, "$id")
		inlined[component] = s
	}
	components["schemas"] = inlined
	return json.Marshal(doc)
}
