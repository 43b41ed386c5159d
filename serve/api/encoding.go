package api

import (
	"bytes"
	"compress/gzip"
	"compress/zlib"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/gofiber/fiber/v2"
)

// contentEncoding decodes a gzip or deflate request body (tritonclient's
// request_compression_algorithm sends either) before any handler reads it,
// and refuses any other encoding with 415.
//
// Why here: Fiber's Body() inflates a compressed body with no limit, and its
// BodyLimit counts only the bytes on the wire, so 500 KB of gzip became
// 512 MiB in memory before a handler could refuse it. Decoding stops at
// limit bytes, the most any route accepts.
func contentEncoding(limit int) fiber.Handler {
	return func(c *fiber.Ctx) error {
		enc := strings.ToLower(strings.TrimSpace(c.Get(fiber.HeaderContentEncoding)))
		if enc == "" || enc == "identity" {
			return c.Next()
		}
		var (
			zr  io.Reader
			err error
		)
		raw := bytes.NewReader(c.Request().Body())
		switch enc {
		case "gzip", "x-gzip":
			zr, err = gzip.NewReader(raw)
		case "deflate": // HTTP's deflate is the zlib format (RFC 9110 §8.4.1.2)
			zr, err = zlib.NewReader(raw)
		default:
			return &Error{Status: http.StatusUnsupportedMediaType, Code: CodeUnsupportedMediaType,
				Message: fmt.Sprintf("Content-Encoding %q is not accepted; send gzip, deflate or none", enc)}
		}
		var body []byte
		if err == nil {
			body, err = io.ReadAll(io.LimitReader(zr, int64(limit)+1))
		}
		switch {
		case err != nil:
			return &Error{Status: http.StatusBadRequest, Code: CodeMalformedJSON,
				Message: "the " + enc + " request body is corrupt or truncated: " + err.Error()}
		case len(body) > limit:
			return &Error{Status: http.StatusRequestEntityTooLarge, Code: CodeBodyTooLarge,
				Message: fmt.Sprintf("the request body decodes to more than %d bytes", limit)}
		}
		c.Request().Header.Del(fiber.HeaderContentEncoding)
		c.Request().SetBodyRaw(body)
		return c.Next()
	}
}
