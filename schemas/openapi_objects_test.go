package schemas

import (
	"encoding/json"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// openAPIFields are the fixed fields of the OpenAPI 3.1 objects the
// document uses (the specification's tables, section 4.8). A client
// generator that validates the document (openapi-generator does by
// default) refuses any other, so a stray key breaks every generated client.
var openAPIFields = map[string][]string{
	"path item":    {"$ref", "summary", "description", "get", "put", "post", "delete", "options", "head", "patch", "trace", "servers", "parameters"},
	"operation":    {"tags", "summary", "description", "externalDocs", "operationId", "parameters", "requestBody", "responses", "callbacks", "deprecated", "security", "servers"},
	"parameter":    {"name", "in", "description", "required", "deprecated", "allowEmptyValue", "style", "explode", "allowReserved", "schema", "example", "examples", "content"},
	"header":       {"description", "required", "deprecated", "allowEmptyValue", "style", "explode", "allowReserved", "schema", "example", "examples", "content"},
	"request body": {"description", "content", "required"},
	"response":     {"description", "headers", "content", "links"},
	"media type":   {"schema", "example", "examples", "encoding"},
	"reference":    {"$ref", "summary", "description"},
}

// TestOpenAPIObjectsHaveOnlyTheirFields checks every path item, operation,
// parameter, request body, response, header and media type of the served
// document for keys OpenAPI 3.1 does not define (x- extensions aside).
func TestOpenAPIObjectsHaveOnlyTheirFields(t *testing.T) {
	raw, err := OpenAPI()
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Paths      map[string]map[string]json.RawMessage `json:"paths"`
		Components struct {
			Parameters map[string]json.RawMessage `json:"parameters"`
			Responses  map[string]json.RawMessage `json:"responses"`
			Headers    map[string]json.RawMessage `json:"headers"`
		} `json:"components"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	check := func(kind, where string, obj map[string]json.RawMessage) {
		if _, ref := obj["$ref"]; ref {
			kind = "reference"
		}
		for k := range obj {
			if !strings.HasPrefix(k, "x-") && !slices.Contains(openAPIFields[kind], k) {
				t.Errorf("%s: %q is not a field of an OpenAPI 3.1 %s object", where, k, kind)
			}
		}
	}
	var object func(kind, where string, raw json.RawMessage)
	object = func(kind, where string, raw json.RawMessage) {
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(raw, &obj); err != nil {
			t.Errorf("%s: not an object: %v", where, err)
			return
		}
		check(kind, where, obj)
		if _, ref := obj["$ref"]; ref {
			return
		}
		each := func(field, kind string) {
			var m map[string]json.RawMessage
			if json.Unmarshal(obj[field], &m) == nil {
				for k, v := range m {
					object(kind, where+"."+field+"."+k, v)
				}
			}
		}
		switch kind {
		case "operation":
			var params []json.RawMessage
			_ = json.Unmarshal(obj["parameters"], &params)
			for _, p := range params {
				object("parameter", where+".parameters", p)
			}
			if body, ok := obj["requestBody"]; ok {
				object("request body", where+".requestBody", body)
			}
			each("responses", "response")
		case "request body":
			each("content", "media type")
		case "response":
			each("headers", "header")
			each("content", "media type")
		}
	}
	for path, item := range doc.Paths {
		check("path item", path, item)
		for method, op := range item {
			switch method {
			case "parameters":
				var params []json.RawMessage
				_ = json.Unmarshal(op, &params)
				for _, p := range params {
					object("parameter", path+".parameters", p)
				}
			case "summary", "description", "servers", "$ref":
			default:
				object("operation", path+"."+method, op)
			}
		}
	}
	for name, p := range doc.Components.Parameters {
		object("parameter", "components.parameters."+name, p)
	}
	for name, r := range doc.Components.Responses {
		object("response", "components.responses."+name, r)
	}
	for name, h := range doc.Components.Headers {
		object("header", "components.headers."+name, h)
	}
}

// TestOpenAPIStatesTheBodyLimit: a size the document gives a client is the
// one the server refuses beyond (MaxBatchBytes, for any body), and /v2's
// infer operations, whose clients size their tensors by it, state it.
func TestOpenAPIStatesTheBodyLimit(t *testing.T) {
	raw, err := OpenAPI()
	if err != nil {
		t.Fatal(err)
	}
	limit := groupThousands(MaxBatchBytes) + " bytes"
	known := map[string]bool{limit: true, strconv.FormatFloat(float64(MaxBatchBytes)/(1<<20), 'f', 1, 64) + " MiB": true}
	for _, size := range regexp.MustCompile(`\d[\d,.]* (?:[KMG]i?B|bytes)`).FindAllString(string(raw), -1) {
		if !known[size] {
			t.Errorf("the contract states %q; the server's body limit is %s", size, limit)
		}
	}
	var doc struct {
		Paths map[string]map[string]json.RawMessage `json:"paths"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/v2/models/{model_name}/infer", "/v2/models/{model_name}/versions/{model_version}/infer"} {
		var op struct{ Description string }
		if err := json.Unmarshal(doc.Paths[p]["post"], &op); err != nil || !strings.Contains(op.Description, limit) {
			t.Errorf("POST %s does not state the body limit (%s): %q %v", p, limit, op.Description, err)
		}
	}
}

// groupThousands writes n as the README does: 5,121,024.
func groupThousands(n int) string {
	s := strconv.Itoa(n)
	for i := len(s) - 3; i > 0; i -= 3 {
		s = s[:i] + "," + s[i:]
	}
	return s
}
