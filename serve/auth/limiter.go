package auth

import (
	"sync"
	"time"
)

// maxTracked bounds the addresses the limiter remembers; past it, addresses
// whose budget has refilled are forgotten (at most once a refill), and while
// none has, every other address shares one bucket (a flood from many
// addresses is throttled as one, and only while it lasts).
const maxTracked = 10000

// limiter is a token bucket of authentication failures per client address.
type limiter struct {
	burst  float64
	refill time.Duration

	mu      sync.Mutex
	buckets map[string]*bucket
	swept   time.Time // when the refilled buckets were last forgotten
}

type bucket struct {
	tokens float64
	at     time.Time
}

func newLimiter(burst int, refill time.Duration) *limiter {
	return &limiter{burst: float64(burst), refill: refill, buckets: map[string]*bucket{}}
}

// level returns the bucket's tokens at now; the caller holds mu.
func (l *limiter) level(b *bucket, now time.Time) float64 {
	return min(l.burst, b.tokens+float64(now.Sub(b.at))/float64(l.refill))
}

// blocked returns how long remote must wait before its next attempt (0: it
// may try now).
func (l *limiter) blocked(remote string, now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	b, ok := l.buckets[l.key(remote)]
	if !ok {
		return 0
	}
	if lv := l.level(b, now); lv < 1 {
		return time.Duration((1 - lv) * float64(l.refill))
	}
	return 0
}

// fail spends one token of remote's budget.
func (l *limiter) fail(remote string, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if _, ok := l.buckets[remote]; !ok && len(l.buckets) >= maxTracked && now.Sub(l.swept) >= l.refill {
		// Checked on every newcomer, not only until the shared bucket
		// exists: else one flood would make every later newcomer share a
		// budget until the restart.
		l.forgetRefilled(now)
		l.swept = now
	}
	key := l.key(remote)
	b, ok := l.buckets[key]
	if !ok {
		b = &bucket{tokens: l.burst, at: now}
		l.buckets[key] = b
	}
	b.tokens, b.at = l.level(b, now)-1, now
}

// key maps an address the limiter no longer has room for to the shared bucket.
func (l *limiter) key(remote string) string {
	if _, ok := l.buckets[remote]; ok || len(l.buckets) < maxTracked {
		return remote
	}
	return ""
}

func (l *limiter) forgetRefilled(now time.Time) {
	for k, b := range l.buckets {
		if l.level(b, now) >= l.burst {
			delete(l.buckets, k)
		}
	}
}
