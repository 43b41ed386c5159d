package client

import (
	"errors"
	"testing"

	"mlservice/internal/retry"
)

// TestRetryable checks that the client's errors are classified right by the
// shared retry policy.
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
		if got := retry.Retryable(tt.err); got != tt.want {
			t.Errorf("Retryable(%v) = %v", tt.err, got)
		}
	}
}
