package api

import (
	_ "embed"

	"github.com/gofiber/fiber/v2"
)

// docsPage renders /openapi.json in the browser. It is our own page, embedded
// in the binary, so the docs work in a bank's network with no CDN.
//
//go:embed assets/docs.html
var docsPage []byte

func (s *Server) docs(c *fiber.Ctx) error {
	c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
	return c.Send(docsPage)
}
