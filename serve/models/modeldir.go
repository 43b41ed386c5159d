package models

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"gopkg.in/yaml.v3"

	"mlservice/serve/drift"
)

// ServingCheckFile is the file the training notebook writes next to the model:
// input rows and the probabilities the training run computed for them. The
// server replays it before a version may serve.
const ServingCheckFile = "serving_check.json"

// ModelDir is a version's files in MLflow's model-directory layout.
type ModelDir struct {
	Dir string
	// ModelFile is the ONNX file, from the MLmodel's onnx flavor.
	ModelFile string
	// Inputs are the signature's input column names, in tensor-column order.
	Inputs []string
	Check  ServingCheck
	// Baseline is the training distribution of the inputs and the score
	// (training_distribution.json), nil for a version trained without one:
	// it simply has no drift monitoring.
	Baseline *drift.Baseline
}

// ServingCheck is the content of serving_check.json.
type ServingCheck struct {
	Tolerance float64       `json:"tolerance"`
	Cases     []ServingCase `json:"cases"`
}

// ServingCase is one input row with the probability the training run computed
// and, for a scorecard-shaped model, each characteristic's contribution and
// the ranked reason codes of a decline.
type ServingCase struct {
	Input         map[string]float64 `json:"input"`
	Probability   float64            `json:"probability"`
	Approve       bool               `json:"approve"`
	Contributions map[string]float64 `json:"contributions,omitempty"`
	Reasons       []string           `json:"reasons,omitempty"`
}

// mlmodel is the part of an MLmodel file the server needs.
type mlmodel struct {
	Flavors struct {
		ONNX *struct {
			Data string `yaml:"data"`
		} `yaml:"onnx"`
	} `yaml:"flavors"`
	Signature *struct {
		Inputs string `yaml:"inputs"`
	} `yaml:"signature"`
}

// ErrBadModelDir means a version's directory is not a servable MLflow ONNX model.
var ErrBadModelDir = errors.New("registry: not a servable ONNX model directory")

// ReadModelDir reads and checks the MLmodel and serving_check.json in dir.
func ReadModelDir(dir string) (ModelDir, error) {
	md := ModelDir{Dir: dir}
	raw, err := os.ReadFile(filepath.Join(dir, "MLmodel"))
	if err != nil {
		return md, fmt.Errorf("%w: %v", ErrBadModelDir, err)
	}
	var m mlmodel
	if err := yaml.Unmarshal(raw, &m); err != nil {
		return md, fmt.Errorf("%w: MLmodel: %v", ErrBadModelDir, err)
	}
	if m.Flavors.ONNX == nil || m.Flavors.ONNX.Data == "" {
		return md, fmt.Errorf("%w: MLmodel has no onnx flavor", ErrBadModelDir)
	}
	md.ModelFile = filepath.Join(dir, filepath.Clean("/" + m.Flavors.ONNX.Data)[1:])
	if m.Signature == nil || m.Signature.Inputs == "" {
		return md, fmt.Errorf("%w: MLmodel has no input signature", ErrBadModelDir)
	}
	var inputs []struct {
		Name string `json:"name"`
		Type string `json:"type"`
	}
	if err := json.Unmarshal([]byte(m.Signature.Inputs), &inputs); err != nil {
		return md, fmt.Errorf("%w: signature inputs: %v", ErrBadModelDir, err)
	}
	for _, in := range inputs {
		if in.Name == "" {
			return md, fmt.Errorf("%w: signature input without a name (want a column-based signature)", ErrBadModelDir)
		}
		md.Inputs = append(md.Inputs, in.Name)
	}
	if len(md.Inputs) == 0 {
		return md, fmt.Errorf("%w: signature has no inputs", ErrBadModelDir)
	}
	raw, err = os.ReadFile(filepath.Join(dir, ServingCheckFile))
	if err != nil {
		return md, fmt.Errorf("%w: %v", ErrBadModelDir, err)
	}
	if err := json.Unmarshal(raw, &md.Check); err != nil {
		return md, fmt.Errorf("%w: %s: %v", ErrBadModelDir, ServingCheckFile, err)
	}
	if len(md.Check.Cases) == 0 {
		return md, fmt.Errorf("%w: %s has no cases", ErrBadModelDir, ServingCheckFile)
	}
	raw, err = os.ReadFile(filepath.Join(dir, drift.BaselineFile))
	switch {
	case errors.Is(err, os.ErrNotExist):
	case err != nil:
		return md, fmt.Errorf("%w: %v", ErrBadModelDir, err)
	default:
		if md.Baseline, err = drift.ParseBaseline(raw); err != nil {
			return md, fmt.Errorf("%w: %v", ErrBadModelDir, err)
		}
	}
	return md, nil
}
