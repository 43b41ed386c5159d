// Command healthcheck is the images' HEALTHCHECK probe, so that no image
// needs curl: it exits 0 when GET URL answers 200 within two seconds, else 1.
// Without an argument the URL is http://127.0.0.1:<port of SERVE_ADDR>/ready.
//
//	healthcheck                          # the serve image
//	healthcheck http://127.0.0.1:8080/   # any other
package main

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"time"
)

func main() {
	if err := probe(os.Args[1:], os.Getenv("SERVE_ADDR")); err != nil {
		fmt.Fprintln(os.Stderr, "healthcheck:", err)
		os.Exit(1)
	}
}

// target is the URL to probe: the argument, or /ready on SERVE_ADDR's port.
func target(args []string, serveAddr string) (string, error) {
	if len(args) > 1 {
		return "", fmt.Errorf("want at most one URL, got %d arguments", len(args))
	}
	if len(args) == 1 {
		return args[0], nil
	}
	if serveAddr == "" {
		serveAddr = ":8000"
	}
	_, port, err := net.SplitHostPort(serveAddr)
	if err != nil {
		return "", fmt.Errorf("SERVE_ADDR=%q: %v", serveAddr, err)
	}
	return "http://" + net.JoinHostPort("127.0.0.1", port) + "/ready", nil
}

func probe(args []string, serveAddr string) error {
	url, err := target(args, serveAddr)
	if err != nil {
		return err
	}
	client := &http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s answered %s", url, resp.Status)
	}
	return nil
}
