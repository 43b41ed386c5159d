package oip

import (
	"encoding/binary"
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/valyala/fastjson"

	"mlservice/schemas"
	"mlservice/serve/models"
)

// headerInferenceHeaderContentLength is the binary tensor data extension's
// header: the length of the JSON part of a body; the binary part follows.
const headerInferenceHeaderContentLength = "Inference-Header-Content-Length"

// Parameters of the binary tensor data extension.
const (
	paramBinaryDataSize   = "binary_data_size"
	paramBinaryDataOutput = "binary_data_output"
	paramBinaryData       = "binary_data"
)

// maxShapeDims bounds a tensor's rank: the model takes [N, F] or one [N]
// (or [N, 1]) tensor per column.
const maxShapeDims = 2

// elementSize is the size in bytes of the datatypes infer accepts.
func elementSize(datatype string) int {
	switch datatype {
	case "FP32", "INT32":
		return 4
	case "FP64", "INT64":
		return 8
	}
	return 0
}

// inferBody is a parsed infer request, before it is mapped to applications.
// Byte slices point into the request body or the parser: valid only while
// the handler runs.
type inferBody struct {
	id               []byte
	hasID            bool
	applicationID    []byte
	hasApplicationID bool
	binaryOutput     bool
	inputs           []tensorIn
	outputs          []outputReq
	hasOutputs       bool
}

type tensorIn struct {
	name     []byte
	datatype string
	shape    [maxShapeDims]int64
	dims     int
	// values holds the elements, converted as the datatype reads them
	// (FP32 through float32, so what overflows a float32 shows as ±Inf).
	values []float64
}

type outputReq struct {
	name []byte
	// binary is -1 when the output does not say, else 0 or 1.
	binary int8
}

func (t *tensorIn) shapeString() string {
	parts := make([]string, t.dims)
	for i := 0; i < t.dims; i++ {
		parts[i] = strconv.FormatInt(t.shape[i], 10)
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

// splitBinary splits a body by the Inference-Header-Content-Length header:
// the JSON header and the binary tensor data after it. headerLen is the raw
// header value, nil when absent (the whole body is JSON).
func splitBinary(body, headerLen []byte) (header, data []byte, err error) {
	if headerLen == nil {
		return body, nil, nil
	}
	n, perr := strconv.ParseUint(strings.TrimSpace(string(headerLen)), 10, 63)
	if perr != nil {
		return nil, nil, badRequest(headerInferenceHeaderContentLength + " must be a whole number of bytes, got " + quote(string(headerLen)))
	}
	if n > uint64(len(body)) {
		return nil, nil, badRequest(fmt.Sprintf("%s is %d but the body has only %d bytes", headerInferenceHeaderContentLength, n, len(body)))
	}
	return body[:n], body[n:], nil
}

// parseInfer parses an infer body: JSON, or JSON followed by binary tensor
// data when headerLen (the Inference-Header-Content-Length value) is set.
// maxElements bounds every tensor's element count before anything is
// allocated for it. values is reused scratch space.
func parseInfer(p *fastjson.Parser, body, headerLen []byte, maxElements int64, into *inferBody, values []float64) ([]float64, error) {
	header, data, err := splitBinary(body, headerLen)
	if err != nil {
		return values, err
	}
	v, perr := schemas.ParseJSON(p, header, maxHeaderValues)
	if perr != nil {
		return values, badRequest("the request is not valid JSON: " + perr.(*schemas.MalformedError).Reason)
	}
	obj, oerr := v.Object()
	if oerr != nil {
		return values, badRequest("the request must be a JSON object")
	}
	// A key twice is ambiguous: this server and a proxy or log reading the
	// same bytes could each take a different value.
	if key := schemas.DuplicateKey(v, -1); key != "" {
		return values, badRequest(fmt.Sprintf("the request has the key %s twice in one object", quote(key)))
	}
	*into = inferBody{inputs: into.inputs[:0], outputs: into.outputs[:0]}
	var inputs, outputs *fastjson.Value
	obj.Visit(func(key []byte, val *fastjson.Value) {
		if err != nil {
			return
		}
		switch string(key) {
		case "id":
			if into.id, err = val.StringBytes(); err != nil {
				err = badRequest(`"id" must be a string`)
			}
			into.hasID = true
		case "parameters":
			err = parseRequestParameters(val, into)
		case "inputs":
			inputs = val
		case "outputs":
			outputs = val
		}
		// Other members are ignored, as the protocol's servers do.
	})
	if err != nil {
		return values, err
	}
	if inputs == nil {
		return values, badRequest(`the request has no "inputs"`)
	}
	list, aerr := inputs.Array()
	if aerr != nil {
		return values, badRequest(`"inputs" must be an array of tensors`)
	}
	if len(list) == 0 {
		return values, badRequest(`"inputs" is empty`)
	}
	if len(list) > len(schemas.Features) {
		return values, badRequest(fmt.Sprintf(`%d inputs: the model takes one [N, F] tensor or one tensor per column`, len(list)))
	}
	// Each tensor's values go into one shared buffer; the offsets are fixed
	// up at the end, since the buffer may grow.
	offsets := [len(schemas.Features) + 1]int{}
	values = values[:0]
	for i, in := range list {
		var t tensorIn
		if values, err = parseInput(in, &t, &data, maxElements, values); err != nil {
			return values, err
		}
		offsets[i+1] = len(values)
		into.inputs = append(into.inputs, t)
	}
	if len(data) != 0 {
		return values, badRequest(fmt.Sprintf("%d bytes of binary data are left over after the last input's binary_data_size", len(data)))
	}
	for i := range into.inputs {
		into.inputs[i].values = values[offsets[i]:offsets[i+1]:offsets[i+1]]
	}
	// An empty list asks for nothing in particular, as no list does: every
	// output (an answer without outputs would decide and record unseen).
	if outputs != nil && !(outputs.Type() == fastjson.TypeArray && len(outputs.GetArray()) == 0) {
		into.hasOutputs = true
		outs, aerr := outputs.Array()
		if aerr != nil {
			return values, badRequest(`"outputs" must be an array of {"name": ...}`)
		}
		if len(outs) > 64 {
			return values, badRequest(fmt.Sprintf(`%d requested outputs: the model has far fewer`, len(outs)))
		}
		for _, o := range outs {
			req := outputReq{binary: -1}
			name := o.Get("name")
			if name == nil || name.Type() != fastjson.TypeString {
				return values, badRequest(`each requested output needs a "name" string`)
			}
			req.name, _ = name.StringBytes()
			if params := o.Get("parameters"); params != nil {
				if params.Type() != fastjson.TypeObject {
					return values, badRequest(`"parameters" of output ` + quote(string(req.name)) + ` must be an object`)
				}
				if b := params.Get(paramBinaryData); b != nil {
					switch b.Type() {
					case fastjson.TypeTrue:
						req.binary = 1
					case fastjson.TypeFalse:
						req.binary = 0
					default:
						return values, badRequest(`"binary_data" of output ` + quote(string(req.name)) + ` must be true or false`)
					}
				}
			}
			into.outputs = append(into.outputs, req)
		}
	}
	return values, nil
}

func parseRequestParameters(val *fastjson.Value, into *inferBody) error {
	params, err := val.Object()
	if err != nil {
		return badRequest(`"parameters" must be an object`)
	}
	var perr error
	params.Visit(func(key []byte, v *fastjson.Value) {
		if perr != nil {
			return
		}
		switch string(key) {
		case paramBinaryDataOutput:
			switch v.Type() {
			case fastjson.TypeTrue:
				into.binaryOutput = true
			case fastjson.TypeFalse:
			default:
				perr = badRequest(`"binary_data_output" must be true or false`)
			}
		case ApplicationIDParameter:
			id, err := v.StringBytes()
			if err != nil {
				perr = badRequest(`"application_id" must be a string`)
				return
			}
			into.applicationID, into.hasApplicationID = id, true
		}
		// Unknown parameters are ignored.
	})
	return perr
}

// parseInput reads one input tensor; its binary data, if any, is taken from
// the front of *data.
func parseInput(in *fastjson.Value, t *tensorIn, data *[]byte, maxElements int64, values []float64) ([]float64, error) {
	if in.Type() != fastjson.TypeObject {
		return values, badRequest("each input must be a JSON object with name, shape, datatype and data")
	}
	nameV := in.Get("name")
	if nameV == nil || nameV.Type() != fastjson.TypeString {
		return values, badRequest(`an input has no "name" string`)
	}
	t.name, _ = nameV.StringBytes()
	what := "input " + quote(string(t.name))
	dt := in.Get("datatype")
	if dt == nil || dt.Type() != fastjson.TypeString {
		return values, badRequest(what + ` has no "datatype" string`)
	}
	dtb, _ := dt.StringBytes()
	switch string(dtb) {
	case "FP32":
		t.datatype = "FP32"
	case "FP64":
		t.datatype = "FP64"
	case "INT32":
		t.datatype = "INT32"
	case "INT64":
		t.datatype = "INT64"
	default:
		return values, badRequest(what + " has datatype " + quote(string(dtb)) + "; the model takes FP32 (FP64, INT32 and INT64 are converted)")
	}
	shape := in.Get("shape")
	if shape == nil || shape.Type() != fastjson.TypeArray {
		return values, badRequest(what + ` has no "shape" array`)
	}
	dims, _ := shape.Array()
	if len(dims) == 0 || len(dims) > maxShapeDims {
		return values, badRequest(fmt.Sprintf("%s has %d dimensions; the model takes [N, F], or [N] per column", what, len(dims)))
	}
	t.dims = len(dims)
	total := int64(1)
	for i, d := range dims {
		n, err := d.Int64()
		if err != nil || n < 0 {
			return values, badRequest(what + " has a shape that is not a list of whole numbers ≥ 0")
		}
		t.shape[i] = n
		if n > 0 && total > maxElements/n {
			return values, badRequest(fmt.Sprintf("%s has %s elements, over the %d this server takes in one request", what, shapeOf(dims), maxElements))
		}
		total *= n
	}
	if t.shape[0] > int64(schemas.MaxBatch) {
		return values, badRequest(fmt.Sprintf("%s has %d rows: at most %d in one request", what, t.shape[0], schemas.MaxBatch))
	}
	if total > maxElements {
		return values, badRequest(fmt.Sprintf("%s has %d elements, over the %d this server takes in one request", what, total, maxElements))
	}
	size := -1
	if params := in.Get("parameters"); params != nil {
		if params.Type() != fastjson.TypeObject {
			return values, badRequest(what + `: "parameters" must be an object`)
		}
		if bs := params.Get(paramBinaryDataSize); bs != nil {
			n, err := bs.Int64()
			if err != nil || n < 0 {
				return values, badRequest(what + ": binary_data_size must be a whole number of bytes")
			}
			if n > int64(len(*data)) {
				return values, badRequest(fmt.Sprintf("%s: binary_data_size is %d but only %d bytes of binary data are left", what, n, len(*data)))
			}
			size = int(n)
		}
	}
	start := len(values)
	if size >= 0 {
		if in.Get("data") != nil {
			return values, badRequest(what + ` has both "data" and binary_data_size`)
		}
		es := int64(elementSize(t.datatype))
		if int64(size) != total*es {
			return values, badRequest(fmt.Sprintf("%s: binary_data_size is %d bytes, but shape %s of %s needs %d", what, size, t.shapeString(), t.datatype, total*es))
		}
		raw := (*data)[:size]
		*data = (*data)[size:]
		values = growValues(values, int(total))
		out := values[start:]
		switch t.datatype {
		case "FP32":
			for i := range out {
				out[i] = float64(math.Float32frombits(binary.LittleEndian.Uint32(raw[4*i:])))
			}
		case "FP64":
			for i := range out {
				out[i] = math.Float64frombits(binary.LittleEndian.Uint64(raw[8*i:]))
			}
		case "INT32":
			for i := range out {
				out[i] = float64(int32(binary.LittleEndian.Uint32(raw[4*i:])))
			}
		case "INT64":
			for i := range out {
				out[i] = float64(int64(binary.LittleEndian.Uint64(raw[8*i:])))
			}
		}
		return values, nil
	}
	d := in.Get("data")
	if d == nil {
		return values, badRequest(what + ` has no "data" (and no binary_data_size)`)
	}
	if d.Type() != fastjson.TypeArray {
		return values, badRequest(what + `: "data" must be an array`)
	}
	var err error
	values, err = flatten(d, 0, t, total, values, start, what)
	if err != nil {
		return values, err
	}
	if got := int64(len(values) - start); got != total {
		return values, badRequest(fmt.Sprintf("%s has %d elements in data, shape %s needs %d", what, got, t.shapeString(), total))
	}
	return values, nil
}

func shapeOf(dims []*fastjson.Value) string {
	parts := make([]string, len(dims))
	for i, d := range dims {
		parts[i] = d.String()
	}
	return "[" + strings.Join(parts, ", ") + "]"
}

func growValues(values []float64, n int) []float64 {
	if cap(values)-len(values) < n {
		grown := make([]float64, len(values), len(values)+n+len(values)/2)
		copy(grown, values)
		values = grown
	}
	return values[:len(values)+n]
}

// flatten appends the elements of a data array in row-major order. Nesting
// is bounded by the shape: an array can nest at most as deep as the tensor
// has dimensions, and a nested array holds exactly its dimension's count.
// It stops as soon as more elements than the shape needs are seen.
func flatten(d *fastjson.Value, depth int, t *tensorIn, total int64, values []float64, start int, what string) ([]float64, error) {
	items, _ := d.Array()
	if depth > 0 && int64(len(items)) != t.shape[depth] {
		return values, badRequest(fmt.Sprintf("%s: a nested data array at depth %d has %d elements, shape %s needs %d", what, depth, len(items), t.shapeString(), t.shape[depth]))
	}
	for _, item := range items {
		if item.Type() == fastjson.TypeArray {
			if depth+1 >= t.dims {
				return values, badRequest(fmt.Sprintf("%s: data is nested deeper than shape %s", what, t.shapeString()))
			}
			var err error
			if values, err = flatten(item, depth+1, t, total, values, start, what); err != nil {
				return values, err
			}
			continue
		}
		if int64(len(values)-start) >= total {
			return values, badRequest(fmt.Sprintf("%s has more elements in data than shape %s holds", what, t.shapeString()))
		}
		f, err := item.Float64()
		if err != nil || item.Type() != fastjson.TypeNumber {
			return values, badRequest(fmt.Sprintf("%s: element %d is %s, not a number", what, len(values)-start, item.Type()))
		}
		switch t.datatype {
		case "FP32":
			f = float64(float32(f))
		case "INT32", "INT64":
			if f != math.Trunc(f) {
				return values, badRequest(fmt.Sprintf("%s: element %d is %g, not a whole number as %s needs", what, len(values)-start, f, t.datatype))
			}
		}
		values = append(values, f)
	}
	return values, nil
}

// rows maps the parsed inputs to applications for a version with the given
// input tensor and signature features: one [N, F] tensor named as the model's
// input, columns in signature order, or one [N] (or [N, 1]) tensor per
// signature column. Fields the signature does not use stay zero.
func rows(b *inferBody, input models.TensorInfo, features []schemas.Feature, apps []schemas.Application) ([]schemas.Application, error) {
	width := len(features)
	expect := func() string {
		cols := make([]string, width)
		for i, f := range features {
			cols[i] = f.String()
		}
		return fmt.Sprintf("the model takes %s FP32 [N, %d] (columns %s) or one [N] tensor per column", quote(input.Name), width, strings.Join(cols, ", "))
	}
	if len(b.inputs) == 1 && string(b.inputs[0].name) == input.Name {
		t := &b.inputs[0]
		if t.dims != 2 || t.shape[1] != int64(width) {
			return nil, badRequest(fmt.Sprintf("input %s has shape %s; %s", quote(input.Name), t.shapeString(), expect()))
		}
		n := int(t.shape[0])
		if err := checkRows(n); err != nil {
			return nil, err
		}
		apps = growApps(apps, n)
		for i := range apps {
			for j, f := range features {
				apps[i].Set(f, t.values[i*width+j])
			}
		}
		return apps, nil
	}
	// One tensor per column.
	var columns [len(schemas.Features)]*tensorIn
	n := -1
	for i := range b.inputs {
		t := &b.inputs[i]
		col := -1
		for j, f := range features {
			if string(t.name) == f.String() {
				col = j
				break
			}
		}
		if col < 0 {
			return nil, badRequest("unknown input " + quote(string(t.name)) + "; " + expect())
		}
		if columns[col] != nil {
			return nil, badRequest("input " + quote(string(t.name)) + " is given twice")
		}
		if !(t.dims == 1 || (t.dims == 2 && t.shape[1] == 1)) {
			return nil, badRequest(fmt.Sprintf("input %s has shape %s; a column is [N] or [N, 1]", quote(string(t.name)), t.shapeString()))
		}
		if n >= 0 && int(t.shape[0]) != n {
			return nil, badRequest(fmt.Sprintf("input %s has %d rows, the others %d", quote(string(t.name)), t.shape[0], n))
		}
		n = int(t.shape[0])
		columns[col] = t
	}
	for j, f := range features {
		if columns[j] == nil {
			return nil, badRequest("missing input " + quote(f.String()) + "; " + expect())
		}
	}
	if err := checkRows(n); err != nil {
		return nil, err
	}
	apps = growApps(apps, n)
	for i := range apps {
		for j, f := range features {
			apps[i].Set(f, columns[j].values[i])
		}
	}
	return apps, nil
}

func checkRows(n int) error {
	if n == 0 {
		return badRequest("the input has no rows")
	}
	if n > schemas.MaxBatch {
		return badRequest(fmt.Sprintf("%d rows: at most %d in one request", n, schemas.MaxBatch))
	}
	return nil
}

func growApps(apps []schemas.Application, n int) []schemas.Application {
	if cap(apps) < n {
		apps = make([]schemas.Application, n)
	}
	apps = apps[:n]
	for i := range apps {
		apps[i] = schemas.Application{}
	}
	return apps
}

// validate checks every row against the contract's bounds, as /v1/predict
// does; only the fields the model reads are checked (the others are zero).
func validate(apps []schemas.Application, features []schemas.Feature) error {
	for i := range apps {
		err := apps[i].Validate()
		if err == nil {
			continue
		}
		fields, ok := err.(schemas.FieldErrors)
		if !ok {
			return badRequest(fmt.Sprintf("row %d: %v", i, err))
		}
		for _, f := range features {
			if msg, bad := fields[f.String()]; bad {
				return badRequest(fmt.Sprintf("row %d: %s %s (the same bounds as /v1/predict)", i, f, msg))
			}
		}
		if msg, bad := fields["application_id"]; bad {
			return badRequest(ApplicationIDParameter + " " + msg)
		}
	}
	return nil
}
