package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"reflect"
	"strings"

	"github.com/gofiber/fiber/v2"
	"github.com/valyala/fastjson"

	"mlservice/schemas"
)

// RequireJSON is 415 unless the request says its body is application/json
// (parameters such as charset allowed).
func RequireJSON(c *fiber.Ctx) error {
	if !isJSON(c) {
		return errNotJSON
	}
	return nil
}

// DecodeBody is DecodeStrict of the request's body, which must be sent as
// application/json (RequireJSON): the routes that change state (/admin, a
// legal hold) take nothing else.
func DecodeBody(c *fiber.Ctx, v any) error {
	if err := RequireJSON(c); err != nil {
		return err
	}
	return DecodeStrict(c.Body(), v)
}

// DecodeStrict decodes a small JSON body into v, as strictly as the
// application API decodes an application: exactly one JSON value (RFC 8259:
// schemas.ParseJSON), no key twice in any object (an
// ambiguous body must not change production state), no field v does not
// have, nothing after it. The error is an *Error: 400 malformed_json, or 422
// validation_failed naming the field in the contract's words.
func DecodeStrict(data []byte, v any) error { return decodeStrict(data, v, -1) }

// DecodeEnvelope is DecodeStrict for a body whose inner values are each
// decoded strictly on their own (json.RawMessage): a key twice is looked
// for only among the top level's, so that one bad item is that item's
// error, not the whole body's.
func DecodeEnvelope(data []byte, v any) error { return decodeStrict(data, v, 1) }

func decodeStrict(data []byte, v any, depth int) error {
	var p fastjson.Parser
	parsed, err := schemas.ParseJSON(&p, data)
	if err != nil {
		return &Error{Status: http.StatusBadRequest, Code: CodeMalformedJSON, Message: err.Error()}
	}
	if key := duplicateKey(parsed, depth); key != "" {
		return invalidField(key, "duplicate field")
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	err = dec.Decode(v)
	var typeErr *json.UnmarshalTypeError
	switch {
	case err == nil:
		if _, extra := dec.Token(); extra != io.EOF {
			return &Error{Status: http.StatusBadRequest, Code: CodeMalformedJSON, Message: "malformed JSON: data after the JSON value"}
		}
		return nil
	case errors.As(err, &typeErr) && typeErr.Field == "":
		return invalidField("", "must be "+kindOf(typeErr.Type))
	case errors.As(err, &typeErr):
		return invalidField(typeErr.Field, "must be "+kindOf(typeErr.Type))
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		return invalidField(strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`), "unknown field")
	}
	return &Error{Status: http.StatusUnprocessableEntity, Code: CodeValidationFailed, Message: "the body does not have the fields this route takes"}
}

func invalidField(field, problem string) *Error {
	if field == "" {
		return &Error{Status: http.StatusUnprocessableEntity, Code: CodeValidationFailed, Message: "the body " + problem}
	}
	return &Error{Status: http.StatusUnprocessableEntity, Code: CodeValidationFailed,
		Message: fmt.Sprintf("invalid body: %q: %s", field, problem), Fields: map[string]string{field: problem}}
}

// duplicateKey returns the first key found twice in one object of v, down
// to depth levels (-1: all), "" if none. Keys are compared as encoding/json
// matches them to fields, ignoring case: {"approved":true,"Approved":false}
// is a key twice.
func duplicateKey(v *fastjson.Value, depth int) string {
	if depth == 0 {
		return ""
	}
	switch v.Type() {
	case fastjson.TypeObject:
		o, _ := v.Object()
		keys := make([]string, 0, o.Len())
		dup := ""
		o.Visit(func(k []byte, child *fastjson.Value) {
			if dup != "" {
				return
			}
			for _, seen := range keys {
				if strings.EqualFold(seen, string(k)) {
					dup = string(k)
					return
				}
			}
			keys = append(keys, string(k))
			dup = duplicateKey(child, depth-1)
		})
		return dup
	case fastjson.TypeArray:
		items, _ := v.Array()
		for _, item := range items {
			if dup := duplicateKey(item, depth-1); dup != "" {
				return dup
			}
		}
	}
	return ""
}

// kindOf names a Go type as JSON would: what a field must be.
func kindOf(t reflect.Type) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "a whole number"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Map, reflect.Struct:
		return "an object"
	}
	return "of another type"
}
