// Starts Swagger UI (served by Homeward from the swagger-ui-bundle package, Apache-2.0) on the
// OpenAPI document named by the page; a file, not an inline script, so the CSP holds (ADR 0019).
(function () {
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.getAttribute("data-openapi-url"),
    dom_id: "#swagger-ui",
    deepLinking: true,
    presets: [SwaggerUIBundle.presets.apis],
    layout: "BaseLayout",
  });
})();
