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

// maxBodyValues bounds the JSON values of a body DecodeStrict takes before
// it is parsed: 10,000 outcomes of two fields are about 40,000.
const maxBodyValues = 1 << 16

func decodeStrict(data []byte, v any, depth int) error {
	var p fastjson.Parser
	parsed, err := schemas.ParseJSON(&p, data, maxBodyValues)
	if err != nil {
		return &Error{Status: http.StatusBadRequest, Code: CodeMalformedJSON, Message: err.Error()}
	}
	if key := schemas.DuplicateKey(parsed, depth); key != "" {
		return invalidField(key, "duplicate field")
	}
	if key := unknownKey(parsed, reflect.TypeOf(v), depth); key != "" {
		return invalidField(key, "unknown field")
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

// unknownKey returns the first key of v, down to depth levels (-1: all),
// that is not exactly a field of t, "" if none. encoding/json matches keys
// to fields ignoring case (and folding ſ to s), which DisallowUnknownFields
// does not stop: {"VERSION":"3"} would set the version. The contract's
// names are exact. Values decoded on their own (json.RawMessage) and maps
// are not looked into.
func unknownKey(v *fastjson.Value, t reflect.Type, depth int) string {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if depth == 0 || t == rawMessage {
		return ""
	}
	switch {
	case v.Type() == fastjson.TypeObject && t.Kind() == reflect.Struct:
		o, _ := v.Object()
		bad := ""
		o.Visit(func(k []byte, child *fastjson.Value) {
			if bad != "" {
				return
			}
			f, ok := fieldOf(t, string(k))
			if !ok {
				bad = string(k)
				return
			}
			bad = unknownKey(child, f.Type, depth-1)
		})
		return bad
	case v.Type() == fastjson.TypeArray && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array):
		items, _ := v.Array()
		for _, item := range items {
			if bad := unknownKey(item, t.Elem(), depth-1); bad != "" {
				return bad
			}
		}
	}
	return ""
}

var rawMessage = reflect.TypeFor[json.RawMessage]()

// fieldOf finds the field of struct t whose JSON name is exactly name.
func fieldOf(t reflect.Type, name string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		if tag == "-" {
			continue
		}
		if tag == "" {
			tag = f.Name
		}
		if tag == name {
			return f, true
		}
	}
	return reflect.StructField{}, false
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
