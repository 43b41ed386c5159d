package client

import (
	"errors"
	"testing"
	"time"
)

func TestRetryable(t *testing.T) {
	tests := []struct {
		err  error
		want bool
	}{
		{&UnavailableError{Err: errors.New("timeout")}, true},
		{&APIError{Status: 503}, true},
		{&APIError{Status: 500}, true},
		{&APIError{Status: 429}, true},
		{&APIError{Status: 422}, false},
		{&APIError{Status: 400}, false},
		{&ProtocolError{}, false},
	}
	for _, tt := range tests {
		if got := Retryable(tt.err); got != tt.want {
			t.Errorf("Retryable(%v) = %v", tt.err, got)
		}
	}
}

func TestBackoffGrowsToMax(t *testing.T) {
	b := Backoff{Initial: 100 * time.Millisecond, Max: time.Second}
	for failures, bound := range map[int]time.Duration{1: 100 * time.Millisecond, 3: 400 * time.Millisecond, 10: time.Second} {
		for range 20 {
			if w := b.Wait(failures); w < bound/2 || w > bound {
				t.Fatalf("Wait(%d) = %s, want within [%s, %s]", failures, w, bound/2, bound)
			}
		}
	}
}
