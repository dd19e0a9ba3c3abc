"""The course's predict.py as the course wrote it: the baseline the service is measured against.

Only the model path differs, so gunicorn can import it from any folder; keep the rest as it is.
"""

import pickle

from flask import Flask, Response, jsonify, request

from churn.settings import PROJECT_DIR

model_file = PROJECT_DIR / "model_C=1.0.bin"

with open(model_file, "rb") as f_in:
    dv, model = pickle.load(f_in)

app = Flask("churn")


@app.route("/predict", methods=["POST"])
def predict() -> Response:
    """The course's scoring: DictVectorizer and predict_proba for every request."""
    customer = request.get_json()

    X = dv.transform([customer])
    y_pred = model.predict_proba(X)[0, 1]
    churn = y_pred >= 0.5

    result = {"churn_probability": float(y_pred), "churn": bool(churn)}

    return jsonify(result)
