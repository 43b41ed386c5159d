// Package inference is the one package that talks to ONNX Runtime (through cgo).
// It opens a loan model's ONNX file and scores rows of float32 features; what
// the columns mean is the caller's business (see serve/models).
//
// A model must take one float32 input of shape [N, F] and produce "label"
// (int64 [N]) and the probability of approval, either as "probability"
// (float32 [N]; a graph MLflow's pyfunc can also serve) or as "probabilities"
// (float32 [N, 2], column 1 = approve; what skl2onnx writes for a classifier
// converted with zipmap disabled).
package inference

import (
	"errors"
	"fmt"
	"os"
	"sync"

	ort "github.com/yalue/onnxruntime_go"
)

// Output names the models must have.
const (
	LabelOutput         = "label"
	ProbabilityOutput   = "probability"   // float32 [N]
	ProbabilitiesOutput = "probabilities" // float32 [N, 2]
)

var (
	// ErrNotInitialized means Init has not run.
	ErrNotInitialized = errors.New("inference: ONNX Runtime is not initialized")
	// ErrUnsupportedModel means the ONNX graph does not have the inputs and
	// outputs a loan model must have.
	ErrUnsupportedModel = errors.New("inference: unsupported model")
)

var initOnce struct {
	sync.Mutex
	done bool
	err  error
}

// Init loads the ONNX Runtime shared library and creates the process-wide
// environment. It is safe to call more than once; only the first call's
// library path counts.
func Init(libraryPath string) error {
	initOnce.Lock()
	defer initOnce.Unlock()
	if initOnce.done {
		return initOnce.err
	}
	initOnce.done = true
	if libraryPath == "" {
		initOnce.err = errors.New("no ONNX Runtime library configured: set ONNXRUNTIME_SHARED_LIBRARY_PATH or run `make run`, which fetches it")
		return initOnce.err
	}
	if _, err := os.Stat(libraryPath); err != nil {
		initOnce.err = fmt.Errorf("ONNX Runtime library %s: %w (set ONNXRUNTIME_SHARED_LIBRARY_PATH or run scripts/onnxruntime.sh)", libraryPath, err)
		return initOnce.err
	}
	ort.SetSharedLibraryPath(libraryPath)
	if err := ort.InitializeEnvironment(ort.WithLogLevelError()); err != nil {
		initOnce.err = fmt.Errorf("ONNX Runtime library %s: %w", libraryPath, err)
		return initOnce.err
	}
	_ = ort.DisableTelemetry()
	return nil
}

// Version reports the loaded ONNX Runtime version.
func Version() string {
	if !ort.IsInitialized() {
		return ""
	}
	return ort.GetVersion()
}

// Options are the session settings. They are chosen for a server that runs
// many small requests concurrently on few cores: parallelism comes from
// concurrent requests, so one intra-op thread per run and no spinning threads
// that would steal the CPU from the HTTP server.
type Options struct {
	// IntraOpThreads is the number of threads one run may use (default 1).
	IntraOpThreads int
	// FreeRunners caps how many idle one-row runners a session keeps (default 64).
	FreeRunners int
}

// Session scores rows with one ONNX model. It is safe for concurrent use.
type Session struct {
	ort     *ort.DynamicAdvancedSession
	columns int
	// probWidth is 1 for a "probability" output, 2 for "probabilities";
	// the probability of approval is the last value of each row.
	probWidth int
	// free holds idle one-row runners whose ORT tensors are created once and
	// reused, so the common single-application request allocates no native
	// memory. A channel, not a sync.Pool: a pool may drop runners without
	// releasing their native values.
	free chan *runner
	// batchBuffers recycles the Go-side output slices of batch runs.
	batchBuffers sync.Pool
	// inputs and outputs describe the graph as ONNX Runtime reports it.
	inputs, outputs []Tensor
}

// Tensor describes one input or output of a model: its name, element type in
// the Open Inference Protocol's spelling (FP32, INT64, ...) and shape, with -1
// for a dimension of any size.
type Tensor struct {
	Name     string
	DataType string
	Shape    []int64
}

// Tensors describes the model's inputs and outputs.
func (s *Session) Tensors() (inputs, outputs []Tensor) { return s.inputs, s.outputs }

func describe(infos []ort.InputOutputInfo) []Tensor {
	out := make([]Tensor, 0, len(infos))
	for _, info := range infos {
		if info.OrtValueType != ort.ONNXTypeTensor {
			continue
		}
		shape := make([]int64, len(info.Dimensions))
		for i, d := range info.Dimensions {
			if d <= 0 {
				d = -1
			}
			shape[i] = d
		}
		out = append(out, Tensor{Name: info.Name, DataType: dataTypeName(info.DataType), Shape: shape})
	}
	return out
}

// dataTypeName spells an ONNX element type the way the Open Inference
// Protocol does.
func dataTypeName(t ort.TensorElementDataType) string {
	switch t {
	case ort.TensorElementDataTypeFloat:
		return "FP32"
	case ort.TensorElementDataTypeDouble:
		return "FP64"
	case ort.TensorElementDataTypeFloat16:
		return "FP16"
	case ort.TensorElementDataTypeBFloat16:
		return "BF16"
	case ort.TensorElementDataTypeInt8:
		return "INT8"
	case ort.TensorElementDataTypeInt16:
		return "INT16"
	case ort.TensorElementDataTypeInt32:
		return "INT32"
	case ort.TensorElementDataTypeInt64:
		return "INT64"
	case ort.TensorElementDataTypeUint8:
		return "UINT8"
	case ort.TensorElementDataTypeUint16:
		return "UINT16"
	case ort.TensorElementDataTypeUint32:
		return "UINT32"
	case ort.TensorElementDataTypeUint64:
		return "UINT64"
	case ort.TensorElementDataTypeBool:
		return "BOOL"
	case ort.TensorElementDataTypeString:
		return "BYTES"
	}
	return t.String()
}

// runner is one set of pre-created tensors for a one-row run.
type runner struct {
	input  *ort.Tensor[float32]
	labels *ort.Tensor[int64]
	probs  *ort.Tensor[float32]
	ins    []ort.Value
	outs   []ort.Value
}

func (r *runner) destroy() {
	r.input.Destroy()
	r.labels.Destroy()
	r.probs.Destroy()
}

type batchOutputs struct {
	labels []int64
	probs  []float32
}

// Open loads the model at path and checks its inputs and outputs.
func Open(path string, opts Options) (*Session, error) {
	if !ort.IsInitialized() {
		return nil, ErrNotInitialized
	}
	if opts.IntraOpThreads <= 0 {
		opts.IntraOpThreads = 1
	}
	if opts.FreeRunners <= 0 {
		opts.FreeRunners = 64
	}
	inputs, outputs, err := ort.GetInputOutputInfo(path)
	if err != nil {
		return nil, fmt.Errorf("%w: reading %s: %v", ErrUnsupportedModel, path, err)
	}
	columns, probOutput, err := checkIO(inputs, outputs)
	if err != nil {
		return nil, err
	}
	probWidth := 2
	if probOutput == ProbabilityOutput {
		probWidth = 1
	}
	so, err := ort.NewSessionOptions()
	if err != nil {
		return nil, fmt.Errorf("inference: session options: %w", err)
	}
	defer so.Destroy()
	for _, set := range []func() error{
		func() error { return so.SetIntraOpNumThreads(opts.IntraOpThreads) },
		func() error { return so.SetInterOpNumThreads(1) },
		func() error { return so.SetExecutionMode(ort.ExecutionModeSequential) },
		func() error { return so.SetGraphOptimizationLevel(ort.GraphOptimizationLevelEnableAll) },
		func() error { return so.AddSessionConfigEntry("session.intra_op.allow_spinning", "0") },
	} {
		if err := set(); err != nil {
			return nil, fmt.Errorf("inference: session options: %w", err)
		}
	}
	s, err := ort.NewDynamicAdvancedSession(path, []string{inputs[0].Name},
		[]string{LabelOutput, probOutput}, so)
	if err != nil {
		return nil, fmt.Errorf("%w: opening %s: %v", ErrUnsupportedModel, path, err)
	}
	return &Session{ort: s, columns: columns, probWidth: probWidth, free: make(chan *runner, opts.FreeRunners),
		inputs: describe(inputs), outputs: describe(outputs)}, nil
}

// checkIO returns the number of feature columns the model takes and the name
// of its probability output, or why the model cannot serve loan applications.
func checkIO(inputs, outputs []ort.InputOutputInfo) (int, string, error) {
	if len(inputs) != 1 {
		return 0, "", fmt.Errorf("%w: want one input tensor, model has %d", ErrUnsupportedModel, len(inputs))
	}
	in := inputs[0]
	if in.OrtValueType != ort.ONNXTypeTensor || in.DataType != ort.TensorElementDataTypeFloat || len(in.Dimensions) != 2 {
		return 0, "", fmt.Errorf("%w: input %s, want a float32 tensor [N, F]", ErrUnsupportedModel, in.String())
	}
	columns := int(in.Dimensions[1])
	if columns <= 0 {
		return 0, "", fmt.Errorf("%w: input %s has no fixed feature count", ErrUnsupportedModel, in.String())
	}
	found := map[string]ort.InputOutputInfo{}
	for _, out := range outputs {
		found[out.Name] = out
	}
	isTensor := func(name string, dt ort.TensorElementDataType, dims int) bool {
		o, ok := found[name]
		return ok && o.OrtValueType == ort.ONNXTypeTensor && o.DataType == dt && len(o.Dimensions) == dims
	}
	if !isTensor(LabelOutput, ort.TensorElementDataTypeInt64, 1) {
		return 0, "", fmt.Errorf("%w: want an int64 [N] output named %q", ErrUnsupportedModel, LabelOutput)
	}
	switch {
	case isTensor(ProbabilityOutput, ort.TensorElementDataTypeFloat, 1):
		return columns, ProbabilityOutput, nil
	case isTensor(ProbabilitiesOutput, ort.TensorElementDataTypeFloat, 2):
		return columns, ProbabilitiesOutput, nil
	}
	return 0, "", fmt.Errorf("%w: want a float32 output %q [N] or %q [N, 2] (ZipMap disabled)",
		ErrUnsupportedModel, ProbabilityOutput, ProbabilitiesOutput)
}

// Columns is the number of features per row.
func (s *Session) Columns() int { return s.columns }

// Score scores len(probs) rows of x (row-major, Columns() wide). It writes the
// probability of approval and the model's decision for each row.
func (s *Session) Score(x []float32, probs []float32, approve []bool) error {
	rows := len(probs)
	if rows == 0 || len(x) != rows*s.columns || len(approve) != rows {
		return fmt.Errorf("inference: %d values for %d rows of %d columns", len(x), rows, s.columns)
	}
	if rows == 1 {
		return s.scoreOne(x, probs, approve)
	}
	return s.scoreBatch(x, probs, approve)
}

func (s *Session) scoreOne(x []float32, probs []float32, approve []bool) error {
	r, err := s.getRunner()
	if err != nil {
		return err
	}
	copy(r.input.GetData(), x)
	if err := s.ort.Run(r.ins, r.outs); err != nil {
		r.destroy()
		return fmt.Errorf("inference: run: %w", err)
	}
	probs[0] = r.probs.GetData()[s.probWidth-1]
	approve[0] = r.labels.GetData()[0] == 1
	s.putRunner(r)
	return nil
}

func (s *Session) getRunner() (*runner, error) {
	select {
	case r := <-s.free:
		return r, nil
	default:
	}
	r := &runner{}
	var err error
	if r.input, err = ort.NewEmptyTensor[float32](ort.NewShape(1, int64(s.columns))); err != nil {
		return nil, fmt.Errorf("inference: %w", err)
	}
	if r.labels, err = ort.NewEmptyTensor[int64](ort.NewShape(1)); err != nil {
		r.input.Destroy()
		return nil, fmt.Errorf("inference: %w", err)
	}
	if r.probs, err = ort.NewEmptyTensor[float32](s.probShape(1)); err != nil {
		r.input.Destroy()
		r.labels.Destroy()
		return nil, fmt.Errorf("inference: %w", err)
	}
	r.ins = []ort.Value{r.input}
	r.outs = []ort.Value{r.labels, r.probs}
	return r, nil
}

func (s *Session) putRunner(r *runner) {
	select {
	case s.free <- r:
	default:
		r.destroy()
	}
}

// scoreBatch wraps the caller's rows in an input tensor (no copy) and reuses
// Go-side output buffers; the three ORT values are released before returning.
func (s *Session) scoreBatch(x []float32, probs []float32, approve []bool) error {
	rows := len(probs)
	out, _ := s.batchBuffers.Get().(*batchOutputs)
	if out == nil {
		out = &batchOutputs{}
	}
	defer s.batchBuffers.Put(out)
	if cap(out.labels) < rows {
		out.labels = make([]int64, rows)
		out.probs = make([]float32, 2*rows) // room for either output shape
	}
	in, err := ort.NewTensor(ort.NewShape(int64(rows), int64(s.columns)), x)
	if err != nil {
		return fmt.Errorf("inference: %w", err)
	}
	defer in.Destroy()
	labels, err := ort.NewTensor(ort.NewShape(int64(rows)), out.labels[:rows])
	if err != nil {
		return fmt.Errorf("inference: %w", err)
	}
	defer labels.Destroy()
	p, err := ort.NewTensor(s.probShape(rows), out.probs[:s.probWidth*rows])
	if err != nil {
		return fmt.Errorf("inference: %w", err)
	}
	defer p.Destroy()
	if err := s.ort.Run([]ort.Value{in}, []ort.Value{labels, p}); err != nil {
		return fmt.Errorf("inference: run: %w", err)
	}
	pd, ld := p.GetData(), labels.GetData()
	for i := range rows {
		probs[i] = pd[s.probWidth*i+s.probWidth-1]
		approve[i] = ld[i] == 1
	}
	return nil
}

func (s *Session) probShape(rows int) ort.Shape {
	if s.probWidth == 1 {
		return ort.NewShape(int64(rows))
	}
	return ort.NewShape(int64(rows), 2)
}

// Close releases the session and its idle runners. The caller makes sure no
// Score call is in flight (serve/models counts references for that).
func (s *Session) Close() error {
	for {
		select {
		case r := <-s.free:
			r.destroy()
		default:
			return s.ort.Destroy()
		}
	}
}
