"""The monitoring endpoints: outcomes in (``POST /feedback``), drift and performance out (JSON), and the page.

The page is open to anyone, as the scoring page is: it holds no data. Its script fetches the figures from
the JSON endpoints, which need the API key when the service has keys; the page asks for it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import parse_qs

from jinja2 import Environment, FileSystemLoader, select_autoescape
from sqlalchemy.exc import OperationalError

from churn import json_replies
from churn.errors import UnsupportedFormat
from churn.monitoring import Monitor, Window, service_monitor, unavailable
from churn.outcomes import parse_feedback
from churn.pipeline import Call, Endpoint, Reply
from churn.problems import Refused

if TYPE_CHECKING:
    from churn.endpoints import Service

JSON = "application/json"
HTML = "text/html; charset=utf-8"
TEMPLATES = Path(__file__).parent / "templates"
# The figures describe customers: no shared cache may keep them.
PRIVATE = (("Cache-Control", "no-store"),)


def templates() -> Environment:
    """The Jinja environment of the service's templates, escaping HTML."""
    return Environment(loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(), keep_trailing_newline=True)


def page_data(monitor: Monitor | None, reason: str | None) -> dict[str, object]:
    """What the page's script starts from: the default window and thresholds, or why there is nothing to show."""
    if monitor is None:
        return {"unavailable": reason}
    settings = monitor.settings
    return {"window": settings.window, "thresholds": {"watch": settings.psi_watch, "act": settings.psi_act}}


def monitoring_endpoints(service: Service) -> dict[str, Endpoint]:
    """``/feedback``, ``/monitoring/drift``, ``/monitoring/performance`` and the page ``/monitoring``."""
    settings = service.settings
    reason = unavailable(settings.prediction_log, service.model.metadata)
    monitor = service_monitor(settings.prediction_log, service.model.metadata, settings)
    page = templates().get_template("monitoring.html").render(data=page_data(monitor, reason), standalone=False)

    def needs_monitor(handler: Callable[[Monitor, Call], Reply]) -> Callable[[Call], Reply]:
        def answer(call: Call) -> Reply:
            if monitor is None:
                raise Refused(503, reason or "Monitoring is not available.")
            try:
                return handler(monitor, call)
            except OperationalError:
                raise Refused(503, "The prediction log's database cannot be reached now; try again later.") from None

        return answer

    def feedback(monitor: Monitor, call: Call) -> Reply:
        body = call.body(settings.max_request_bytes)
        recorded = monitor.record(parse_feedback(body, settings.max_batch_size, datetime.now(UTC)))
        return _json({"recorded": recorded})

    def drift(monitor: Monitor, call: Call) -> Reply:
        return _json(monitor.drift(window_of(monitor, call)))

    def performance(monitor: Monitor, call: Call) -> Reply:
        return _json(monitor.performance(window_of(monitor, call)))

    return {
        "/feedback": Endpoint("POST", needs_monitor(feedback), protected=True, accepts=(JSON, UnsupportedFormat.json)),
        "/monitoring/drift": Endpoint("GET", needs_monitor(drift), protected=True),
        "/monitoring/performance": Endpoint("GET", needs_monitor(performance), protected=True),
        "/monitoring": Endpoint("GET", lambda call: Reply(200, page.encode(), HTML)),
    }


def window_of(monitor: Monitor, call: Call) -> Window:
    """The window a request's query asks for: ``last``, or ``since`` and maybe ``until``; else the default."""
    query = parse_qs(call.environ.get("QUERY_STRING", ""))
    last, since, until = (query[name][-1] if name in query else None for name in ("last", "since", "until"))
    return monitor.window(last, since, until)


def _json(document: object) -> Reply:
    return Reply(200, json_replies.encode(document), JSON, PRIVATE)
