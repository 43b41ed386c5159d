package schemas

import (
	"embed"
	"encoding/json"
	"fmt"
	"io/fs"
	"strings"
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

// componentName names a schema file's component: decision-record.schema.json
// is DecisionRecord. The files of schemaFiles keep their listed names.
func componentName(file string) string {
	for component, f := range schemaFiles {
		if f == file {
			return component
		}
	}
	var b strings.Builder
	for _, part := range strings.Split(strings.TrimSuffix(file, ".schema.json"), "-") {
		if part != "" {
			b.WriteString(strings.ToUpper(part[:1]) + part[1:])
		}
	}
	return b.String()
}

// rewriteRefs points a schema file's references to other schema files
// ("decision-record.schema.json") at their components.
func rewriteRefs(v any) {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			if ref, ok := x.(string); ok && k == "$ref" && strings.HasSuffix(ref, ".schema.json") {
				v[k] = "#/components/schemas/" + componentName(ref[strings.LastIndexByte(ref, '/')+1:])
				continue
			}
			rewriteRefs(x)
		}
	case []any:
		for _, x := range v {
			rewriteRefs(x)
		}
	}
}

// OpenAPI returns the OpenAPI document with every JSON Schema file
// (*.schema.json) placed in its components, so the published contract is
// built from the very files the contract test checks the Go validation
// against. A file's component replaces an entry of the same name that
// openapi.json describes inline.
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
	inlined, _ := components["schemas"].(map[string]any)
	if inlined == nil {
		inlined = map[string]any{}
	}
	names, err := fs.Glob(files, "*.schema.json")
	if err != nil {
		return nil, err
	}
	for _, name := range names {
		raw, err := files.ReadFile(name)
		if err != nil {
			return nil, err
		}
		var s map[string]any
		if err := json.Unmarshal(raw, &s); err != nil {
			return nil, fmt.Errorf("schemas: %s: %w", name, err)
		}
		delete(s, "$schema")
		delete(s, "$id")
		rewriteRefs(s)
		inlined[componentName(name)] = s
	}
	components["schemas"] = inlined
	return json.Marshal(doc)
}
