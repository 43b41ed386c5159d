package freeport

import (
	"net"
	"strconv"
	"testing"
)

// TestPortsAreFreeAndBelowTheEphemeralRange: the ports bind, and none is
// one the kernel could hand an outgoing connection.
func TestPortsAreFreeAndBelowTheEphemeralRange(t *testing.T) {
	for range 20 {
		base := Ports(t, 3)
		if base < 10000 || base+3 > ephemeralLow() {
			t.Fatalf("ports %d–%d, want within [10000, %d)", base, base+2, ephemeralLow())
		}
		for p := base; p < base+3; p++ {
			ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(p))
			if err != nil {
				t.Fatalf("port %d: %v", p, err)
			}
			ln.Close()
		}
	}
}
