"""The HTTP endpoints, built around an already-loaded model."""

from __future__ import annotations

from pathlib import Path
from typing import IO

import pandas as pd
from flask import Blueprint, Response, jsonify, request
from werkzeug.utils import secure_filename

from churn.csv_files import CsvError, check_columns, read_csv, score_frame
from churn.errors import BadRequest, InvalidCustomer, PayloadTooLarge, UnsupportedMediaType
from churn.model import ChurnModel
from churn.prediction import answer
from churn.settings import Settings

UPLOAD_FIELD = "file"
JSON = "application/json"


def blueprint(model: ChurnModel, settings: Settings, index_html: str) -> Blueprint:
    """The service's endpoints, serving ``model`` under ``settings``."""
    routes = Blueprint("churn", __name__)
    health = {"status": "ok", "model": model.identity}
    described = {
        **model.metadata,
        "serving": {
            "threshold": settings.threshold,
            "max_batch_size": settings.max_batch_size,
            "max_request_bytes": settings.max_request_bytes,
        },
    }

    @routes.post("/predict")
    def predict() -> Response:
        """Score one customer (an object) or a batch (an array), in order."""
        if not request.is_json:
            raise UnsupportedMediaType(
                "Send the customer as JSON with the header Content-Type: application/json "
                "(with curl: -H 'Content-Type: application/json')."
            )
        body = request.get_data(cache=False)
        if len(body) > settings.max_request_bytes:
            raise PayloadTooLarge.body(settings.max_request_bytes)
        return Response(answer(model, body, settings.threshold, settings.max_batch_size), mimetype=JSON)

    @routes.post("/predict_file")
    def predict_file() -> Response:
        """Score an uploaded CSV; the scored CSV comes back, all or nothing as for a batch."""
        if request.mimetype != "multipart/form-data":
            raise UnsupportedMediaType(
                f"Upload the CSV as multipart/form-data in a field named {UPLOAD_FIELD!r} "
                f"(with curl: -F {UPLOAD_FIELD}=@customers.csv)."
            )
        upload = request.files.get(UPLOAD_FIELD)
        if upload is None:
            raise BadRequest(f"The form has no file in a field named {UPLOAD_FIELD!r}.")
        frame = _read_upload(upload.stream, settings.max_batch_size)
        result = score_frame(model, frame, settings.threshold)
        if result.problems:
            raise InvalidCustomer(result.problems)
        name = secure_filename(Path(upload.filename or "").stem) or "customers"
        return Response(
            result.scored.to_csv(index=False),
            mimetype="text/csv",
            headers={"Content-Disposition": f'attachment; filename="{name}-scored.csv"'},
        )

    @routes.get("/ping")
    def ping() -> Response:
        """Liveness, as the course has it."""
        return Response("PONG", mimetype="text/plain")

    @routes.get("/health")
    def health_check() -> Response:
        """Readiness, with the identity of the model being served."""
        return jsonify(health)

    @routes.get("/model")
    def model_metadata() -> Response:
        """The model's metadata: metrics, versions, schema, and the serving settings."""
        return jsonify(described)

    @routes.get("/")
    def index() -> Response:
        """The page to score a customer by hand; rendered once, as load balancers probe it."""
        return Response(index_html, mimetype="text/html")

    return routes


def _read_upload(stream: IO[bytes], max_rows: int) -> pd.DataFrame:
    """The uploaded CSV's rows, refused if empty, unreadable, lacking a feature or over ``max_rows``."""
    try:
        # One row past the limit is enough to tell that the file is over it.
        frame = next(read_csv(stream, chunk_rows=max_rows + 1))
    except CsvError as error:
        raise BadRequest(str(error)) from None
    check_columns(list(frame.columns))
    if frame.empty:
        raise BadRequest("The file has a header but no rows: send at least one customer.")
    if len(frame) > max_rows:
        raise PayloadTooLarge(f"The file has more than {max_rows} rows, the limit. Split it, or use predict_file.py.")
    return frame
