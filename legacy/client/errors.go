package client

import (
	"errors"
	"net/http"
	"strconv"
	"time"
)

// APIError is an answer from the service in its error shape
// ({"error":{"code","message","fields"}}), with the HTTP status.
type APIError struct {
	Status  int               `json:"-"`
	Code    string            `json:"code"`
	Message string            `json:"message"`
	Fields  map[string]string `json:"fields,omitempty"`
	// RequestID is the service's id for the call, for its logs.
	RequestID string `json:"-"`
	// RetryAfter is the wait the service asked for (Retry-After), or 0.
	RetryAfter time.Duration `json:"-"`
}

func (e *APIError) Error() string {
	s := "decision service: " + strconv.Itoa(e.Status) + " " + e.Code + ": " + e.Message
	for f, m := range e.Fields {
		s += "; " + f + ": " + m
	}
	return s
}

// UnavailableError means the service could not be reached or did not answer
// in time: the application was not decided and must be kept.
type UnavailableError struct{ Err error }

func (e *UnavailableError) Error() string { return "decision service unavailable: " + e.Err.Error() }
func (e *UnavailableError) Unwrap() error { return e.Err }

// ProtocolError means the service answered 200 with something this client
// cannot read: a version mismatch, not the officer's fault.
type ProtocolError struct{ Reason string }

func (e *ProtocolError) Error() string { return "decision service answer not understood: " + e.Reason }

// Retryable reports whether err is an outage worth retrying later: the
// service unreachable or too slow, a 5xx (503 while no model is loaded), or
// 429. A 4xx other than 429 is a refusal: sending it again changes nothing.
func Retryable(err error) bool {
	var unavailable *UnavailableError
	if errors.As(err, &unavailable) {
		return true
	}
	var apiErr *APIError
	if errors.As(err, &apiErr) {
		return apiErr.Status >= 500 || apiErr.Status == http.StatusTooManyRequests
	}
	return false
}

// Refusal returns the service's refusal of the application itself (422 with
// the fields it names), or nil for any other error.
func Refusal(err error) *APIError {
	var apiErr *APIError
	if errors.As(err, &apiErr) && apiErr.Status == http.StatusUnprocessableEntity {
		return apiErr
	}
	return nil
}

// retryAfter reads a Retry-After header given in seconds; dates are rare
// enough from this service to ignore.
func retryAfter(v string) time.Duration {
	n, err := strconv.Atoi(v)
	if err != nil || n < 0 {
		return 0
	}
	return time.Duration(n) * time.Second
}
