// Package freeport picks loopback ports for the servers tests start.
package freeport

import (
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
)

// Ports returns the first of n consecutive ports free on 127.0.0.1. They
// are chosen below the kernel's ephemeral range: a server a test starts
// binds its port seconds after this check (MLflow takes about ten), and in
// that range any outgoing connection made meanwhile, by any process, may
// take it. That happened in CI.
func Ports(t testing.TB, n int) int {
	t.Helper()
	low, high := 10000, ephemeralLow()
	for range 100 {
		base := low + rand.IntN(high-low-n)
		if free(base, n) {
			return base
		}
	}
	t.Fatal("freeport: no free loopback ports")
	return 0
}

// Port returns one free port (see Ports).
func Port(t testing.TB) int {
	t.Helper()
	return Ports(t, 1)
}

// Addr returns a free 127.0.0.1:port.
func Addr(t testing.TB) string {
	t.Helper()
	return "127.0.0.1:" + strconv.Itoa(Port(t))
}

func free(base, n int) bool {
	for p := base; p < base+n; p++ {
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			return false
		}
		ln.Close()
	}
	return true
}

// ephemeralLow is where Linux starts handing out ports to outgoing
// connections (32768 unless configured otherwise).
func ephemeralLow() int {
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			if v, err := strconv.Atoi(f[0]); err == nil && v > 11000 {
				return v
			}
		}
	}
	return 32768
}
