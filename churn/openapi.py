"""The OpenAPI document behind ``/apidocs/``, generated from the schema so it cannot drift."""

from __future__ import annotations

from http import HTTPStatus

from churn import schema
from churn.examples import RAW_TELCO_CUSTOMER, SAMPLE_CUSTOMER
from churn.settings import Settings

OPENAPI_VERSION = "3.0.3"
SPEC_ROUTE = "/apispec.json"
DOCS_ROUTE = "/apidocs/"
SWAGGER_CONFIG: dict[str, object] = {
    "openapi": OPENAPI_VERSION,
    "title": "Churn prediction API",
    "headers": [],
    "specs": [
        # The document is entirely ours (see spec()); no view docstrings are parsed into it.
        {
            "endpoint": "apispec",
            "route": SPEC_ROUTE,
            "rule_filter": lambda rule: False,
            "model_filter": lambda tag: False,
        }
    ],
    "static_url_path": "/flasgger_static",
    "swagger_ui": True,
    "specs_route": DOCS_ROUTE,
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json(schema_: dict[str, object], **examples: object) -> dict[str, object]:
    content: dict[str, object] = {"schema": schema_}
    if examples:
        content["examples"] = {name: {"value": value} for name, value in examples.items()}
    return content


def _problem(
    description: str, status: int, detail: str, errors: list[dict[str, object]] | None = None
) -> dict[str, object]:
    example = {
        "type": "about:blank",
        "title": HTTPStatus(status).phrase,
        "status": status,
        "detail": detail,
        "errors": errors or [],
    }
    return {
        "description": description,
        "content": {"application/problem+json": _json(_ref("Problem"), example=example)},
    }


def _customer_schema() -> dict[str, object]:
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
                f"({values[-1].replace('_', ' ').title()!r}) is accepted too.",
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


def spec(settings: Settings) -> dict[str, object]:
    """The OpenAPI 3 document of the service under ``settings``."""
    prediction_example = {"churn_probability": 0.06763086556091738, "churn": False, "customerid": "8879-zkjof"}
    invalid_field = {
        "index": None,
        "field": "contract",
        "message": "'two_years' is not one of the allowed values",
        "allowed": list(schema.CATEGORICAL["contract"]),
    }
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": "Churn prediction API",
            "version": "1.0.0",
            "description": (
                "Scores telecom customers' probability of churning with the course's logistic "
                f"regression. `churn` is true when the probability is at least {settings.threshold}. "
                "Every error is an RFC 9457 problem document with a list of field problems."
            ),
        },
        "paths": {
            "/predict": {
                "post": {
                    "summary": "Score one customer or a batch",
                    "description": (
                        "Send one customer object to get one result, or an array of up to "
                        f"{settings.max_batch_size} customers to get an array of results in the same order. "
                        "A batch is all or nothing: one invalid record rejects it, and each problem "
                        f"names its index. Bodies over {settings.max_request_bytes} bytes are refused."
                    ),
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": _json(
                                {
                                    "oneOf": [
                                        _ref("Customer"),
                                        {
                                            "type": "array",
                                            "items": _ref("Customer"),
                                            "minItems": 1,
                                            "maxItems": settings.max_batch_size,
                                        },
                                    ]
                                },
                                course_customer=SAMPLE_CUSTOMER,
                                telco_csv_spelling=RAW_TELCO_CUSTOMER,
                                batch=[SAMPLE_CUSTOMER, RAW_TELCO_CUSTOMER],
                            )
                        },
                    },
                    "responses": {
                        "200": {
                            "description": "A result, or an array of results for a batch",
                            "content": {
                                "application/json": _json(
                                    {"oneOf": [_ref("Prediction"), {"type": "array", "items": _ref("Prediction")}]},
                                    single=prediction_example,
                                    batch=[prediction_example, prediction_example],
                                )
                            },
                        },
                        "400": _problem(
                            "The body is not JSON, or not an object or array, or an empty batch",
                            400,
                            "The body is not valid JSON: Expecting value at line 1 column 1.",
                        ),
                        "413": _problem(
                            "The body or the batch is over the limit",
                            413,
                            f"The batch has 5000 customers; the limit is {settings.max_batch_size}. "
                            "Split it into smaller requests.",
                        ),
                        "415": _problem(
                            "The body is not declared as JSON",
                            415,
                            "Send the customer as JSON with the header Content-Type: application/json.",
                        ),
                        "422": _problem(
                            "A field is missing, of the wrong type, out of range or not an allowed value",
                            422,
                            f"1 problem with the customer data: contract: {invalid_field['message']}",
                            [invalid_field],
                        ),
                    },
                }
            },
            "/predict_file": {
                "post": {
                    "summary": "Score a CSV file",
                    "description": (
                        "Upload a CSV with a header line, in the Telco export's spelling or the course's, as the "
                        f"form field `file`. Up to {settings.max_batch_size} rows and {settings.max_request_bytes} "
                        "bytes; larger files are for `predict_file.py`. The scored CSV comes back with every "
                        "column of the upload and `churn_probability` and `churn` appended. As for a batch, one "
                        "invalid row rejects the file: each problem names its row's `index` (0 for the first "
                        "row) and its `line` in the file (the header is line 1)."
                    ),
                    "requestBody": {
                        "required": True,
                        "content": {
                            "multipart/form-data": {
                                "schema": {
                                    "type": "object",
                                    "required": ["file"],
                                    "properties": {
                                        "file": {"type": "string", "format": "binary", "description": "The CSV"}
                                    },
                                }
                            }
                        },
                    },
                    "responses": {
                        "200": {
                            "description": "The scored CSV, as an attachment",
                            "content": {"text/csv": {"schema": {"type": "string"}}},
                        },
                        "400": _problem(
                            "No file, or not UTF-8 CSV, or no rows",
                            400,
                            "The file is not valid CSV: Error tokenizing data. C error: Expected 21 fields "
                            "in line 3, saw 22",
                        ),
                        "413": _problem(
                            "The body or the number of rows is over the limit",
                            413,
                            f"The file has more than {settings.max_batch_size} rows, the limit. Split it, "
                            "or use predict_file.py.",
                        ),
                        "415": _problem(
                            "The body is not a multipart form",
                            415,
                            "Upload the CSV as multipart/form-data in a field named 'file' "
                            "(with curl: -F file=@customers.csv).",
                        ),
                        "422": _problem(
                            "A column is missing, or a row has a missing, wrong or not allowed value",
                            422,
                            f"1 problem with the customer data: line 2, contract: {invalid_field['message']}",
                            [{**invalid_field, "index": 0, "line": 2}],
                        ),
                    },
                }
            },
            "/ping": {
                "get": {
                    "summary": "Liveness",
                    "responses": {
                        "200": {
                            "description": "The service is up",
                            "content": {"text/plain": {"schema": {"type": "string", "enum": ["PONG"]}}},
                        }
                    },
                }
            },
            "/health": {
                "get": {
                    "summary": "Readiness, with the model's identity",
                    "responses": {
                        "200": {
                            "description": "The model is loaded and checked",
                            "content": {"application/json": _json(_ref("Health"))},
                        }
                    },
                }
            },
            "/model": {
                "get": {
                    "summary": "The model's metadata",
                    "description": "Metrics, library versions, the feature schema with allowed values, "
                    "and the serving settings.",
                    "responses": {
                        "200": {
                            "description": "The metadata",
                            "content": {"application/json": _json(_ref("ModelMetadata"))},
                        }
                    },
                }
            },
            "/": {
                "get": {
                    "summary": "A page with a form to score one customer",
                    "responses": {
                        "200": {"description": "HTML", "content": {"text/html": {"schema": {"type": "string"}}}}
                    },
                }
            },
        },
        "components": {
            "schemas": {
                "Customer": _customer_schema(),
                "Prediction": {
                    "type": "object",
                    "required": ["churn_probability", "churn"],
                    "properties": {
                        "churn_probability": {"type": "number", "minimum": 0, "maximum": 1},
                        "churn": {"type": "boolean", "description": f"churn_probability >= {settings.threshold}"},
                        schema.ID_FIELD: {
                            "oneOf": [{"type": "string"}, {"type": "integer"}],
                            "description": "Present when the request had one.",
                        },
                    },
                },
                "Problem": {
                    "type": "object",
                    "description": "RFC 9457 problem details; `errors` lists field problems for code to read.",
                    "required": ["type", "title", "status", "detail", "errors"],
                    "properties": {
                        "type": {"type": "string"},
                        "title": {"type": "string"},
                        "status": {"type": "integer"},
                        "detail": {"type": "string", "description": "For people."},
                        "errors": {"type": "array", "items": _ref("FieldProblem")},
                    },
                },
                "FieldProblem": {
                    "type": "object",
                    "required": ["index", "field", "message"],
                    "properties": {
                        "index": {
                            "type": "integer",
                            "nullable": True,
                            "description": "The record's position in a batch; null for a single customer.",
                        },
                        "field": {
                            "type": "string",
                            "nullable": True,
                            "description": "The cleaned field name; null when the record as a whole is wrong.",
                        },
                        "message": {"type": "string"},
                        "line": {
                            "type": "integer",
                            "description": "For an uploaded file: the row's line in it (the header is line 1).",
                        },
                        "allowed": {
                            "type": "array",
                            "items": {"oneOf": [{"type": "string"}, {"type": "integer"}]},
                            "description": "The allowed values, for category fields.",
                        },
                    },
                },
                "Health": {
                    "type": "object",
                    "required": ["status", "model"],
                    "properties": {
                        "status": {"type": "string", "enum": ["ok"]},
                        "model": {"type": "object", "additionalProperties": True},
                    },
                },
                "ModelMetadata": {
                    "type": "object",
                    "required": [
                        "model_file",
                        "model_sha256",
                        "C",
                        "cv_auc",
                        "test_auc",
                        "versions",
                        "schema",
                        "serving",
                    ],
                    "additionalProperties": True,
                    "properties": {
                        "model_file": {"type": "string"},
                        "model_sha256": {"type": "string"},
                        "C": {"type": "number"},
                        "cv_auc": {
                            "type": "object",
                            "properties": {
                                "folds": {"type": "array", "items": {"type": "number"}},
                                "mean": {"type": "number"},
                                "std": {"type": "number"},
                            },
                        },
                        "test_auc": {"type": "number"},
                        "versions": {"type": "object", "additionalProperties": {"type": "string"}},
                        "schema": {"type": "object"},
                        "serving": {"type": "object"},
                    },
                },
            }
        },
    }
