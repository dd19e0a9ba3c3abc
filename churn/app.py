"""The Flask application factory, and the one place that turns the environment into a running app."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from http import HTTPStatus

from flasgger import Swagger
from flask import Flask, Response, current_app, request
from werkzeug.exceptions import HTTPException

from churn import openapi, routes, schema
from churn.errors import PayloadTooLarge, Problem, ServiceError
from churn.examples import SAMPLE_CUSTOMER
from churn.fast_path import FastPredict
from churn.model import ChurnModel, ModelLoadError, load_model
from churn.settings import Settings, SettingsError

logger = logging.getLogger(__name__)
# On every response: browsers must not guess a type other than the one declared.
HEADERS = {"X-Content-Type-Options": "nosniff"}


def create_app(model: ChurnModel, settings: Settings | None = None) -> Flask:
    """A Flask app serving ``model``; ``settings`` default to :class:`Settings`' defaults."""
    settings = settings or Settings()
    app = Flask(__name__)
    # For bodies sent without a Content-Length (chunked), Werkzeug stops reading here: one byte
    # past the limit, so the view can tell an oversized body from one exactly at the limit.
    app.config["MAX_CONTENT_LENGTH"] = settings.max_request_bytes + 1
    app.json.sort_keys = False  # type: ignore[attr-defined]

    index_html = app.jinja_env.get_template("index.html").render(
        categorical=schema.CATEGORICAL,
        numerical=schema.NUMERICAL,
        example=SAMPLE_CUSTOMER,
        threshold=settings.threshold,
    )
    app.register_blueprint(routes.blueprint(model, settings, index_html))
    _register_guards(app, settings)
    Swagger(app, template=openapi.spec(settings), config=openapi.SWAGGER_CONFIG)
    app.wsgi_app = FastPredict(app.wsgi_app, model, settings, list(HEADERS.items()))  # type: ignore[method-assign]
    return app


def create_app_from_env() -> Flask:
    """The app for ``gunicorn predict:app``: settings from the environment, the model checked.

    A model that cannot be served stops the process with the reason and the fix, rather than
    serving wrong answers or errors.
    """
    try:
        settings = Settings.from_env()
        model = load_model(settings.model_path)
    except (SettingsError, ModelLoadError) as error:
        raise SystemExit(f"churn service cannot start: {error}") from None
    return create_app(model, settings)


def problem_response(status: int, detail: str, problems: Sequence[Problem] = ()) -> Response:
    """The service's one error format, RFC 9457 problem details with a list of field problems."""
    body = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "errors": [problem.as_dict() for problem in problems],
    }
    response = current_app.json.response(body)
    response.status_code = status
    response.mimetype = "application/problem+json"
    return response


def _register_guards(app: Flask, settings: Settings) -> None:
    @app.before_request
    def refuse_large_bodies() -> None:
        # Decided from the header alone, so an oversized body is never read.
        if request.content_length is not None and request.content_length > settings.max_request_bytes:
            raise PayloadTooLarge.body(settings.max_request_bytes, request.content_length)

    @app.after_request
    def add_headers(response: Response) -> Response:
        response.headers.update(HEADERS)
        return response

    @app.errorhandler(ServiceError)
    def service_error(error: ServiceError) -> Response:
        return problem_response(error.status, error.detail, error.problems)

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response:
        response = problem_response(error.code or 500, error.description or HTTPStatus(error.code or 500).phrase)
        # Keeps headers such as 405's Allow.
        for name, value in error.get_headers():
            if name.lower() != "content-type":
                response.headers[name] = value
        return response

    @app.errorhandler(Exception)
    def unexpected_error(error: Exception) -> Response:
        logger.exception("unhandled error on %s %s", request.method, request.path)
        return problem_response(500, "The service failed to handle this request; the error is in its log.")
