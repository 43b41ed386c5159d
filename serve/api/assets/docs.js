// Swagger UI over the server's own contract; every file comes from this
// server (no CDN), so the page works inside the bank's network.
window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  displayRequestDuration: true,
  defaultModelsExpandDepth: 0,
  tryItOutEnabled: false,
  // Try it out calls this very server, whatever host the page was opened on.
  validatorUrl: null,
});
