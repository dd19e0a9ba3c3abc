"""One JSON line per request on stdout (``CHURN_LOG_FORMAT=json``), for CloudWatch, Kubernetes and log shippers."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from typing import TextIO

from churn.pipeline import Call, Observer


def json_lines(stream: TextIO | None = None) -> Observer:
    """An observer writing a JSON line per request: time, request id, method, path, status, duration, rows, client."""

    def write(call: Call, status: int, seconds: float) -> None:
        line = json.dumps(
            {
                "time": datetime.now(UTC).isoformat(timespec="milliseconds"),
                "request_id": call.request_id,
                "method": call.method,
                "path": call.path,
                "status": status,
                "duration_ms": round(seconds * 1000, 3),
                "rows": call.rows,
                "client": call.environ.get("REMOTE_ADDR"),
            },
            separators=(",", ":"),
        )
        target = stream or sys.stdout
        target.write(line + "\n")
        target.flush()

    return write
