// Command bodies writes the request bodies the benchmark sends: the same
// seeded, valid loan applications in our API's format and in the MLflow
// scoring server's /invocations format (dataframe_split), one request a line.
//
//	bodies -out DIR [-n 1000] [-batch 1000] [-seed 1]
//
// writes DIR/predict.jsonl, DIR/invocations.jsonl and DIR/oip.jsonl (one
// application per request: ours, MLflow's, the Open Inference Protocol's) and
// DIR/batch.jsonl, DIR/invocations-batch.jsonl and DIR/oip-batch.bin (one
// request of -batch applications; the last in binary tensors, its JSON
// header's length in DIR/oip-batch.hlen).
package main

import (
	"encoding/binary"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// application holds the five API fields, in the legacy system's ranges.
type application struct {
	id                                  string
	income, credit, loan, years, points float64
}

func generate(n int, seed uint64) []application {
	r := rand.New(rand.NewPCG(seed, 0x6c6f616e))
	apps := make([]application, n)
	for i := range apps {
		apps[i] = application{
			id:     fmt.Sprintf("B-%06d", i+1),
			income: float64(30000 + r.IntN(120000)),
			credit: float64(300 + r.IntN(551)),
			loan:   float64(1000 + r.IntN(49000)),
			years:  float64(r.IntN(41)),
			points: float64(10 + 5*r.IntN(19)),
		}
	}
	return apps
}

func num(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }

func (a application) ours() string {
	return fmt.Sprintf(`{"application_id":%q,"income":%s,"credit_score":%s,"loan_amount":%s,"years_employed":%s,"points":%s}`,
		a.id, num(a.income), num(a.credit), num(a.loan), num(a.years), num(a.points))
}

func (a application) row() string {
	return "[" + strings.Join([]string{num(a.income), num(a.credit), num(a.loan), num(a.years), num(a.points)}, ",") + "]"
}

// oipJSON is one application as an Open Inference Protocol request: one
// FP32 [1, 4] tensor in the signature's column order, routed by its id.
func (a application) oipJSON() string {
	return fmt.Sprintf(`{"parameters":{"application_id":%q},"inputs":[{"name":"features","shape":[1,4],"datatype":"FP32","data":[%s,%s,%s,%s]}]}`,
		a.id, num(a.income), num(a.credit), num(a.loan), num(a.years))
}

// oipBinary is the applications as one binary-extension request: the JSON
// header, then the [N, 4] FP32 tensor's bytes (little-endian); the outputs
// come back binary too.
func oipBinary(apps []application) (string, []byte) {
	header := fmt.Sprintf(`{"parameters":{"binary_data_output":true},"inputs":[{"name":"features","shape":[%d,4],"datatype":"FP32","parameters":{"binary_data_size":%d}}]}`,
		len(apps), 16*len(apps))
	blob := make([]byte, 0, 16*len(apps))
	for _, a := range apps {
		for _, v := range []float64{a.income, a.credit, a.loan, a.years} {
			blob = binary.LittleEndian.AppendUint32(blob, math.Float32bits(float32(v)))
		}
	}
	return header, blob
}

func frame(apps []application) string {
	rows := make([]string, len(apps))
	for i, a := range apps {
		rows[i] = a.row()
	}
	return `{"dataframe_split":{"columns":["income","credit_score","loan_amount","years_employed","points"],"data":[` +
		strings.Join(rows, ",") + `]}}`
}

func main() {
	out := flag.String("out", "", "output directory")
	n := flag.Int("n", 1000, "distinct single-application requests")
	batch := flag.Int("batch", 1000, "applications in the batch request")
	seed := flag.Uint64("seed", 1, "random seed")
	flag.Parse()
	if *out == "" || *n < 1 || *batch < 1 || *batch > 10000 {
		fmt.Fprintln(os.Stderr, "usage: bodies -out DIR [-n 1000] [-batch 1000 (≤ 10000)] [-seed 1]")
		os.Exit(2)
	}
	apps := generate(max(*n, *batch), *seed)
	single := apps[:*n]
	var ours, inv strings.Builder
	for _, a := range single {
		ours.WriteString(a.ours() + "\n")
		inv.WriteString(frame([]application{a}) + "\n")
	}
	items := make([]string, *batch)
	for i, a := range apps[:*batch] {
		items[i] = a.ours()
	}
	var oip strings.Builder
	for _, a := range single {
		oip.WriteString(a.oipJSON() + "\n")
	}
	header, blob := oipBinary(apps[:*batch])
	files := map[string]string{
		"oip.jsonl":               oip.String(),
		"oip-batch.bin":           header + string(blob),
		"oip-batch.hlen":          strconv.Itoa(len(header)) + "\n",
		"predict.jsonl":           ours.String(),
		"invocations.jsonl":       inv.String(),
		"batch.jsonl":             `{"applications":[` + strings.Join(items, ",") + "]}\n",
		"invocations-batch.jsonl": frame(apps[:*batch]) + "\n",
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(*out, name), []byte(content), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
}
