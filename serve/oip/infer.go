package oip

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strconv"

	"github.com/gofiber/fiber/v2"

	"mlservice/schemas"
	"mlservice/serve/decision"
	"mlservice/serve/models"
	"mlservice/serve/routing"
)

// inferScratch is the per-request working memory, pooled.
type inferScratch struct {
	body   inferBody
	values []float64
	apps   []schemas.Application
	inputs [][]byte
	raw    []byte // the rows' JSON objects, one buffer
	out    []byte
	sel    []selected
}

// selected is one output of the response.
type selected struct {
	name     string
	datatype string
	binary   bool
	label    bool      // the label output
	values   []float32 // probability or a contribution
}

// maxElements bounds one input tensor: MaxBatch rows of every field.
const maxElements = int64(schemas.MaxBatch) * int64(len(schemas.Features))

// maxHeaderValues bounds the JSON values of a request's JSON before it is
// parsed: the elements of its tensors and room for names, shapes,
// parameters and outputs.
const maxHeaderValues = int(maxElements) + 1<<12

func (h *Handler) infer(c *fiber.Ctx) error {
	m, err := h.model(c)
	if err != nil {
		return err
	}
	body := c.Body()
	if len(body) > h.cfg.BodyLimit {
		return &Error{Status: http.StatusRequestEntityTooLarge,
			Message: fmt.Sprintf("the request body is %d bytes, over the %d this server takes", len(body), h.cfg.BodyLimit)}
	}
	s, _ := h.scratch.Get().(*inferScratch)
	if s == nil {
		s = &inferScratch{}
	}
	defer h.scratch.Put(s)
	p := h.parsers.Get(len(body))
	defer h.parsers.Put(p, len(body))

	headerLen := c.Request().Header.Peek(headerInferenceHeaderContentLength)
	if headerLen != nil && len(headerLen) == 0 {
		headerLen = nil
	}
	s.values, err = parseInfer(p, body, headerLen, maxElements, &s.body, s.values)
	if err != nil {
		return err
	}
	b := &s.body

	// The version the request addresses (the champion when none is named)
	// says how the input tensor is named and in which order its columns
	// are; the rows become applications, so whichever version the route
	// picks reads its own columns.
	version := c.Params("version")
	_, route, err := h.liveVersion(c, m)
	if err != nil {
		return err
	}
	if version != "" && route.Variant == routing.Shadow {
		return shadowOnly(m, version)
	}
	input := inputOf(route.Version)
	features := route.Version.Features
	if s.apps, err = rows(b, input, features, s.apps); err != nil {
		return err
	}
	applicationID := ""
	if b.hasApplicationID {
		applicationID = string(b.applicationID)
		if err := checkApplicationID(applicationID); err != nil {
			return err
		}
		if len(s.apps) == 1 {
			s.apps[0].ApplicationID = applicationID
		}
	}
	if err := validate(s.apps, features); err != nil {
		return err
	}
	var outputs []string
	if b.hasOutputs {
		_, outs := Describe(route.Version)
		outputs = make([]string, 0, len(b.outputs))
		for _, o := range b.outputs {
			name := string(o.name)
			if !hasTensor(outs, name) {
				names := make([]string, len(outs))
				for i, ti := range outs {
					names[i] = ti.Name
				}
				return badRequest(fmt.Sprintf("unknown output %s; model %s has %v", quote(name), quote(m.Name), names))
			}
			if slices.Contains(outputs, name) {
				return badRequest(fmt.Sprintf("output %s is requested twice", quote(name)))
			}
			outputs = append(outputs, name)
		}
	}

	s.raw, s.inputs = applicationInputs(s.apps, features, s.raw[:0], s.inputs[:0])
	req := Request{
		RequestID:     requestID(c),
		ApplicationID: applicationID,
		Version:       version,
		Applications:  s.apps,
		Inputs:        s.inputs,
		Features:      features,
		Outputs:       outputs,
	}
	res, err := m.Decider.Decide(c.UserContext(), &req)
	switch {
	case errors.Is(err, ErrUnknownVersion):
		return &Error{Status: http.StatusNotFound, Message: "model " + quote(m.Name) + " has no live version " + quote(version)}
	case errors.Is(err, ErrShadowOnly):
		return shadowOnly(m, version)
	case errors.Is(err, ErrNotReady):
		return notReady(m, "no champion loaded")
	case err != nil:
		var e *Error
		if errors.As(err, &e) {
			return e
		}
		return err
	}
	var jsonLen int
	s.out, jsonLen = encode(s, b, res)
	if jsonLen < len(s.out) {
		c.Set(headerInferenceHeaderContentLength, strconv.Itoa(jsonLen))
		c.Set(fiber.HeaderContentType, fiber.MIMEOctetStream)
	} else {
		c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
	}
	c.Response().SetBody(s.out) // copies: s.out goes back to the pool
	return nil
}

// requestID is the request's id, as the request-id middleware set it.
func requestID(c *fiber.Ctx) string {
	return string(c.Response().Header.Peek(fiber.HeaderXRequestID))
}

// checkApplicationID applies the contract's rule for application ids.
func checkApplicationID(id string) error {
	if id == "" {
		return badRequest(ApplicationIDParameter + " must not be empty (leave it out to route at random)")
	}
	a := schemas.Application{ApplicationID: id, Income: 1, CreditScore: 500, LoanAmount: 1}
	if err := a.Validate(); err != nil {
		if fields, ok := err.(schemas.FieldErrors); ok {
			if msg, bad := fields["application_id"]; bad {
				return badRequest(ApplicationIDParameter + " " + msg)
			}
		}
	}
	return nil
}

// inputOf is the version's one input tensor.
func inputOf(v *models.Version) models.TensorInfo {
	in, _, ok := v.Tensors()
	if ok && len(in) == 1 {
		return in[0]
	}
	return models.TensorInfo{Name: "features", DataType: "FP32", Shape: []int64{-1, int64(len(v.Features))}}
}

// applicationInputs writes each row as the JSON object of the fields the
// model reads, for the decision record.
func applicationInputs(apps []schemas.Application, features []schemas.Feature, raw []byte, inputs [][]byte) ([]byte, [][]byte) {
	offsets := make([]int, 0, len(apps)+1)
	for i := range apps {
		offsets = append(offsets, len(raw))
		raw = append(raw, '{')
		if apps[i].ApplicationID != "" {
			raw = append(raw, `"application_id":`...)
			raw = appendString(raw, apps[i].ApplicationID)
			raw = append(raw, ',')
		}
		for j, f := range features {
			if j > 0 {
				raw = append(raw, ',')
			}
			raw = append(raw, '"')
			raw = append(raw, f.String()...)
			raw = append(raw, `":`...)
			raw = appendNumber(raw, apps[i].Value(f))
		}
		raw = append(raw, '}')
	}
	offsets = append(offsets, len(raw))
	for i := range apps {
		inputs = append(inputs, raw[offsets[i]:offsets[i+1]:offsets[i+1]])
	}
	return raw, inputs
}

// appendNumber writes a finite float64 as JSON: whole numbers (most of an
// application's fields) as integers, without the float formatter's cost.
func appendNumber(b []byte, v float64) []byte {
	if v == math.Trunc(v) && math.Abs(v) < 1<<53 {
		return strconv.AppendInt(b, int64(v), 10)
	}
	return strconv.AppendFloat(b, v, 'g', -1, 64)
}

// encode writes the response: JSON, followed by the binary outputs when the
// request asked for any; jsonLen is where the JSON ends.
func encode(s *inferScratch, b *inferBody, res *Result) (out []byte, jsonLen int) {
	n := len(res.Probability)
	sel := s.sel[:0]
	add := func(name string, binary int8) {
		bin := b.binaryOutput
		if binary >= 0 {
			bin = binary == 1
		}
		switch {
		case name == LabelOutput:
			sel = append(sel, selected{name: LabelOutput, datatype: "INT64", binary: bin, label: true})
		case name == ProbabilityOutput:
			sel = append(sel, selected{name: ProbabilityOutput, datatype: "FP32", binary: bin, values: res.Probability})
		default:
			// The path picked a version that has every requested output
			// (Request.Outputs); with none requested, the version's own.
			if v, ok := res.Contributions[name]; ok {
				sel = append(sel, selected{name: name, datatype: "FP32", binary: bin, values: v})
			}
		}
	}
	if b.hasOutputs {
		for _, o := range b.outputs {
			add(string(o.name), o.binary)
		}
	} else {
		add(LabelOutput, -1)
		add(ProbabilityOutput, -1)
		names := make([]string, 0, len(res.Contributions))
		for name := range res.Contributions {
			names = append(names, name)
		}
		slices.Sort(names)
		for _, name := range names {
			add(name, -1)
		}
	}
	s.sel = sel

	out = s.out[:0]
	out = append(out, `{"model_name":`...)
	out = appendString(out, res.Model)
	out = append(out, `,"model_version":`...)
	out = appendString(out, res.Version)
	if b.hasID {
		out = append(out, `,"id":`...)
		out = appendStringBytes(out, b.id)
	}
	out = append(out, `,"parameters":{"variant":`...)
	out = appendString(out, string(res.Variant))
	switch {
	case n == 1 && len(res.DecisionIDs) == 1:
		out = append(out, `,"decision_id":`...)
		out = appendString(out, res.DecisionIDs[0])
	case n > 1 && len(res.DecisionIDs) == n:
		// One string, comma-separated: the protocol's parameters are scalars
		// (clients that check the response refuse an array).
		out = append(out, `,"decision_ids":"`...)
		for i, id := range res.DecisionIDs {
			if i > 0 {
				out = append(out, ',')
			}
			out = append(out, id...) // made by decision.NewIDs: hex digits and hyphens
		}
		out = append(out, '"')
	}
	if n == 1 && res.ApplicationID != "" {
		out = append(out, `,"application_id":`...)
		out = appendString(out, res.ApplicationID)
	}
	out = append(out, `},"outputs":[`...)
	anyBinary := false
	for i, o := range sel {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, `{"name":`...)
		out = appendString(out, o.name)
		out = append(out, `,"datatype":"`...)
		out = append(out, o.datatype...)
		out = append(out, `","shape":[`...)
		out = strconv.AppendInt(out, int64(n), 10)
		out = append(out, ']')
		if o.binary {
			anyBinary = true
			size := 4 * n
			if o.label {
				size = 8 * n
			}
			out = append(out, `,"parameters":{"binary_data_size":`...)
			out = strconv.AppendInt(out, int64(size), 10)
			out = append(out, `}}`...)
			continue
		}
		out = append(out, `,"data":[`...)
		for j := 0; j < n; j++ {
			if j > 0 {
				out = append(out, ',')
			}
			if o.label {
				if res.Approve[j] {
					out = append(out, '1')
				} else {
					out = append(out, '0')
				}
				continue
			}
			out = appendFloat32(out, o.values[j])
		}
		out = append(out, "]}"...)
	}
	out = append(out, "]}"...)
	jsonLen = len(out)
	if !anyBinary {
		return out, jsonLen
	}
	for _, o := range sel {
		if !o.binary {
			continue
		}
		for j := 0; j < n; j++ {
			if o.label {
				var l uint64
				if res.Approve[j] {
					l = 1
				}
				out = binary.LittleEndian.AppendUint64(out, l)
				continue
			}
			out = binary.LittleEndian.AppendUint32(out, math.Float32bits(o.values[j]))
		}
	}
	return out, jsonLen
}

// appendFloat32 writes a float32 as a JSON number. A model's outputs are
// finite; should one not be, it is written as 0 rather than as invalid JSON.
func appendFloat32(b []byte, f float32) []byte {
	if math.IsNaN(float64(f)) || math.IsInf(float64(f), 0) {
		return append(b, '0')
	}
	return strconv.AppendFloat(b, float64(f), 'g', -1, 32)
}

// appendString writes s as a JSON string: plain printable ASCII as it is,
// anything else through encoding/json (ids and names are nearly always plain).
func appendString(b []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			raw, _ := json.Marshal(s)
			return append(b, raw...)
		}
	}
	b = append(b, '"')
	b = append(b, s...)
	return append(b, '"')
}

func appendStringBytes(b []byte, s []byte) []byte { return appendString(b, string(s)) }

// Path is the Decider over the shared decision path (serve/decision): each
// /v2 row is routed, scored, recorded, observed and mirrored exactly as a
// /v1 decision is. A request is answered by one version: its rows go to one
// variant (by the request's application id) or to the pinned version.
type Path struct {
	Decisions *decision.Path
}

// Decide implements Decider.
func (p *Path) Decide(ctx context.Context, req *Request) (*Result, error) {
	n := len(req.Applications)
	bufs := decision.GetBuffers(n)
	defer bufs.Put() // Result copies what it needs
	ins, out, errs := bufs.Ins, bufs.Out, bufs.Errs
	for i := range req.Applications {
		ins[i].Application = req.Applications[i]
		if i < len(req.Inputs) {
			ins[i].JSON = req.Inputs[i]
		}
	}
	opt := decision.Options{Version: req.Version, Together: true, RouteKey: req.ApplicationID, Fits: req.fits}
	switch err := p.Decisions.DecideWith(ctx, req.RequestID, opt, ins, out, errs); {
	case errors.Is(err, decision.ErrUnknownVersion):
		return nil, ErrUnknownVersion
	case errors.Is(err, decision.ErrShadowOnly):
		return nil, ErrShadowOnly
	case errors.Is(err, decision.ErrNotReady):
		if req.Version != "" {
			return nil, ErrUnknownVersion
		}
		return nil, ErrNotReady
	case errors.Is(err, decision.ErrNoVersionFits):
		return nil, &Error{Status: http.StatusServiceUnavailable, Message: "the live model versions changed while the request was read; retry"}
	case errors.Is(err, decision.ErrUnrecorded):
		return nil, &Error{Status: http.StatusServiceUnavailable, Message: decision.UnrecordedAnswer}
	case errors.Is(err, decision.ErrBadScore), errors.Is(err, decision.ErrNoReasons):
		row := slices.IndexFunc(errs, func(e error) bool { return e != nil })
		why := "the model gave no finite score"
		if errors.Is(errs[row], decision.ErrNoReasons) {
			why = "the model declined it with no reason it can give"
		}
		return nil, &Error{Status: http.StatusUnprocessableEntity, Message: fmt.Sprintf("row %d: %s; no row of the request is decided", row, why)}
	case err != nil:
		return nil, err
	}
	res := &Result{Model: out[0].Model, Version: out[0].Version, Variant: routing.Variant(out[0].Variant),
		Probability: make([]float32, n), Approve: make([]bool, n), DecisionIDs: make([]string, n)}
	if n == 1 {
		res.ApplicationID = out[0].ApplicationID
	}
	for i := range out {
		res.Probability[i], res.Approve[i], res.DecisionIDs[i] = out[i].Probability, out[i].Approve, out[i].ID
	}
	// One version answered every row: its characteristics are all rows'.
	if chars := out[0].Characteristics; len(chars) > 0 {
		res.Contributions = make(map[string][]float32, len(chars))
		values := make([]float32, n*len(chars))
		for c, name := range chars {
			column := values[c*n : (c+1)*n : (c+1)*n]
			for i := range out {
				column[i] = out[i].Contributions[c]
			}
			res.Contributions["contrib_"+name] = column // the ONNX output it came from
		}
	}
	return res, nil
}
