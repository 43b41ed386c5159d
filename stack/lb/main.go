// Command lb is the small round-robin load balancer in front of the serve
// replicas, for `make stack` (fixed loopback backends) and for the compose
// stack (the replicas of a scaled service found through DNS). A replica is
// in rotation while GET <health-path> answers 200; one that fails a request
// leaves it until its next good check. GET /-/lb lists the replicas.
//
//	lb -addr 127.0.0.1:8000 -backends http://127.0.0.1:8001,http://127.0.0.1:8002
//	lb -addr :8000 -resolve serve:8000
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "lb:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stderr io.Writer) error {
	fs := flag.NewFlagSet("lb", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("addr", "127.0.0.1:8000", "listen address")
	backends := fs.String("backends", "", "comma-separated replica base URLs")
	resolve := fs.String("resolve", "", "host:port whose DNS A records are the replicas (instead of -backends)")
	healthPath := fs.String("health-path", "/ready", "replica health check path")
	interval := fs.Duration("interval", time.Second, "health check and DNS refresh period")
	if err := fs.Parse(args); err != nil {
		return err
	}
	var static []string
	for _, b := range strings.Split(*backends, ",") {
		if b = strings.TrimSpace(b); b != "" {
			static = append(static, strings.TrimRight(b, "/"))
		}
	}
	if (len(static) == 0) == (*resolve == "") {
		return errors.New("give exactly one of -backends and -resolve")
	}
	if *interval < 100*time.Millisecond {
		return errors.New("-interval must be at least 100ms")
	}
	log := slog.New(slog.NewJSONHandler(stderr, nil))

	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	pool := NewPool(static, *resolve, *healthPath, *interval, log)
	pool.Refresh(ctx)
	go pool.Run(ctx, *interval)

	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return err
	}
	srv := &http.Server{Handler: pool, ReadHeaderTimeout: 10 * time.Second}
	log.Info("lb listening", "addr", ln.Addr().String(), "backends", static, "resolve", *resolve)
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	shutdown, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	return srv.Shutdown(shutdown)
}
