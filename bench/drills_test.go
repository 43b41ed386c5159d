package bench

// Reliability drills against the real server binary (internal/servetest:
// built once, a free loopback port, the embedded artifacts, real ONNX
// Runtime). Each drill is bounded in time and sends only to 127.0.0.1.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"mlservice/internal/servetest"
)

const drillToken = "drill-admin-token-0123456789"

func postJSON(client *http.Client, url string, body []byte) (int, []byte, error) {
	resp, err := client.Post(url, "application/json", bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

// TestDrillSIGTERMUnderLoad: with batch requests in flight on every
// connection, SIGTERM lets each of them finish with a full 200 answer, no
// connection is reset, and the process exits 0.
func TestDrillSIGTERMUnderLoad(t *testing.T) {
	// The production default drain: a request a client sends just as SIGTERM
	// arrives still finds the listener open.
	s := servetest.Start(t, servetest.Options{Env: []string{"SERVE_SHUTDOWN_TIMEOUT=15s", "SERVE_SHUTDOWN_DRAIN=1s"}})
	body := batchBody(5000) // tens of milliseconds of work each: many are in flight at any moment
	const clients = 8
	var (
		stopping  atomic.Bool
		inFlight  atomic.Int64
		completed atomic.Int64
		started   sync.WaitGroup
		done      sync.WaitGroup
		mu        sync.Mutex
		failures  []string
	)
	started.Add(clients)
	for w := range clients {
		done.Add(1)
		go func() {
			defer done.Done()
			client := &http.Client{Timeout: 20 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
			first := true
			for !stopping.Load() {
				inFlight.Add(1)
				if first {
					started.Done()
					first = false
				}
				status, b, err := postJSON(client, s.URL+"/v1/predict/batch", body)
				inFlight.Add(-1)
				switch {
				case err != nil:
					mu.Lock()
					failures = append(failures, fmt.Sprintf("client %d: %v", w, err))
					mu.Unlock()
					return
				case status != 200 || !bytes.Contains(b, []byte(`"accepted":5000`)):
					mu.Lock()
					failures = append(failures, fmt.Sprintf("client %d: %d %.200s", w, status, b))
					mu.Unlock()
					return
				}
				completed.Add(1)
			}
		}()
	}
	started.Wait()
	time.Sleep(300 * time.Millisecond) // steady load
	stopping.Store(true)               // no new requests from here on
	atInSignal := inFlight.Load()
	if err := s.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done.Wait()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err := s.Wait(ctx)
	if len(failures) > 0 {
		t.Fatalf("in-flight requests failed across SIGTERM: %v\nlog:\n%s", failures, s.Log.String())
	}
	if err != nil {
		t.Fatalf("exit after SIGTERM: %v (want 0)\nlog:\n%s", err, s.Log.String())
	}
	if atInSignal == 0 {
		t.Fatal("no request was in flight when SIGTERM was sent; the drill proved nothing")
	}
	t.Logf("%d requests in flight at SIGTERM, %d completed in all, exit 0", atInSignal, completed.Load())
}

// TestDrillSlowLoris: many connections trickling their headers one byte at a
// time do not hold up other clients.
func TestDrillSlowLoris(t *testing.T) {
	s := servetest.Start(t, servetest.Options{})
	const slow = 300
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	var opened atomic.Int64
	for range slow {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.DialTimeout("tcp", s.Addr, time.Second)
			if err != nil {
				return
			}
			defer c.Close()
			opened.Add(1)
			head := "POST /v1/predict HTTP/1.1\r\nHost: " + s.Addr + "\r\nContent-Type: application/json\r\nX-Slow: "
			for i := 0; ctx.Err() == nil; i++ {
				b := byte('a')
				if i < len(head) {
					b = head[i]
				}
				if _, err := c.Write([]byte{b}); err != nil {
					return
				}
				select {
				case <-ctx.Done():
				case <-time.After(100 * time.Millisecond):
				}
			}
		}()
	}
	time.Sleep(500 * time.Millisecond) // every slow connection is open and trickling
	client := &http.Client{Timeout: 2 * time.Second}
	var worst time.Duration
	n := 0
	for ctx.Err() == nil && n < 300 {
		t0 := time.Now()
		status, b, err := postJSON(client, s.URL+"/v1/predict", application(n))
		if err != nil || status != 200 {
			t.Fatalf("request %d beside %d slow connections: %v %d %s", n, opened.Load(), err, status, b)
		}
		worst = max(worst, time.Since(t0))
		n++
	}
	cancel()
	wg.Wait()
	if opened.Load() < slow*9/10 {
		t.Fatalf("only %d of %d slow connections opened", opened.Load(), slow)
	}
	if worst > 500*time.Millisecond {
		t.Fatalf("slowest request beside %d slow connections took %s", opened.Load(), worst)
	}
	t.Logf("%d requests beside %d slow-loris connections, slowest %s", n, opened.Load(), worst)
}

// rssKB reads a process's resident set size from /proc.
func rssKB(t *testing.T, pid int) int {
	t.Helper()
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.Atoi(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")))
			return kb
		}
	}
	t.Fatal("no VmRSS")
	return 0
}

// TestDrillGigabyteBodyRefusedEarly: a request announcing a 1 GB body and
// sending it slowly is answered 413 from its Content-Length, after only a
// few kilobytes have been sent, and the server's memory does not grow.
func TestDrillGigabyteBodyRefusedEarly(t *testing.T) {
	s := servetest.Start(t, servetest.Options{})
	pid := s.Cmd.Process.Pid
	before := rssKB(t, pid)
	for _, path := range []string{"/v1/predict", "/v1/predict/batch"} {
		t.Run(strings.TrimPrefix(path, "/"), func(t *testing.T) {
			c, err := net.DialTimeout("tcp", s.Addr, time.Second)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", path, s.Addr, 1<<30)
			var sent atomic.Int64
			stop := make(chan struct{})
			go func() { // the body, 1 KiB every 10 ms, until the answer comes
				chunk := append([]byte(`{"applications":[`), bytes.Repeat([]byte(" "), 1024-17)...)
				for {
					select {
					case <-stop:
						return
					case <-time.After(10 * time.Millisecond):
					}
					if _, err := c.Write(chunk); err != nil {
						return
					}
					sent.Add(int64(len(chunk)))
				}
			}()
			defer close(stop)
			_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
			resp, err := http.ReadResponse(bufio.NewReader(c), nil)
			if err != nil {
				t.Fatalf("no answer while the body trickles (%d bytes sent): %v", sent.Load(), err)
			}
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			if resp.StatusCode != http.StatusRequestEntityTooLarge {
				t.Fatalf("status %d %s, want 413", resp.StatusCode, b)
			}
			if n := sent.Load(); n > 1<<20 {
				t.Fatalf("answered only after %d bytes of the body", n)
			}
			t.Logf("413 after %d body bytes: %s", sent.Load(), bytes.TrimSpace(b))
		})
	}
	after := rssKB(t, pid)
	if after-before > 64<<10 {
		t.Fatalf("server RSS grew from %d kB to %d kB", before, after)
	}
	status, _, err := postJSON(&http.Client{Timeout: 2 * time.Second}, s.URL+"/v1/predict", application(1))
	if err != nil || status != 200 {
		t.Fatalf("server unwell afterwards: %v %d", err, status)
	}
	t.Logf("RSS %d kB before, %d kB after", before, after)
}

type promoteAnswer struct {
	Before struct{ Champion string } `json:"before"`
	After  struct{ Champion string } `json:"after"`
}

func admin(client *http.Client, method, url, body string) (int, []byte) {
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		return 0, []byte(err.Error())
	}
	req.Header.Set("Authorization", "Bearer "+drillToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return 0, []byte(err.Error()) // callers run in goroutines: no t.Fatal here
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

// TestDrillConcurrentPromotes: promotes sent at once are applied one after
// another: every answer's before/after pairs chain into one sequence from
// the starting champion to the final one, and the API, /ready, a prediction
// and the session count all agree on the final state.
func TestDrillConcurrentPromotes(t *testing.T) {
	s := servetest.Start(t, servetest.Options{Env: []string{"SERVE_ADMIN_TOKEN=" + drillToken}})
	client := &http.Client{Timeout: 30 * time.Second}
	// Load while promoting: no request may fail.
	loadCtx, stopLoad := context.WithCancel(context.Background())
	var loadErr atomic.Value
	var loadWG sync.WaitGroup
	for range 4 {
		loadWG.Add(1)
		go func() {
			defer loadWG.Done()
			for i := 0; loadCtx.Err() == nil; i++ {
				status, b, err := postJSON(client, s.URL+"/v1/predict", application(i))
				if err != nil || status != 200 {
					loadErr.Store(fmt.Sprintf("%v %d %s", err, status, b))
					return
				}
			}
		}()
	}
	const promoters, each = 6, 4
	var (
		mu      sync.Mutex
		answers []promoteAnswer
		wg      sync.WaitGroup
	)
	for p := range promoters {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range each {
				v := strconv.Itoa(1 + (p+i)%2)
				status, b := admin(client, http.MethodPost, s.URL+"/admin/promote", `{"version":"`+v+`"}`)
				if status != 200 {
					t.Errorf("promote %s: %d %s", v, status, b)
					continue
				}
				var a promoteAnswer
				if err := json.Unmarshal(b, &a); err != nil || a.After.Champion != v {
					t.Errorf("promote %s answered %s", v, b)
					continue
				}
				mu.Lock()
				answers = append(answers, a)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	stopLoad()
	loadWG.Wait()
	if e := loadErr.Load(); e != nil {
		t.Fatalf("a prediction failed during concurrent promotes: %v", e)
	}
	if t.Failed() {
		return
	}
	// The transitions must form one walk from the shipped champion → ... →
	// final: with serialised promotes each one starts where the previous one ended.
	_, b := admin(client, http.MethodGet, s.URL+"/admin/models", "")
	var state struct {
		Desired struct{ Champion string } `json:"desired"`
		Live    []struct{ Variant, Version string }
	}
	if err := json.Unmarshal(b, &state); err != nil {
		t.Fatal(err)
	}
	final := state.Desired.Champion
	shipped, _ := championAndForest(t)
	if err := checkWalk(shipped, final, answers); err != nil {
		t.Fatalf("promotes were not serialised: %v (%d answers)", err, len(answers))
	}
	if len(state.Live) != 1 || state.Live[0].Variant != "champion" || state.Live[0].Version != final {
		t.Fatalf("live %+v, desired champion %s", state.Live, final)
	}
	status, rb, err := postJSON(client, s.URL+"/v1/predict", application(3))
	if err != nil || status != 200 || !bytes.Contains(rb, []byte(`"version":"`+final+`"`)) {
		t.Fatalf("prediction after the promotes: %v %d %s (want version %s)", err, status, rb, final)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		mb, err := http.Get(s.URL + "/metrics")
		if err != nil {
			t.Fatal(err)
		}
		text, _ := io.ReadAll(mb.Body)
		mb.Body.Close()
		if bytes.Contains(text, []byte("\nmodel_sessions_open 1\n")) {
			break
		}
		if time.Now().After(deadline) {
			i := bytes.Index(text, []byte("model_sessions_open "))
			t.Fatalf("sessions never settled to the 1 live version: %.40s", text[max(i, 0):])
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("%d promotes serialised, final champion %s, 1 session open", len(answers), final)
}

// checkWalk reports whether the (before → after) pairs can be ordered into
// one chain from start to end (an Euler path over the versions).
func checkWalk(start, end string, answers []promoteAnswer) error {
	out, in := map[string]int{}, map[string]int{}
	for _, a := range answers {
		if a.Before.Champion == "" || a.After.Champion == "" {
			return errors.New("an answer without before/after")
		}
		out[a.Before.Champion]++
		in[a.After.Champion]++
	}
	nodes := map[string]bool{start: true, end: true}
	for k := range out {
		nodes[k] = true
	}
	for k := range in {
		nodes[k] = true
	}
	for n := range nodes {
		want := 0
		if n == start {
			want++
		}
		if n == end {
			want--
		}
		if out[n]-in[n] != want {
			return fmt.Errorf("version %s: %d promotes left it, %d arrived at it", n, out[n], in[n])
		}
	}
	return nil
}
