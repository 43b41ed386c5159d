package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"mlservice/internal/servetest"
	"mlservice/schemas"
)

// These are issue 12's audit findings, checked end to end against the
// running binary.

func post(t testing.TB, client *http.Client, url string, body []byte) (int, http.Header, []byte) {
	t.Helper()
	resp, err := client.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		t.Errorf("POST %s: %v", url, err)
		return 0, nil, nil
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, raw
}

// procKB reads one field (VmRSS, VmHWM) of a process's /proc status in KiB.
func procKB(t testing.TB, pid int, field string) int {
	t.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Skip("no /proc on this system")
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return kb
		}
	}
	t.Fatalf("no %s", field)
	return 0
}

// resetPeak makes VmHWM start again from the current RSS.
func resetPeak(t testing.TB, pid int) {
	if err := os.WriteFile(fmt.Sprintf("/proc/%d/clear_refs", pid), []byte("5"), 0); err != nil {
		t.Logf("cannot reset the peak RSS (%v); VmHWM counts from the start", err)
	}
}

// zeros is issue 12's bomb: {"applications":[0,0,…]} of n bytes.
func zeros(n int) []byte {
	b := make([]byte, 0, n)
	b = append(b, `{"applications":[0`...)
	for len(b) < n-3 {
		b = append(b, ",0"...)
	}
	return append(b, "]}"...)
}

// fatItem is one item of n bytes: {"applications":[[0,0,…]]}.
func fatItem(n int) []byte {
	b := zeros(n - 2)
	return append(append([]byte(`{"applications":[[`), b[len(`{"applications":[`):len(b)-2]...), "]]}"...)
}

// bigBatch is a legitimate batch of n applications with the longest ids.
func bigBatch(n int) []byte {
	var b bytes.Buffer
	b.WriteString(`{"applications":[`)
	for i := range n {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, `{"application_id":"%064d","income":%d,"credit_score":700,"loan_amount":20000,"years_employed":5,"points":60}`, i, 30000+i)
	}
	b.WriteString("]}")
	return b.Bytes()
}

// TestMemoryBombIsBounded is issue 12 item 1: bodies that used to take RSS to
// 2.1 GB (6.2 GB three at once) cost at most 200 MiB, three at once at most
// 400 MiB, and single predictions keep answering within a second meanwhile.
func TestMemoryBombIsBounded(t *testing.T) {
	s := servetest.Start(t, servetest.Options{})
	pid := s.Cmd.Process.Pid
	client := &http.Client{Timeout: 30 * time.Second}
	bombs := map[string][]byte{
		"zeros":         zeros(schemas.MaxBatchBytes),
		"one fat item":  fatItem(schemas.MaxBatchBytes),
		"largest batch": bigBatch(schemas.MaxBatch),
	}
	if len(bombs["largest batch"]) > schemas.MaxBatchBytes {
		t.Fatalf("the largest legitimate batch (%d bytes) does not fit the body limit", len(bombs["largest batch"]))
	}
	want := map[string]string{"zeros": `"must contain at most 10000 applications"`, "one fat item": `"rejected":1`, "largest batch": `"accepted":10000`}
	const mib = 1024
	base := procKB(t, pid, "VmRSS")
	t.Logf("RSS at rest %d MiB", base/mib)
	for name, body := range bombs {
		resetPeak(t, pid)
		for range 3 {
			status, _, raw := post(t, client, s.URL+"/v1/predict/batch", body)
			if !bytes.Contains(raw, []byte(want[name])) {
				t.Fatalf("%s: %d %.300s", name, status, raw)
			}
		}
		peak := procKB(t, pid, "VmHWM")
		t.Logf("%s (%d bytes) three times one after another: peak RSS %d MiB", name, len(body), peak/mib)
		if peak > 200*mib {
			t.Errorf("%s: peak RSS %d MiB > 200 MiB", name, peak/mib)
		}
	}
	// One byte over the limit: refused from the Content-Length, unread.
	conn, err := net.DialTimeout("tcp", s.Addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(conn, "POST /v1/predict/batch HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", schemas.MaxBatchBytes+1)
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil || resp.StatusCode != 413 {
		t.Fatalf("a body one byte over the limit: %v %v", resp, err)
	}
	conn.Close()

	// Three of each at once, single predictions beside them.
	resetPeak(t, pid)
	stop := make(chan struct{})
	var worst atomic.Int64
	var singles atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		one := []byte(`{"application_id":"S-1","income":50000,"credit_score":700,"loan_amount":20000,"years_employed":5,"points":60}`)
		for {
			select {
			case <-stop:
				return
			default:
			}
			start := time.Now()
			if status, _, raw := post(t, client, s.URL+"/v1/predict", one); status != 200 {
				t.Errorf("single prediction beside the bombs: %d %s", status, raw)
				return
			}
			if d := time.Since(start); d.Nanoseconds() > worst.Load() {
				worst.Store(d.Nanoseconds())
			}
			singles.Add(1)
			time.Sleep(5 * time.Millisecond)
		}
	}()
	var bombers sync.WaitGroup
	for round := range 3 {
		for name, body := range bombs {
			bombers.Add(1)
			go func() {
				defer bombers.Done()
				status, _, raw := post(t, client, s.URL+"/v1/predict/batch", body)
				if !bytes.Contains(raw, []byte(want[name])) {
					t.Errorf("%s (round %d) at once: %d %.200s", name, round, status, raw)
				}
			}()
		}
	}
	bombers.Wait()
	close(stop)
	wg.Wait()
	peak := procKB(t, pid, "VmHWM")
	t.Logf("nine bodies at once (three of each): peak RSS %d MiB; %d single predictions meanwhile, slowest %s",
		peak/mib, singles.Load(), time.Duration(worst.Load()))
	if peak > 400*mib {
		t.Errorf("peak RSS %d MiB > 400 MiB", peak/mib)
	}
	if time.Duration(worst.Load()) > time.Second {
		t.Errorf("a single prediction took %s beside the batches", time.Duration(worst.Load()))
	}
}

// TestBatchesBeyondCapacityAre503: with every batch slot taken and no queue,
// a batch is refused with 503, Retry-After and code overloaded, and counted.
func TestBatchesBeyondCapacityAre503(t *testing.T) {
	s := servetest.Start(t, servetest.Options{Env: []string{"SERVE_BATCH_CONCURRENCY=1", "SERVE_BATCH_QUEUE=0"}})
	client := &http.Client{Timeout: 30 * time.Second}
	body := bigBatch(schemas.MaxBatch)
	refused := 0
	for round := 0; round < 5 && refused == 0; round++ {
		var wg sync.WaitGroup
		var mu sync.Mutex
		for range 6 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				status, h, raw := post(t, client, s.URL+"/v1/predict/batch", body)
				switch {
				case status == 200:
				case status == 503 && h.Get("Retry-After") == "1" && bytes.Contains(raw, []byte(`"code":"overloaded"`)):
					mu.Lock()
					refused++
					mu.Unlock()
				default:
					t.Errorf("%d %s %.200s", status, h, raw)
				}
			}()
		}
		wg.Wait()
	}
	if refused == 0 {
		t.Fatal("no batch was refused with one slot and no queue")
	}
	resp, err := http.Get(s.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(raw), `batch_admissions_total{result="refused"} `+strconv.Itoa(refused)) {
		t.Fatalf("refusals not counted (%d):\n%s", refused, grep(string(raw), "batch_admissions"))
	}
	// The Go heap has its default soft limit (SERVE_MEMORY_LIMIT, 1GiB).
	if !strings.Contains(string(raw), "go_gc_gomemlimit_bytes 1.073741824e+09") {
		t.Fatalf("no memory limit:\n%s", grep(string(raw), "gomemlimit"))
	}
	// Single predictions are never refused.
	if status, _, raw := post(t, client, s.URL+"/v1/predict", []byte(`{"income":50000,"credit_score":700,"loan_amount":1,"years_employed":1,"points":1}`)); status != 200 {
		t.Fatalf("%d %s", status, raw)
	}
}

func grep(text, substr string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, substr) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// scorecardArtifacts is an artifacts directory whose champion is the
// scorecard test model (contrib_* outputs, loan_to_income inside the graph).
func scorecardArtifacts(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	vdir := filepath.Join(dir, "loan-approval", "versions", "3")
	if err := os.MkdirAll(vdir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.CopyFS(vdir, os.DirFS(filepath.Join(servetest.ModuleRoot(), "serve", "inference", "testdata", "scorecard"))); err != nil {
		t.Fatal(err)
	}
	reg := `{"name":"loan-approval","aliases":{"champion":"3"},"tags":{},"versions":[{"version":"3"}]}`
	if err := os.WriteFile(filepath.Join(dir, "loan-approval", "registry.json"), []byte(reg), 0o644); err != nil {
		t.Fatal(err)
	}
	return dir
}

// TestFloat32OverflowNeverBecomesNaN is issue 12 item 2: numbers that overflow
// float32 are refused by the contract; a model output that is not finite
// anyway is that item's error (undecidable); no NaN or Inf reaches the JSON
// or a metric.
func TestFloat32OverflowNeverBecomesNaN(t *testing.T) {
	client := &http.Client{Timeout: 10 * time.Second}
	app := func(id string, income, loan float64) string {
		return fmt.Sprintf(`{"application_id":%q,"income":%v,"credit_score":700,"loan_amount":%v,"years_employed":5,"points":60}`, id, income, loan)
	}
	checkJSON := func(t *testing.T, raw []byte) {
		t.Helper()
		if !json.Valid(raw) || bytes.Contains(raw, []byte("NaN")) || bytes.Contains(raw, []byte("Inf")) {
			t.Fatalf("not finite JSON: %s", raw)
		}
	}
	checkMetrics := func(t *testing.T, s *servetest.Server) {
		t.Helper()
		resp, err := http.Get(s.URL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, l := range strings.Split(string(raw), "\n") {
			if strings.HasPrefix(l, "model_") && (strings.HasSuffix(l, " NaN") || strings.HasSuffix(l, "Inf")) {
				t.Fatalf("a metric is not finite: %s", l)
			}
		}
	}

	t.Run("shipped versions: the contract refuses overflow", func(t *testing.T) {
		s := servetest.Start(t, servetest.Options{})
		for _, body := range []string{app("O-1", 1e39, 20000), app("O-2", 3.5e38, 3.5e38)} {
			status, _, raw := post(t, client, s.URL+"/v1/predict", []byte(body))
			checkJSON(t, raw)
			if status != 422 || !bytes.Contains(raw, []byte(`"code":"validation_failed"`)) || !bytes.Contains(raw, []byte(`"income":"must be no greater than 100000000"`)) {
				t.Fatalf("%s: %d %s", body, status, raw)
			}
		}
		status, _, raw := post(t, client, s.URL+"/v1/predict/batch",
			[]byte(`{"applications":[`+app("O-3", 50000, 20000)+`,`+app("O-4", 3.5e38, 3.5e38)+`]}`))
		checkJSON(t, raw)
		if status != 200 || !bytes.Contains(raw, []byte(`"accepted":1,"rejected":1`)) {
			t.Fatalf("%d %s", status, raw)
		}
		checkMetrics(t, s)
	})

	t.Run("a model output that is not finite is the item's error", func(t *testing.T) {
		s := servetest.Start(t, servetest.Options{Env: []string{"SERVE_ARTIFACTS_DIR=" + scorecardArtifacts(t)}})
		// income 1e-40 passes the contract (> 0) but loan_amount/income
		// overflows float32 inside the graph: contrib_loan_to_income is -Inf.
		tiny := app("T-1", 1e-40, 20000)
		status, _, raw := post(t, client, s.URL+"/v1/predict", []byte(tiny))
		checkJSON(t, raw)
		if status != 422 || !bytes.Contains(raw, []byte(`"code":"undecidable"`)) {
			t.Fatalf("%d %s", status, raw)
		}
		status, _, raw = post(t, client, s.URL+"/v1/predict/batch",
			[]byte(`{"applications":[`+app("T-2", 60000, 20000)+`,`+tiny+`,`+app("T-3", 145000, 10000)+`]}`))
		checkJSON(t, raw)
		var got struct {
			Results []struct {
				Index       int     `json:"index"`
				Probability float64 `json:"probability"`
				Error       *struct{ Code string }
			}
			Accepted, Rejected int
		}
		if err := json.Unmarshal(raw, &got); err != nil || status != 200 || got.Accepted != 2 || got.Rejected != 1 ||
			got.Results[1].Error == nil || got.Results[1].Error.Code != "undecidable" || got.Results[0].Error != nil || got.Results[2].Error != nil {
			t.Fatalf("%d %s", status, raw)
		}
		if math.Abs(got.Results[0].Probability-0.5041665434837341) > 1e-6 {
			t.Fatalf("the scorecard's first serving-check case scored %v", got.Results[0].Probability)
		}
		checkMetrics(t, s)
	})
}
