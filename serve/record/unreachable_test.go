package record

import (
	"errors"
	"fmt"
	"net"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"
)

// A server starting while PostgreSQL is down, starting or full waits; one
// with a wrong password or schema stops at once.
func TestUnreachable(t *testing.T) {
	for _, c := range []struct {
		name string
		err  error
		want bool
	}{
		{"connection refused", fmt.Errorf("open: %w", &net.OpError{Op: "dial", Err: errors.New("connection refused")}), true},
		{"starting up", fmt.Errorf("open: %w", &pgconn.PgError{Code: "57P03"}), true},
		{"too many clients", &pgconn.PgError{Code: "53300"}, true},
		{"wrong password", &pgconn.PgError{Code: "28P01"}, false},
		{"newer schema", errors.New("the decision record's schema is version 6, newer than this server knows (5)"), false},
	} {
		if got := Unreachable(c.err); got != c.want {
			t.Errorf("%s: Unreachable = %v, want %v", c.name, got, c.want)
		}
	}
}
