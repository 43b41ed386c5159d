package auth

import (
	"strconv"
	"testing"
	"time"
)

// A flood from more addresses than the limiter tracks makes newcomers share
// one budget while it lasts; once it is over and the flood's budgets have
// refilled, a new address has its own budget again, so one caller's wrong
// tokens do not lock out every admin whose address is new.
func TestFloodOfAddressesIsForgottenOnceRefilled(t *testing.T) {
	l := newLimiter(10, 3*time.Second)
	now := time.Unix(1_700_000_000, 0)
	for i := range maxTracked + 1 {
		l.fail("2001:db8::"+strconv.FormatInt(int64(i), 16), now)
	}
	for range 10 {
		l.fail("198.51.100.6", now)
	}
	if l.blocked("203.0.113.1", now) == 0 {
		t.Fatal("during the flood a newcomer has a budget of its own, want the shared one")
	}
	now = now.Add(time.Hour) // every budget of the flood has long refilled
	for range 10 {
		l.fail("198.51.100.7", now) // one caller's wrong tokens
	}
	if wait := l.blocked("203.0.113.1", now); wait != 0 {
		t.Fatalf("an admin at a new address waits %v an hour after the flood, want 0: it shares the budget of 198.51.100.7", wait)
	}
	if wait := l.blocked("198.51.100.7", now); wait == 0 {
		t.Error("the caller who spent its budget may try again at once")
	}
}
