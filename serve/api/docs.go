package api

import (
	"embed"
	"io/fs"
	"path"

	"github.com/gofiber/fiber/v2"
)

// /docs is Swagger UI over /openapi.json. The page and its initialiser are
// ours (assets/docs.html, assets/docs.js); the Swagger UI files come from the
// npm package pinned in swagger/package-lock.json, copied into
// assets/swagger/ by `make swagger-ui` and embedded here, so the docs work in
// a bank's network with no CDN.
var (
	//go:embed assets/docs.html assets/docs.js assets/docs-missing.html
	docsFiles embed.FS
	//go:embed assets/swagger
	swaggerFiles embed.FS
)

// SwaggerFiles are the files of the pinned swagger-ui-dist package /docs
// serves (swagger/swagger.mk copies the same list).
var SwaggerFiles = []string{"swagger-ui-bundle.js", "swagger-ui.css", "favicon-32x32.png", "LICENSE", "NOTICE"}

// SwaggerUIEmbedded reports whether the binary carries the Swagger UI files.
func SwaggerUIEmbedded() bool {
	_, err := fs.Stat(swaggerFiles, "assets/swagger/swagger-ui-bundle.js")
	return err == nil
}

func (s *Server) docs(c *fiber.Ctx) error {
	page := "assets/docs.html"
	if !SwaggerUIEmbedded() {
		page = "assets/docs-missing.html"
	}
	b, err := docsFiles.ReadFile(page)
	if err != nil {
		return err
	}
	c.Set(fiber.HeaderContentType, fiber.MIMETextHTMLCharsetUTF8)
	return c.Send(b)
}

// docsAsset serves /docs/<file>: docs.js or one of SwaggerFiles.
func (s *Server) docsAsset(c *fiber.Ctx) error {
	name := c.Params("file")
	var (
		b   []byte
		err error
	)
	switch {
	case name == "docs.js":
		b, err = docsFiles.ReadFile("assets/docs.js")
	case isSwaggerFile(name):
		b, err = swaggerFiles.ReadFile("assets/swagger/" + name)
	default:
		return fiber.ErrNotFound
	}
	if err != nil {
		return fiber.ErrNotFound
	}
	switch path.Ext(name) {
	case ".js":
		c.Set(fiber.HeaderContentType, "text/javascript; charset=utf-8")
	case ".css":
		c.Set(fiber.HeaderContentType, "text/css; charset=utf-8")
	case ".png":
		c.Set(fiber.HeaderContentType, "image/png")
	default:
		c.Set(fiber.HeaderContentType, fiber.MIMETextPlainCharsetUTF8)
	}
	c.Set(fiber.HeaderCacheControl, "public, max-age=3600")
	return c.Send(b)
}

func isSwaggerFile(name string) bool {
	for _, f := range SwaggerFiles {
		if f == name {
			return true
		}
	}
	return false
}
