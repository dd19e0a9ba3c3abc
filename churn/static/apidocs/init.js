// Swagger UI over the service's own document. queryConfigEnabled stays false: ?url= and ?configUrl= are ignored.
window.addEventListener("load", function () {
  window.ui = SwaggerUIBundle({
    url: "../apispec.json",
    dom_id: "#swagger-ui",
    queryConfigEnabled: false,
    deepLinking: false,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis],
  });
});
