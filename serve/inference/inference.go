// Package inference is the one package that talks to ONNX Runtime (through cgo).
// It opens a loan model's ONNX file and scores rows of float32 features; what
// the columns mean is the caller's business (see serve/models).
//
// A model must take one float32 input of shape [N, F] and produce "label"
// (int64 [N]) and the probability of approval, either as "probability"
// (float32 [N]; a graph MLflow's pyfunc can also serve) or as "probabilities"
// (float32 [N, 2], column 1 = approve; what skl2onnx writes for a classifier
// converted with zipmap disabled). A scorecard-shaped model also outputs one
// "contrib_<characteristic>" (float32 [N]) per characteristic: its log-odds
// contribution, read in the same run.
package inference

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"

	ort "github.com/yalue/onnxruntime_go"

	"mlservice/serve/models"
)

// Output names the models must have.
const (
	LabelOutput         = "label"
	ProbabilityOutput   = "probability"   // float32 [N]
	ProbabilitiesOutput = "probabilities" // float32 [N, 2]
	// ContributionPrefix starts the name of each optional contribution
	// output, float32 [N]: contrib_income is the characteristic "income".
	ContributionPrefix = "contrib_"
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
	// characteristics name the contrib_* outputs, in the run's output order
	// after label and probability.
	characteristics []string
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
// for a dimension of any size. It is models.TensorInfo, so a Session is a
// models.Describer.
type Tensor = models.TensorInfo

var (
	_ models.ContributionScorer = (*Session)(nil)
	_ models.Describer          = (*Session)(nil)
)

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
	input   *ort.Tensor[float32]
	labels  *ort.Tensor[int64]
	probs   *ort.Tensor[float32]
	contrib []*ort.Tensor[float32] // one [1] tensor per characteristic
	ins     []ort.Value
	outs    []ort.Value
}

func (r *runner) destroy() {
	for _, v := range append(r.ins, r.outs...) {
		if v != nil {
			v.Destroy()
		}
	}
}

type batchOutputs struct {
	labels  []int64
	probs   []float32
	contrib []float32 // characteristic-major: contrib[c*rows+i]
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
	columns, probOutput, characteristics, err := checkIO(inputs, outputs)
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
	names := []string{LabelOutput, probOutput}
	for _, c := range characteristics {
		names = append(names, ContributionPrefix+c)
	}
	s, err := ort.NewDynamicAdvancedSession(path, []string{inputs[0].Name}, names, so)
	if err != nil {
		return nil, fmt.Errorf("%w: opening %s: %v", ErrUnsupportedModel, path, err)
	}
	return &Session{ort: s, columns: columns, probWidth: probWidth, characteristics: characteristics,
		free: make(chan *runner, opts.FreeRunners), inputs: describe(inputs), outputs: describe(outputs)}, nil
}

// checkIO returns the number of feature columns the model takes, the name
// of its probability output and the characteristics of its contrib_* outputs,
// or why the model cannot serve loan applications.
func checkIO(inputs, outputs []ort.InputOutputInfo) (int, string, []string, error) {
	if len(inputs) != 1 {
		return 0, "", nil, fmt.Errorf("%w: want one input tensor, model has %d", ErrUnsupportedModel, len(inputs))
	}
	in := inputs[0]
	if in.OrtValueType != ort.ONNXTypeTensor || in.DataType != ort.TensorElementDataTypeFloat || len(in.Dimensions) != 2 {
		return 0, "", nil, fmt.Errorf("%w: input %s, want a float32 tensor [N, F]", ErrUnsupportedModel, in.String())
	}
	columns := int(in.Dimensions[1])
	if columns <= 0 {
		return 0, "", nil, fmt.Errorf("%w: input %s has no fixed feature count", ErrUnsupportedModel, in.String())
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
		return 0, "", nil, fmt.Errorf("%w: want an int64 [N] output named %q", ErrUnsupportedModel, LabelOutput)
	}
	var characteristics []string
	for _, out := range outputs {
		name, ok := strings.CutPrefix(out.Name, ContributionPrefix)
		if !ok {
			continue
		}
		if name == "" || !isTensor(out.Name, ort.TensorElementDataTypeFloat, 1) {
			return 0, "", nil, fmt.Errorf("%w: output %s, want a float32 tensor [N] named %s<characteristic>", ErrUnsupportedModel, out.String(), ContributionPrefix)
		}
		characteristics = append(characteristics, name)
	}
	switch {
	case isTensor(ProbabilityOutput, ort.TensorElementDataTypeFloat, 1):
		return columns, ProbabilityOutput, characteristics, nil
	case isTensor(ProbabilitiesOutput, ort.TensorElementDataTypeFloat, 2):
		return columns, ProbabilitiesOutput, characteristics, nil
	}
	return 0, "", nil, fmt.Errorf("%w: want a float32 output %q [N] or %q [N, 2] (ZipMap disabled)",
		ErrUnsupportedModel, ProbabilityOutput, ProbabilitiesOutput)
}

// Columns is the number of features per row.
func (s *Session) Columns() int { return s.columns }

// Characteristics names the model's contrib_* outputs (without the prefix),
// in the order ScoreContributions writes them; nil when it has none.
func (s *Session) Characteristics() []string { return s.characteristics }

// Score scores len(probs) rows of x (row-major, Columns() wide). It writes the
// probability of approval and the model's decision for each row.
func (s *Session) Score(x []float32, probs []float32, approve []bool) error {
	return s.score(x, probs, approve, nil)
}

// ScoreContributions is Score that also writes, from the same run, the
// contributions of each row into contrib (row-major, len(Characteristics())
// per row).
func (s *Session) ScoreContributions(x, probs []float32, approve []bool, contrib []float32) error {
	if len(contrib) != len(probs)*len(s.characteristics) {
		return fmt.Errorf("inference: %d contributions for %d rows of %d characteristics", len(contrib), len(probs), len(s.characteristics))
	}
	return s.score(x, probs, approve, contrib)
}

func (s *Session) score(x, probs []float32, approve []bool, contrib []float32) error {
	rows := len(probs)
	if rows == 0 || len(x) != rows*s.columns || len(approve) != rows {
		return fmt.Errorf("inference: %d values for %d rows of %d columns", len(x), rows, s.columns)
	}
	if rows == 1 {
		return s.scoreOne(x, probs, approve, contrib)
	}
	return s.scoreBatch(x, probs, approve, contrib)
}

func (s *Session) scoreOne(x, probs []float32, approve []bool, contrib []float32) error {
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
	for c := range contrib {
		contrib[c] = r.contrib[c].GetData()[0]
	}
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
	fail := func(err error) (*runner, error) {
		r.destroy()
		return nil, fmt.Errorf("inference: %w", err)
	}
	var err error
	if r.input, err = ort.NewEmptyTensor[float32](ort.NewShape(1, int64(s.columns))); err != nil {
		return nil, fmt.Errorf("inference: %w", err)
	}
	r.ins = []ort.Value{r.input}
	if r.labels, err = ort.NewEmptyTensor[int64](ort.NewShape(1)); err != nil {
		return fail(err)
	}
	r.outs = append(r.outs, r.labels)
	if r.probs, err = ort.NewEmptyTensor[float32](s.probShape(1)); err != nil {
		return fail(err)
	}
	r.outs = append(r.outs, r.probs)
	for range s.characteristics {
		t, err := ort.NewEmptyTensor[float32](ort.NewShape(1))
		if err != nil {
			return fail(err)
		}
		r.contrib = append(r.contrib, t)
		r.outs = append(r.outs, t)
	}
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
// Go-side output buffers; the ORT values are released before returning.
func (s *Session) scoreBatch(x, probs []float32, approve []bool, contrib []float32) error {
	rows := len(probs)
	k := len(s.characteristics)
	out, _ := s.batchBuffers.Get().(*batchOutputs)
	if out == nil {
		out = &batchOutputs{}
	}
	defer s.batchBuffers.Put(out)
	if cap(out.labels) < rows {
		out.labels = make([]int64, rows)
		out.probs = make([]float32, 2*rows) // room for either output shape
		out.contrib = make([]float32, k*rows)
	}
	values := make([]ort.Value, 0, 3+k)
	defer func() {
		for _, v := range values {
			v.Destroy()
		}
	}()
	in, err := ort.NewTensor(ort.NewShape(int64(rows), int64(s.columns)), x)
	if err != nil {
		return fmt.Errorf("inference: %w", err)
	}
	values = append(values, in)
	labels, err := ort.NewTensor(ort.NewShape(int64(rows)), out.labels[:rows])
	if err != nil {
		return fmt.Errorf("inference: %w", err)
	}
	values = append(values, labels)
	p, err := ort.NewTensor(s.probShape(rows), out.probs[:s.probWidth*rows])
	if err != nil {
		return fmt.Errorf("inference: %w", err)
	}
	values = append(values, p)
	for c := range k {
		t, err := ort.NewTensor(ort.NewShape(int64(rows)), out.contrib[c*rows:(c+1)*rows])
		if err != nil {
			return fmt.Errorf("inference: %w", err)
		}
		values = append(values, t)
	}
	if err := s.ort.Run(values[:1], values[1:]); err != nil {
		return fmt.Errorf("inference: run: %w", err)
	}
	pd, ld := p.GetData(), labels.GetData()
	for i := range rows {
		probs[i] = pd[s.probWidth*i+s.probWidth-1]
		approve[i] = ld[i] == 1
	}
	if contrib != nil {
		for c := range k {
			col := out.contrib[c*rows : (c+1)*rows]
			for i, v := range col {
				contrib[i*k+c] = v
			}
		}
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
