"""An empty Flask endpoint: what Flask and gunicorn cost on their own, with no work per request."""

from flask import Flask, Response, jsonify

app = Flask("empty")


@app.route("/predict", methods=["POST"])
def predict() -> Response:
    """A constant answer, without reading the body (gunicorn discards it before the next request)."""
    return jsonify({"churn_probability": 0.5, "churn": False})
