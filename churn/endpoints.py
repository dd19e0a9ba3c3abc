"""The service's endpoints as pipeline handlers: each adapts a framework-free step to HTTP."""

from __future__ import annotations

import csv
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import IO

import pandas as pd
from werkzeug.formparser import parse_form_data
from werkzeug.utils import secure_filename

from churn import json_replies, prediction, schema
from churn.csv_files import PREDICTION_COLUMN, PROBABILITY_COLUMN, CsvError, check_columns, read_csv, score_frame
from churn.errors import InvalidCustomer, MalformedInput, TooLarge, UnsupportedFormat
from churn.explain import SUMMARY_COLUMNS, Explainer
from churn.metrics import CONTENT_TYPE as METRICS_CONTENT_TYPE
from churn.metrics import Metrics
from churn.model import ChurnModel
from churn.monitoring import MonitoringGauges
from churn.monitoring_endpoints import monitoring_endpoints
from churn.pipeline import Call, Endpoint, Reply
from churn.prediction_log import PredictionLog, PredictionRecord
from churn.problems import Refused
from churn.settings import Settings

JSON = "application/json"
MULTIPART = "multipart/form-data"
UPLOAD_FIELD = "file"
# What /health, open to anyone, says of the model: which one it is, not what it runs on.
HEALTH_IDENTITY = ("model_file", "model_sha256", "C")
# The query parameter that adds explanations, what-if changes and warnings to each result.
EXPLAIN = "explain"


def _json(document: object, status: int = 200) -> Reply:
    return Reply(status, json_replies.encode(document), JSON)


@dataclass
class Service:
    """What the endpoints serve with: the model, the settings, and the metrics and prediction log when on."""

    model: ChurnModel
    settings: Settings
    metrics: Metrics | None = None
    prediction_log: PredictionLog | None = None
    explainer: Explainer | None = None
    gauges: MonitoringGauges | None = None

    def endpoints(self) -> dict[str, Endpoint]:
        """The routes the pipeline answers itself."""
        routes = {
            "/predict": Endpoint("POST", self.predict, protected=True, accepts=(JSON, UnsupportedFormat.json)),
            "/predict_file": Endpoint(
                "POST",
                self.predict_file,
                protected=True,
                accepts=(MULTIPART, partial(UnsupportedFormat.upload, UPLOAD_FIELD)),
            ),
            "/ping": Endpoint("GET", self.ping),
            "/health": Endpoint("GET", self.health),
            "/ready": Endpoint("GET", self.ready),
            "/model": Endpoint("GET", self.describe, protected=True),
        }
        if self.metrics is not None:
            routes["/metrics"] = Endpoint("GET", self.expose_metrics)
        routes.update(monitoring_endpoints(self))
        return routes

    def predict(self, call: Call) -> Reply:
        """Score one customer (an object) or a batch (an array), in order."""
        body = call.body(self.settings.max_request_bytes)
        explainer = self.explainer if call.flag(EXPLAIN) else None
        scored = prediction.score(self.model, body, self.settings.threshold, self.settings.max_batch_size, explainer)
        self._record(call, scored.request.customers, scored.request.ids, scored.probabilities)
        return Reply(200, scored.response(), JSON)

    def predict_file(self, call: Call) -> Reply:
        """Score an uploaded CSV; the scored CSV comes back, all or nothing as for a batch, explained on request."""
        _, _, files = parse_form_data(call.environ, max_content_length=self.settings.max_request_bytes + 1)
        try:
            upload = files.get(UPLOAD_FIELD)
            if upload is None:
                raise MalformedInput(f"The form has no file in a field named {UPLOAD_FIELD!r}.")
            explainer = self.explainer if call.flag(EXPLAIN) else None
            settings = self.settings
            scored = score_upload(self.model, upload.stream, settings.threshold, settings.max_batch_size, explainer)
            name = secure_filename(Path(upload.filename or "").stem) or "customers"
        finally:
            for stored in files.values():
                stored.close()
        self._record_frame(call, scored)
        return Reply(
            200,
            # Text quoted, as predict_file.py writes it: a lone carriage return would otherwise end the row.
            scored.to_csv(index=False, quoting=csv.QUOTE_NONNUMERIC).encode(),
            "text/csv; charset=utf-8",
            (("Content-Disposition", f'attachment; filename="{name}-scored.csv"'),),
        )

    def ping(self, call: Call) -> Reply:
        """Liveness, as the course has it."""
        return Reply(200, b"PONG", "text/plain; charset=utf-8")

    def health(self, call: Call) -> Reply:
        """Liveness with the served model's identity; cheap, and the path load balancers probe."""
        metadata = self.model.metadata
        return _json({"status": "ok", "model": {key: metadata[key] for key in HEALTH_IDENTITY}})

    def ready(self, call: Call) -> Reply:
        """Readiness: the model is loaded and the prediction log, when on, can be written."""
        if self.prediction_log is not None and not self.prediction_log.ready():
            raise Refused(503, "The prediction log cannot be written to now; predictions would not be recorded.")
        return _json({"status": "ready"})

    def describe(self, call: Call) -> Reply:
        """The model's metadata (metrics, versions, schema) and the serving settings."""
        settings = self.settings
        serving = {
            "threshold": settings.threshold,
            "max_batch_size": settings.max_batch_size,
            "max_request_bytes": settings.max_request_bytes,
        }
        return _json({**self.model.metadata, "serving": serving})

    def expose_metrics(self, call: Call) -> Reply:
        """The Prometheus text format."""
        assert self.metrics is not None
        if self.gauges is not None:
            self.gauges.refresh()
        return Reply(200, self.metrics.exposition(), METRICS_CONTENT_TYPE)

    def _record(
        self, call: Call, customers: Sequence[schema.Customer], ids: Sequence[object], probabilities: list[float]
    ) -> None:
        """Count the scored customers and put them on the prediction log."""
        call.rows = len(probabilities)
        threshold = self.settings.threshold
        if self.metrics is not None:
            self.metrics.scored(probabilities, threshold)
        if self.prediction_log is None:
            return
        now = datetime.now(UTC)
        latency_ms = (time.perf_counter() - call.started) * 1000
        metadata = self.model.metadata
        sha256, c = str(metadata["model_sha256"]), float(metadata["C"])
        records = []
        for customer, customer_id, probability in zip(customers, ids, probabilities, strict=True):
            given_id = None if customer_id is None else str(customer_id)
            records.append(
                PredictionRecord(
                    request_id=call.request_id,
                    logged_at=now,
                    endpoint=call.endpoint,
                    customer_id=given_id,
                    features=schema.feature_values(customer),
                    probability=probability,
                    decision=probability >= threshold,
                    threshold=threshold,
                    model_sha256=sha256,
                    model_c=c,
                    latency_ms=latency_ms,
                )
            )
        self.prediction_log.record(records)

    def _record_frame(self, call: Call, scored: pd.DataFrame) -> None:
        # The log wants each row's cleaned features and id: cleaned again here, once a row, and only when it is on.
        added = scored.columns.intersection(_OUTPUT_COLUMNS)
        rows = scored.drop(columns=added).to_dict("records") if self.prediction_log is not None else []
        cleaned = [schema.clean_record(row) for row in rows]
        customers = [customer for customer, _ in cleaned]
        ids = [customer_id for _, customer_id in cleaned]
        self._record(call, customers, ids, scored[PROBABILITY_COLUMN].tolist())


# What scoring adds to an uploaded file's columns.
_OUTPUT_COLUMNS = [PROBABILITY_COLUMN, PREDICTION_COLUMN, *SUMMARY_COLUMNS]


def score_upload(
    model: ChurnModel, stream: IO[bytes], threshold: float, max_rows: int, explainer: Explainer | None = None
) -> pd.DataFrame:
    """The uploaded CSV scored, all or nothing: one bad row refuses the file, naming every problem's line.

    With ``explainer``, each row gets the reasons and best action of :func:`churn.explain.summary_columns`.
    """
    result = score_frame(model, read_upload(stream, max_rows), threshold, explainer=explainer)
    if result.problems:
        raise InvalidCustomer(result.problems)
    return result.scored


def read_upload(stream: IO[bytes], max_rows: int) -> pd.DataFrame:
    """The uploaded CSV's rows, refused if empty, unreadable, lacking a feature or over ``max_rows``."""
    try:
        # One row past the limit is enough to tell that the file is over it.
        frame = next(read_csv(stream, chunk_rows=max_rows + 1))
    except CsvError as error:
        raise MalformedInput(str(error)) from None
    check_columns(list(frame.columns))
    if frame.empty:
        raise MalformedInput("The file has a header but no rows: send at least one customer.")
    if len(frame) > max_rows:
        raise TooLarge.file(max_rows)
    return frame
