package client

import (
	"errors"
	"fmt"
	"math"
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
	// retryAfter is the wait the service asked for (Retry-After), or 0.
	retryAfter time.Duration
}

// HTTPStatus and RetryAfter tell the retry policy (internal/retry) what the
// service said.
func (e *APIError) HTTPStatus() int           { return e.Status }
func (e *APIError) RetryAfter() time.Duration { return e.retryAfter }

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

// Transient tells the retry policy that no usable answer came back.
func (e *UnavailableError) Transient() bool { return true }

// ProtocolError means the service answered 200 with something this client
// cannot read: a version mismatch, not the officer's fault.
type ProtocolError struct{ Reason string }

func (e *ProtocolError) Error() string { return "decision service answer not understood: " + e.Reason }

// Outage reports whether err says that the service as a whole is not
// deciding right now (unreachable, too slow, 503 while no model is loaded,
// 429, or a gateway in front of it answering 502 or 504: the service never
// sends those itself), so every other application would fail the same way.
// Any other error is about this call's applications: a refusal, a server
// fault, an answer not understood.
func Outage(err error) bool {
	if _, ok := errors.AsType[*UnavailableError](err); ok {
		return true
	}
	if e, ok := errors.AsType[*APIError](err); ok {
		switch e.Status {
		case http.StatusServiceUnavailable, http.StatusTooManyRequests, http.StatusBadGateway, http.StatusGatewayTimeout:
			return true
		}
	}
	return false
}

// Unusable says why a 200 answer is not a decision one can act on (a
// probability that is not a number in [0, 1], no model version), or "".
func Unusable(d Decision) string {
	switch {
	case math.IsNaN(d.Probability) || d.Probability < 0 || d.Probability > 1:
		return fmt.Sprintf("the decision's probability %v is not a number between 0 and 1", d.Probability)
	case d.Model.Version == "":
		return "the decision names no model version"
	}
	return ""
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
