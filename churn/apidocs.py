"""The API docs: Swagger UI, from the pinned ``flask-swagger-ui`` package's files, over the service's own document.

Everything is served from the service's origin. The page's script names the document itself, and Swagger
UI's query-string configuration stays off, so ``/apidocs/?url=…`` cannot make this origin show another
document.
"""

from __future__ import annotations

from pathlib import Path

import flask_swagger_ui
from flask import Flask, Response, abort, jsonify, send_from_directory

from churn import openapi
from churn.model import ChurnModel
from churn.settings import Settings

DOCS_ROUTE = "/apidocs/"
SPEC_ROUTE = "/apispec.json"
SWAGGER_UI_FILES = Path(flask_swagger_ui.__file__).parent / "dist"
# The only files of Swagger UI's distribution the page loads.
SWAGGER_UI_ASSETS = frozenset({"swagger-ui.css", "swagger-ui-bundle.js", "favicon-32x32.png", "favicon-16x16.png"})
PAGE = """<!doctype html>
<html lang="en">
<head>
  <meta charset="utf-8">
  <meta name="viewport" content="width=device-width, initial-scale=1">
  <title>Churn prediction API</title>
  <link rel="icon" type="image/png" href="favicon-32x32.png">
  <link rel="stylesheet" href="swagger-ui.css">
</head>
<body>
  <div id="swagger-ui"></div>
  <script src="swagger-ui-bundle.js"></script>
  <script src="../static/apidocs/init.js"></script>
</body>
</html>
"""


def register(app: Flask, model: ChurnModel, settings: Settings) -> None:
    """Add the document, the page and its files to ``app``."""
    document = openapi.spec(model, settings)

    @app.get(SPEC_ROUTE)
    def spec() -> Response:
        return jsonify(document)

    @app.get(DOCS_ROUTE)
    def page() -> Response:
        return Response(PAGE, mimetype="text/html")

    @app.get(f"{DOCS_ROUTE}<name>")
    def asset(name: str) -> Response:
        if name not in SWAGGER_UI_ASSETS:
            abort(404)
        return send_from_directory(SWAGGER_UI_FILES, name, max_age=86400)
