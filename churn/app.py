"""The application factory, and the one place that turns the environment into a running service."""

from __future__ import annotations

import gc
import logging
import sys
from typing import Any

from flask import Flask, Response
from werkzeug.exceptions import HTTPException

from churn import apidocs, json_replies, problems, request_log, schema
from churn.auth import api_keys, require_key
from churn.endpoints import Service
from churn.examples import SAMPLE_CUSTOMER
from churn.explain import ACTIONABLE, Explainer
from churn.log_sinks import with_password_file
from churn.metrics import Metrics
from churn.model import ChurnModel, ModelLoadError, load_model
from churn.monitoring import MonitoringGauges, service_monitor
from churn.pipeline import Observer, Pipeline, check_media_type, limit_body
from churn.prediction_log import PredictionLogError, open_prediction_log
from churn.settings import Settings, SettingsError

logger = logging.getLogger(__name__)
# On every response. The policy admits only the service's own scripts, styles and requests, so an
# injected script or a framing page has nothing to work with.
SECURITY_HEADERS = (
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "no-referrer"),
    (
        "Content-Security-Policy",
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    ),
)
# Flask's paths, by their first segment, as metrics and logs name them.
PAGE_LABELS = {"": "/", "static": "/static/", "apidocs": apidocs.DOCS_ROUTE, apidocs.SPEC_ROUTE[1:]: apidocs.SPEC_ROUTE}


def create_app(model: ChurnModel, settings: Settings | None = None) -> Flask:
    """The service for ``model`` under ``settings`` (defaults when omitted).

    Raises :class:`PredictionLogError` when the prediction log's URL cannot be used, and
    :class:`SettingsError` when its password file cannot.

    The app is Flask, for the page, the API docs and static files; every request, those included,
    goes through :class:`churn.pipeline.Pipeline`, which answers the API itself.
    """
    settings = with_password_file(settings or Settings())
    app = Flask(__name__)
    app.json.sort_keys = False  # type: ignore[attr-defined]
    metrics = Metrics(model.metadata) if settings.metrics else None
    prediction_log = None
    if settings.prediction_log is not None:
        prediction_log = open_prediction_log(settings.prediction_log, settings.prediction_log_buffer, metrics)
    explainer = Explainer.from_model(model.scorer, model.metadata["reference"])
    monitor = service_monitor(settings.prediction_log, model.metadata, settings)
    gauges = None if metrics is None or monitor is None else MonitoringGauges(metrics.registry, monitor)
    service = Service(model, settings, metrics, prediction_log, explainer, gauges)

    index_html = app.jinja_env.get_template("index.html").render(
        categorical=schema.CATEGORICAL,
        numerical=schema.NUMERICAL,
        example=SAMPLE_CUSTOMER,
        threshold=settings.threshold,
        training_ranges=training_ranges(model.metadata),
        actionable=ACTIONABLE,
    )
    app.add_url_rule("/", "index", lambda: Response(index_html, mimetype="text/html"))
    apidocs.register(app, model, settings)
    _register_errors(app)

    keys = api_keys(settings)
    rules = [limit_body(settings.max_request_bytes), check_media_type]
    if keys:
        rules.append(require_key(keys))
    observers: list[Observer] = []
    if metrics is not None:
        observers.append(lambda call, status, seconds: metrics.request(call.endpoint, status, seconds))
    if settings.log_format == "json":
        observers.append(request_log.json_lines())
    app.wsgi_app = Pipeline(  # type: ignore[method-assign]
        service.endpoints(), app.wsgi_app, rules, observers, SECURITY_HEADERS, PAGE_LABELS
    )
    app.extensions["churn"] = service
    return app


def create_app_from_env() -> Flask:
    """The app for ``gunicorn predict:app``: settings from the environment, the model checked.

    Anything that would make the service serve wrong answers or errors stops the process at start
    with one line saying why and what to do.
    """
    try:
        settings = Settings.from_env()
        keys = api_keys(settings)
        app = create_app(load_model(settings.model_path), settings)
    except (SettingsError, ModelLoadError, PredictionLogError) as error:
        raise SystemExit(f"churn service cannot start: {error}") from None
    if not keys:
        print(
            "churn service: no API key is set (CHURN_API_KEYS or CHURN_API_KEYS_FILE): anyone who can reach it "
            "may use it.",
            file=sys.stderr,
        )
    return app


def training_ranges(metadata: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Each number's smallest and largest value in training, from the metadata's reference distributions."""
    numerical = metadata["reference"]["numerical"]
    return {name: {"min": stats["min"], "max": stats["max"]} for name, stats in numerical.items()}


def warm_up(app: Flask) -> None:
    """Ready a worker serving ``app``: its prediction log's writer started, what is loaded out of collections.

    The writer starts now so that /ready knows soon. gunicorn.conf.py also serves the benchmark's other
    apps, which have no prediction log.
    """
    service: Service | None = app.extensions.get("churn")
    if service is not None and service.prediction_log is not None:
        service.prediction_log.ready()
    # The model, the app and the libraries live as long as the worker; walking them in a full collection
    # costs some 100 ms of CPU, which whichever request set it off would pay.
    gc.freeze()


def shut_down(app: Flask, timeout: float) -> None:
    """For a stopping worker: write out what the prediction log holds (within ``timeout`` seconds), then the counts."""
    service: Service | None = app.extensions.get("churn")
    if service is None:
        return
    if service.prediction_log is not None:
        left = service.prediction_log.close(timeout)
        if left:
            logger.warning("the prediction log could not write %d records before stopping", left)
    if service.metrics is not None:
        service.metrics.flush()


def _register_errors(app: Flask) -> None:
    """Flask's own errors (an unknown path, a failure in a page) in the service's one format."""

    @app.errorhandler(HTTPException)
    def http_error(error: HTTPException) -> Response:
        code = error.code or 500
        response = _problem_response(code, error.description or "")
        # Keeps headers such as 405's Allow.
        for name, value in error.get_headers():
            if name.lower() != "content-type":
                response.headers[name] = value
        return response

    @app.errorhandler(Exception)
    def unexpected_error(error: Exception) -> Response:
        logger.exception("unhandled error")
        return _problem_response(500, "The service failed to handle this request; the error is in its log.")


def _problem_response(status: int, detail: str) -> Response:
    return Response(json_replies.encode(problems.document(status, detail)), status, mimetype=problems.MEDIA_TYPE)
