"""``POST /predict`` answered straight from WSGI, for the requests that need nothing else.

Flask's request and response objects, routing and hooks cost more than scoring a customer does.
A well-formed JSON request with a ``Content-Length`` is answered here with the bytes the Flask view
would send (:func:`churn.prediction.answer` writes both); every other request, and every request
that is refused or fails, goes on to Flask, which answers it with its errors and headers.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable

from churn.model import ChurnModel
from churn.prediction import answer
from churn.settings import Settings

WSGIApp = Callable[[dict, Callable], Iterable[bytes]]


class FastPredict:
    """WSGI middleware: scores plain ``/predict`` requests itself and passes everything else to ``app``."""

    def __init__(self, app: WSGIApp, model: ChurnModel, settings: Settings, headers: list[tuple[str, str]]) -> None:
        self.app = app
        self.model = model
        self.settings = settings
        # Headers Flask's hooks add to every response, so a response is the same whichever path sent it.
        self.headers = headers

    def __call__(self, environ: dict, start_response: Callable) -> Iterable[bytes]:
        """Answer ``environ``'s request, or hand it to Flask."""
        if environ.get("PATH_INFO") != "/predict" or environ.get("REQUEST_METHOD") != "POST":
            return self.app(environ, start_response)
        content_type = environ.get("CONTENT_TYPE", "")
        try:
            length = int(environ.get("CONTENT_LENGTH") or -1)
        except ValueError:
            length = -1
        if content_type.partition(";")[0].strip().lower() != "application/json" or not (
            0 <= length <= self.settings.max_request_bytes
        ):
            return self.app(environ, start_response)
        body = environ["wsgi.input"].read(length)
        try:
            payload = answer(self.model, body, self.settings.threshold, self.settings.max_batch_size)
        except Exception:
            # Refused or failed: Flask reads the same bytes again and answers with the error, its status
            # and, for a failure, its log line.
            environ["wsgi.input"] = io.BytesIO(body)
            return self.app(environ, start_response)
        start_response(
            "200 OK",
            [("Content-Type", "application/json"), ("Content-Length", str(len(payload))), *self.headers],
        )
        return [payload]
