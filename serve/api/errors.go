package api

import (
	"errors"
	"log/slog"
	"net/http"

	"github.com/gofiber/fiber/v2"

	"mlservice/schemas"
	"mlservice/serve/decision"
	"mlservice/serve/oip"
)

// Error is an error with its HTTP status and the code clients switch on.
// Handlers return it; errorHandler writes it in the one error shape.
type Error struct {
	Status  int
	Code    string
	Message string
	Fields  map[string]string
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// The error codes of the API (schemas/error.schema.json lists the same).
const (
	CodeMalformedJSON        = "malformed_json"
	CodeBodyTooLarge         = "body_too_large"
	CodeUnsupportedMediaType = "unsupported_media_type"
	CodeValidationFailed     = "validation_failed"
	CodeUnauthorized         = "unauthorized"
	CodeForbidden            = "forbidden"
	CodeNotFound             = "not_found"
	CodeMethodNotAllowed     = "method_not_allowed"
	CodeNotReady             = "not_ready"
	CodeConflict             = "conflict"
	CodeInternal             = "internal"
	CodeAdminDisabled        = "admin_disabled"
	// CodeOverloaded: too many batches at once (503 with Retry-After).
	CodeOverloaded = "overloaded"
	// CodeUndecidable: the model gave no finite score for this application,
	// or declined it with no reason it can give.
	CodeUndecidable = "undecidable"
	// CodeRecordUnavailable: the decision could not be recorded, so none is given.
	CodeRecordUnavailable = "record_unavailable"
	// CodeBadGateway is written by the load balancer in front of the
	// replicas (stack/lb), never by the server itself.
	CodeBadGateway = "bad_gateway"
	// CodeHeadersTooLarge: the request's headers are over the server's
	// buffer (431), refused before any route.
	CodeHeadersTooLarge = "headers_too_large"
	// CodeBadRequest: an HTTP request the server cannot read (400 before
	// any route), not a body's JSON.
	CodeBadRequest = "bad_request"
	// CodeTooManyAttempts: too many failed tokens from one address (429
	// with Retry-After).
	CodeTooManyAttempts = "too_many_attempts"
)

// errorBody is the one error shape of every route.
type errorBody struct {
	Error struct {
		Code    string            `json:"code"`
		Message string            `json:"message"`
		Fields  map[string]string `json:"fields,omitempty"`
	} `json:"error"`
	RequestID string `json:"request_id,omitempty"`
}

// asAPIError maps any error to an *Error. Unknown errors become a 500 that
// says nothing about internals; the caller logs the original.
func asAPIError(err error) *Error {
	var (
		apiErr    *Error
		fields    schemas.FieldErrors
		malformed *schemas.MalformedError
		fiberErr  *fiber.Error
	)
	switch {
	case errors.As(err, &apiErr):
		return apiErr
	case errors.As(err, &fields):
		return &Error{Status: http.StatusUnprocessableEntity, Code: CodeValidationFailed,
			Message: "the application has invalid fields", Fields: fields}
	case errors.As(err, &malformed):
		return &Error{Status: http.StatusBadRequest, Code: CodeMalformedJSON, Message: malformed.Error()}
	case errors.As(err, &fiberErr):
		return fromFiber(fiberErr)
	case errors.Is(err, decision.ErrNotReady):
		return errNotReady
	case errors.Is(err, decision.ErrBadScore):
		return &Error{Status: http.StatusUnprocessableEntity, Code: CodeUndecidable,
			Message: "the model gave no finite score for this application; it cannot be decided automatically"}
	case errors.Is(err, decision.ErrNoReasons):
		return &Error{Status: http.StatusUnprocessableEntity, Code: CodeUndecidable,
			Message: "the model declined this application with no reason it can give; it cannot be decided automatically"}
	case errors.Is(err, decision.ErrUnrecorded):
		return &Error{Status: http.StatusServiceUnavailable, Code: CodeRecordUnavailable,
			Message: decision.UnrecordedAnswer}
	}
	return &Error{Status: http.StatusInternalServerError, Code: CodeInternal, Message: "internal error"}
}

// fromFiber maps the errors Fiber and fasthttp raise before a handler runs.
func fromFiber(e *fiber.Error) *Error {
	switch e.Code {
	case http.StatusNotFound:
		return &Error{Status: e.Code, Code: CodeNotFound, Message: "no such route"}
	case http.StatusMethodNotAllowed:
		return &Error{Status: e.Code, Code: CodeMethodNotAllowed, Message: "method not allowed on this route"}
	case http.StatusRequestEntityTooLarge:
		return &Error{Status: e.Code, Code: CodeBodyTooLarge, Message: "the request body is too large"}
	case http.StatusUnsupportedMediaType:
		return &Error{Status: e.Code, Code: CodeUnsupportedMediaType, Message: e.Message}
	case http.StatusRequestHeaderFieldsTooLarge:
		return &Error{Status: e.Code, Code: CodeHeadersTooLarge, Message: "the request's headers are too large"}
	case http.StatusRequestTimeout:
		return &Error{Status: e.Code, Code: CodeBadRequest, Message: "the request did not arrive within the server's read timeout"}
	}
	if e.Code >= 400 && e.Code < 500 {
		return &Error{Status: e.Code, Code: CodeBadRequest, Message: "bad request"}
	}
	return &Error{Status: http.StatusInternalServerError, Code: CodeInternal, Message: "internal error"}
}

// writeError writes err in the one error shape and logs server faults.
// An error fasthttp raises before any middleware (a body over the limit,
// headers too large) gets its request id here, and the protocol's shape
// when the request's headers were on /v2 though fasthttp has reset them.
func (s *Server) writeError(c *fiber.Ctx, err error) error {
	if requestID(c) == "" {
		s.setRequestID(c)
	}
	wasProtocol := s.protocolReads.done(c.Context())
	return writeErrorAs(c, err, s.log, wasProtocol || oip.IsPath(c.Request().URI().Path()))
}

// ErrorHandler turns any error into the one error shape; unknown errors
// become a 500 with no internals, logged to log.
func ErrorHandler(log *slog.Logger) fiber.ErrorHandler {
	return func(c *fiber.Ctx, err error) error {
		return writeErrorAs(c, err, log, oip.IsPath(c.Request().URI().Path()))
	}
}

// writeErrorAs writes err in /v1's error shape, or in the protocol's
// ({"error": "..."}, all its clients read) for a request on /v2.
func writeErrorAs(c *fiber.Ctx, err error, log *slog.Logger, protocol bool) error {
	e := asAPIError(err)
	if e.Status >= 500 && e.Code == CodeInternal && log != nil {
		log.Error("request failed", "method", c.Method(), "path", c.Path(),
			"request_id", requestID(c), "error", err)
	}
	if protocol {
		return oip.WriteError(c, e.Status, e.Message)
	}
	var body errorBody
	body.Error.Code = e.Code
	body.Error.Message = e.Message
	body.Error.Fields = e.Fields
	body.RequestID = requestID(c)
	if e.Status == http.StatusUnauthorized {
		c.Set(fiber.HeaderWWWAuthenticate, `Bearer realm="mlservice-admin"`)
	}
	return c.Status(e.Status).JSON(body)
}
