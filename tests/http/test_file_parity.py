"""One cleaning rule: a file scored by predict_file.py's path, uploaded to /predict_file, and sent to /predict agree."""

import csv
import io
import json

import numpy as np
import pandas as pd
import pytest
from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

from churn.explain import SUMMARY_COLUMNS, Explainer, summary_columns
from churn.file_scoring import score_file
from churn.training import DATA_FILE

THRESHOLD = 0.5
# Spellings that break files and requests alike, a few of them still valid by the rule.
HOSTILE = [
    ("Partner", "Maybe"),
    ("tenure", "-3"),
    ("tenure", ""),
    ("tenure", " 12 "),
    ("tenure", "1_000"),
    ("tenure", "٣"),
    ("tenure", "-0"),
    ("tenure", "1e400"),
    ("tenure", "nan"),
    ("tenure", "+7"),
    ("MonthlyCharges", "abc"),
    ("MonthlyCharges", "-inf"),
    ("MonthlyCharges", "0x10"),
    ("MonthlyCharges", "it's"),
    ("MonthlyCharges", "back\\slash"),
    ("MonthlyCharges", "x" * 60),
    ("MonthlyCharges", "=1+1"),
    ("TotalCharges", " "),
    ("TotalCharges", "\t"),
    ("TotalCharges", "1,5"),
    ("gender", ""),
    ("gender", " female"),
    ("gender", "FEMALE"),
    ("SeniorCitizen", "2"),
    ("SeniorCitizen", "1.0"),
    ("SeniorCitizen", "yes"),
    ("Contract", "Two years"),
    ("Contract", "two\nyears"),
    ("PaymentMethod", "Electronic\rcheck"),
    ("customerID", '=HYPERLINK("http://x")'),
]


@pytest.fixture(scope="module")
def telco() -> pd.DataFrame:
    return pd.read_csv(DATA_FILE, dtype=str, keep_default_na=False)


def hostile_csv(telco: pd.DataFrame) -> bytes:
    frame = telco.head(len(HOSTILE)).copy()
    for row, (column, value) in enumerate(HOSTILE):
        frame.loc[row, column] = value
    # The csv module, not pandas: pandas leaves a lone carriage return unquoted, which would break the row.
    text = io.StringIO(newline="")
    writer = csv.writer(text)
    writer.writerow(frame.columns)
    writer.writerows(frame.itertuples(index=False))
    return text.getvalue().encode()


def by_file(model, data: bytes, explain: bool = False) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    output, rejects = io.BytesIO(), io.BytesIO()
    explainer = Explainer.from_model(model.scorer, model.metadata["reference"]) if explain else None
    score_file(model, io.BytesIO(data), output, rejects, THRESHOLD, chunk_rows=7, explainer=explainer)
    scored = pd.read_csv(io.BytesIO(output.getvalue()), dtype=str, keep_default_na=False)
    rejected = (
        pd.read_csv(io.BytesIO(rejects.getvalue()), dtype=str, keep_default_na=False) if rejects.getvalue() else None
    )
    return scored, rejected


def by_predict(client, records: list[dict[str, str]], query: str = "") -> list[dict[str, object]]:
    """What /predict answers for each record alone: its result, or its problems."""
    answers = []
    for record in records:
        response = client.post(f"/predict{query}", data=json.dumps(record), content_type="application/json")
        answers.append(response.get_json())
    return answers


def upload(client, data: bytes, query: str = ""):
    # Encoded here, in memory: the test client would spool a large form to a temporary file it never closes.
    boundary, body = encode_multipart({"file": FileStorage(io.BytesIO(data), "customers.csv")})
    return client.post(f"/predict_file{query}", data=body, content_type=f"multipart/form-data; boundary={boundary}")


def test_all_telco_rows_score_the_same_by_file_upload_and_predict(model, telco, client_with):
    data = DATA_FILE.read_bytes()
    scored, rejected = by_file(model, data)
    assert rejected is None
    client = client_with(max_batch_size=10_000, max_request_bytes=8 * 1024 * 1024)
    response = upload(client, data)
    assert response.status_code == 200
    uploaded = pd.read_csv(io.BytesIO(response.data), dtype=str, keep_default_na=False)
    records = telco.to_dict(orient="records")
    answer = client.post("/predict", data=json.dumps(records), content_type="application/json").get_json()
    predicted = np.array([result["churn_probability"] for result in answer])
    from_file = scored["churn_probability"].astype(float).to_numpy()
    assert np.array_equal(from_file, uploaded["churn_probability"].astype(float).to_numpy())
    # /predict sums in another order (one customer at a time): the last bit may differ.
    assert np.max(np.abs(from_file - predicted)) <= 1e-12
    assert scored["churn"].tolist() == uploaded["churn"].tolist() == [str(r["churn"]) for r in answer]


def test_a_hostile_file_is_judged_the_same_by_file_upload_and_predict(model, telco, client):
    data = hostile_csv(telco)
    records = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False).to_dict(orient="records")
    answers = by_predict(client, records)
    refused = {index: answer for index, answer in enumerate(answers) if "errors" in answer}
    assert 15 <= len(refused) < len(HOSTILE)
    scored, rejected = by_file(model, data)
    # The file's rejects: each row's errors as /predict words them, in the schema's order.
    file_errors = dict(zip(rejected["customerID"], rejected["errors"], strict=True))
    for index, answer in refused.items():
        expected = "; ".join(f"{problem['field']}: {problem['message']}" for problem in answer["errors"])
        assert file_errors[_escaped(records[index]["customerID"])] == expected
    valid = [answer for answer in answers if "errors" not in answer]
    probabilities = scored["churn_probability"].astype(float).to_numpy()
    assert np.max(np.abs(probabilities - [answer["churn_probability"] for answer in valid])) <= 1e-12
    # The upload is all or nothing, and names the same problems at the same lines.
    body = upload(client, data).get_json()
    by_line = {}
    for problem in body["errors"]:
        by_line.setdefault(problem["line"], []).append(f"{problem['field']}: {problem['message']}")
    assert {line: "; ".join(texts) for line, texts in by_line.items()} == dict(
        zip(rejected["line"].astype(int), rejected["errors"], strict=True)
    )


def test_all_telco_rows_are_explained_the_same_by_file_upload_and_predict(model, telco, client_with):
    data = DATA_FILE.read_bytes()
    scored, _ = by_file(model, data, explain=True)
    client = client_with(max_batch_size=10_000, max_request_bytes=8 * 1024 * 1024)
    uploaded = pd.read_csv(io.BytesIO(upload(client, data, "?explain=true").data), dtype=str, keep_default_na=False)
    records = telco.to_dict(orient="records")
    answer = client.post("/predict?explain=true", json=records).get_json()
    expected = pd.DataFrame(summary_columns(answer))
    columns = list(SUMMARY_COLUMNS)
    # After the scores, before the model's identity.
    assert scored.columns[-6:].tolist() == [*columns, "model_sha256", "threshold"]
    assert uploaded.columns[-5:].tolist() == ["churn", *columns]
    pd.testing.assert_frame_equal(scored[columns], expected)
    pd.testing.assert_frame_equal(uploaded[columns], expected)
    # Without the flag, the columns are not there.
    assert not set(columns) & set(by_file(model, data)[0].columns)
    assert not set(columns) & set(upload(client, data).data.decode().splitlines()[0].split(","))


def test_explanations_stay_with_their_rows_when_others_are_rejected(model, telco, client):
    data = hostile_csv(telco)
    scored, rejected = by_file(model, data, explain=True)
    assert rejected is not None
    assert not set(SUMMARY_COLUMNS) & set(rejected.columns)
    records = pd.read_csv(io.BytesIO(data), dtype=str, keep_default_na=False).to_dict(orient="records")
    answers = [answer for answer in by_predict(client, records, "?explain=true") if "errors" not in answer]
    pd.testing.assert_frame_equal(scored[list(SUMMARY_COLUMNS)], pd.DataFrame(summary_columns(answers)))


def test_an_earlier_runs_explanations_are_kept_under_their_own_names(model, client):
    data = DATA_FILE.read_bytes()
    first, _ = by_file(model, data, explain=True)
    again = first.drop(columns=["churn_probability", "churn", "model_sha256", "threshold"]).head(50)
    scored, _ = by_file(model, again.to_csv(index=False).encode(), explain=True)
    for name in SUMMARY_COLUMNS:
        assert scored[f"{name}_input"].tolist() == scored[name].tolist() == first[name].head(50).tolist()


def _escaped(text: str) -> str:
    return "'" + text if text[:1] in "=+-@\t\r" else text
