"""The HTTP endpoints, built around an already-loaded model."""

from __future__ import annotations

from flask import Blueprint, Response, jsonify, request

from churn.errors import PayloadTooLarge, UnsupportedMediaType
from churn.model import ChurnModel
from churn.payload import parse_customers, parse_json, predictions
from churn.settings import Settings


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
        parsed = parse_customers(parse_json(body), settings.max_batch_size)
        probabilities = model.predict_proba(parsed.customers).tolist()
        results = predictions(probabilities, parsed.ids, settings.threshold)
        return jsonify(results if parsed.batch else results[0])

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
