"""The OpenAPI document: ``openapi.yaml`` beside this file, with what comes from code filled in.

The YAML holds the paths, descriptions and shared schemas. Filled in here: the settings (limits and
threshold), the Customer schema from :mod:`churn.schema`, and every example, each made by the code
that answers real requests (the errors by the functions that raise them, the predictions by the
model), so none of them can drift from what the service sends.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from pathlib import Path
from string import Template

import pandas as pd
import yaml

from churn import auth, prediction, problems, schema
from churn.endpoints import UPLOAD_FIELD, read_upload, score_upload
from churn.errors import ServiceError, TooLarge, UnsupportedFormat
from churn.examples import RAW_TELCO_CUSTOMER, SAMPLE_CUSTOMER
from churn.explain import Explainer
from churn.model import ChurnModel
from churn.settings import Settings

DOCUMENT = Path(__file__).with_name("openapi.yaml")


class _Placeholders(Template):
    """Only ``${name}`` is a placeholder: the document's own ``$ref`` keys are not."""

    pattern = r"\$(?:(?P<escaped>(?!))|(?P<named>(?!))|\{(?P<braced>[a-z_]+)\}|(?P<invalid>(?!)))"  # type: ignore[assignment]


def spec(model: ChurnModel, settings: Settings) -> dict[str, object]:
    """The OpenAPI 3 document of the service serving ``model`` under ``settings``."""
    text = _Placeholders(DOCUMENT.read_text(encoding="utf-8")).substitute(
        threshold=settings.threshold,
        max_batch_size=settings.max_batch_size,
        max_request_bytes=settings.max_request_bytes,
        monitoring_window=settings.monitoring_window,
        monitoring_psi_watch=settings.monitoring_psi_watch,
        monitoring_psi_act=settings.monitoring_psi_act,
    )
    document = yaml.safe_load(text)
    document["components"]["schemas"]["Customer"] = customer_schema()
    paths = document["paths"]

    predict = paths["/predict"]["post"]
    requests = {"course_customer": SAMPLE_CUSTOMER, "telco_csv_spelling": RAW_TELCO_CUSTOMER}
    requests["batch"] = [SAMPLE_CUSTOMER, RAW_TELCO_CUSTOMER]  # type: ignore[assignment]
    predict["requestBody"]["content"]["application/json"]["examples"] = _examples(requests)
    answers = {name: _answer(model, settings, body) for name, body in requests.items()}
    explainer = Explainer.from_model(model.scorer, model.metadata["reference"])
    answers["course_customer_explained"] = _answer(model, settings, SAMPLE_CUSTOMER, explainer)
    predict["responses"]["200"]["content"]["application/json"]["examples"] = _examples(answers)

    for path, errors in error_examples(model, settings).items():
        responses = paths[path]["post"]["responses"]
        for error in errors:
            body = problems.of(error)
            responses[str(body["status"])]["content"][problems.MEDIA_TYPE]["example"] = body
    return document


def error_examples(model: ChurnModel, settings: Settings) -> dict[str, list[ServiceError]]:
    """For each scoring path, one error of each status it documents, raised by the code that raises it for real."""
    unknown_contract = json.dumps({**SAMPLE_CUSTOMER, "contract": "two_years"}).encode()
    bad_file = pd.DataFrame([{**RAW_TELCO_CUSTOMER, "Contract": "Two years"}]).to_csv(index=False).encode()
    return {
        "/predict": [
            _raised(lambda: prediction.parse_json(b"")),
            auth.missing_key(),
            _raised(lambda: prediction.parse_customers([{}] * (settings.max_batch_size + 1), settings.max_batch_size)),
            UnsupportedFormat.json(),
            _raised(lambda: prediction.score(model, unknown_contract, settings.threshold, settings.max_batch_size)),
        ],
        "/predict_file": [
            _raised(
                lambda: read_upload(io.BytesIO("gender,tenure\nfémale,1\n".encode("latin-1")), settings.max_batch_size)
            ),
            auth.missing_key(),
            TooLarge.file(settings.max_batch_size),
            UnsupportedFormat.upload(UPLOAD_FIELD),
            _raised(lambda: score_upload(model, io.BytesIO(bad_file), settings.threshold, settings.max_batch_size)),
        ],
    }


def _raised(action: object) -> ServiceError:
    try:
        action()  # type: ignore[operator]
    except ServiceError as error:
        return error
    raise AssertionError("the example did not raise")


def _answer(model: ChurnModel, settings: Settings, body: object, explainer: Explainer | None = None) -> object:
    body_bytes = json.dumps(body).encode()
    scored = prediction.score(model, body_bytes, settings.threshold, settings.max_batch_size, explainer)
    return json.loads(scored.response())


def _examples(values: Mapping[str, object]) -> dict[str, object]:
    return {name: {"value": value} for name, value in values.items()}


def customer_schema() -> dict[str, object]:
    """The Customer object: the schema's fields, allowed values and spellings."""
    properties: dict[str, object] = {
        schema.ID_FIELD: {
            "oneOf": [{"type": "string"}, {"type": "integer"}],
            "description": "Optional. Not used for scoring; echoed back in the result.",
        }
    }
    for name, values in schema.CATEGORICAL.items():
        if isinstance(values[0], int):
            properties[name] = {
                "type": "integer",
                "enum": list(values),
                "description": '0 or 1; "0" and "1" are accepted too.',
            }
        else:
            properties[name] = {
                "type": "string",
                "enum": list(values),
                "description": "Case and spaces are normalised, so the Telco CSV spelling "
                f"({str(values[-1]).replace('_', ' ').title()!r}) is accepted too.",
            }
    for name in schema.NUMERICAL:
        blank = " A blank string counts as 0, as in the Telco export." if name in schema.BLANK_AS_ZERO else ""
        properties[name] = {
            "oneOf": [{"type": "number", "minimum": 0}, {"type": "string"}],
            "description": f"A non-negative number, or a numeric string.{blank}",
        }
    return {
        "type": "object",
        "description": "One customer. Keys may be in the course's spelling or the Telco CSV's "
        "(`PaymentMethod`); keys that are not features are ignored.",
        "required": list(schema.FEATURES),
        "properties": properties,
        "additionalProperties": True,
        "example": SAMPLE_CUSTOMER,
    }
