// Command floor is the benchmark's HTTP floor: a bare Fiber app whose one
// handler answers POST /v1/predict with a fixed JSON body of the same size
// and shape as a real decision, after reading the request. No decoding, no
// model, no middleware: what any Fiber service costs on this machine, so the
// real server's throughput can be stated as a share of it.
//
//	floor -addr 127.0.0.1:8100
package main

import (
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/gofiber/fiber/v2"
)

// decision is a representative /v1/predict response (about the same bytes).
const decision = `{"application_id":"A-1001","approve":true,"probability":0.9733325839042664,` +
	`"model":{"name":"loan-approval","version":"2","variant":"champion"},"request_id":"5f0c2a1b-1"}`

func main() {
	addr := flag.String("addr", "127.0.0.1:8100", "listen address")
	flag.Parse()
	app := fiber.New(fiber.Config{DisableStartupMessage: true})
	body := []byte(decision)
	app.Post("/v1/predict", func(c *fiber.Ctx) error {
		_ = c.Body()
		c.Set(fiber.HeaderContentType, fiber.MIMEApplicationJSON)
		return c.Send(body)
	})
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	go func() { <-sig; _ = app.Shutdown() }()
	if err := app.Listen(*addr); err != nil {
		fmt.Fprintln(os.Stderr, "floor:", err)
		os.Exit(1)
	}
}
