// Package bench holds ML Service's benchmarks and reliability drills.
//
//   - micro_test.go: Go benchmarks of the hot path's parts (decode and
//     validate, feature mapping, ONNX Runtime runs at batch 1/64/1024) and of
//     the whole handler in-process, the harness the CPU profile is taken on.
//   - drills_test.go: reliability drills against the real server binary
//     (SIGTERM under load, slow-loris, oversized body, concurrent promotes).
//     They run in CI with `go test -race ./...`.
//   - loadgen/, floor/, bodies/, report/: the load generator (fasthttp's
//     HostClient under an open-loop scheduler), the bare Fiber floor server,
//     the request bodies and the BENCHMARKS.md writer that run.sh
//     (`make bench`) drives.
//   - run.sh, lib.sh, stages/: `make bench` starts the shared servers and runs
//     one script per benchmark stage (stages/NAME.sh, one line each in
//     run.sh); lib.sh holds the helpers and the environment a stage gets.
package bench
