// Package artifacts embeds the default model versions shipped with the code,
// in MLflow's model-directory layout, so the server runs with no MLflow at
// all. `make artifacts` regenerates them from notebooks/train.ipynb; nothing
// here is written by hand.
package artifacts

import "embed"

// FS holds <model>/registry.json and <model>/versions/<version>/...
//
//go:embed loan-approval
var FS embed.FS
