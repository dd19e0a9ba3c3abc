"""The HTTP contract, through Flask's test client."""

import csv
import io
import json
import math

import pandas as pd
import pytest

from churn import schema
from churn.examples import RAW_TELCO_CUSTOMER, SAMPLE_CUSTOMER
from churn.problems import Refused
from churn.settings import Settings
from churn.training import DATA_FILE

GET_PATHS = ("/ping", "/health", "/ready", "/model", "/metrics", "/", "/apidocs/", "/apispec.json")


def post_json(client, document):
    return client.post("/predict", data=json.dumps(document), content_type="application/json")


def expected_probability(model, record):
    return model.predict_proba([schema.clean_customer(record)])[0]


def assert_problem(response, status, detail_part=""):
    assert response.status_code == status
    assert response.mimetype == "application/problem+json"
    body = response.get_json()
    assert set(body) == {"type", "title", "status", "detail", "errors"}
    assert body["status"] == status
    assert detail_part in body["detail"]
    return body


def test_course_customer(client, model):
    response = post_json(client, SAMPLE_CUSTOMER)
    assert response.status_code == 200
    body = response.get_json()
    assert list(body) == ["churn_probability", "churn", "customerid"]
    assert body["churn_probability"] == pytest.approx(expected_probability(model, SAMPLE_CUSTOMER), abs=1e-12)
    assert body["churn"] is False
    assert body["customerid"] == "8879-zkjof"


def test_course_client_shape_without_id(client):
    record = {k: v for k, v in SAMPLE_CUSTOMER.items() if k != "customerid"}
    assert list(post_json(client, record).get_json()) == ["churn_probability", "churn"]


def test_raw_telco_spelling_scores_the_same(client):
    raw = post_json(client, RAW_TELCO_CUSTOMER).get_json()
    course = post_json(client, SAMPLE_CUSTOMER).get_json()
    assert raw["churn_probability"] == course["churn_probability"]
    assert raw["customerid"] == "8879-ZKJOF"


def test_new_customer_with_blank_total_charges(client, model):
    record = {**RAW_TELCO_CUSTOMER, "tenure": "0", "TotalCharges": " ", "Contract": "Month-to-month"}
    body = post_json(client, record).get_json()
    assert body["churn_probability"] == pytest.approx(expected_probability(model, record), abs=1e-12)


def test_likely_churner_is_flagged(client):
    churner = {
        **SAMPLE_CUSTOMER,
        "contract": "month-to-month",
        "tenure": 1,
        "internetservice": "fiber_optic",
        "paymentmethod": "electronic_check",
        "totalcharges": 79.85,
    }
    body = post_json(client, churner).get_json()
    assert body["churn_probability"] > 0.5
    assert body["churn"] is True


def test_threshold_setting_decides_churn(model, client_with):
    probability = expected_probability(model, SAMPLE_CUSTOMER)
    at = client_with(threshold=probability)
    above = client_with(threshold=math.nextafter(probability, 1))
    assert post_json(at, SAMPLE_CUSTOMER).get_json()["churn"] is True
    assert post_json(above, SAMPLE_CUSTOMER).get_json()["churn"] is False


def test_batch_keeps_order(client, model):
    churner = {**SAMPLE_CUSTOMER, "customerid": "b", "contract": "month-to-month", "tenure": 2}
    batch = [SAMPLE_CUSTOMER, churner, RAW_TELCO_CUSTOMER]
    response = post_json(client, batch)
    assert response.status_code == 200
    results = response.get_json()
    assert [r["customerid"] for r in results] == ["8879-zkjof", "b", "8879-ZKJOF"]
    for result, record in zip(results, batch, strict=True):
        assert result["churn_probability"] == pytest.approx(expected_probability(model, record), abs=1e-12)


def test_batch_is_all_or_nothing(client):
    batch = [SAMPLE_CUSTOMER, {**SAMPLE_CUSTOMER, "contract": "weekly"}]
    body = assert_problem(post_json(client, batch), 422, "[1].contract")
    assert body["errors"] == [
        {
            "index": 1,
            "field": "contract",
            "message": "'weekly' is not one of the allowed values",
            "allowed": ["month-to-month", "one_year", "two_year"],
        }
    ]


@pytest.mark.parametrize(
    ("change", "field", "message"),
    [
        ({"tenure": -3}, "tenure", "must not be negative, got -3"),
        ({"tenure": "three"}, "tenure", "must be a number, not 'three'"),
        ({"monthlycharges": None}, "monthlycharges", "must be a number, not null"),
        ({"totalcharges": [1]}, "totalcharges", "must be a number, not an array"),
        ({"gender": {"value": "female"}}, "gender", "must be a string, not an object"),
        ({"seniorcitizen": "yes"}, "seniorcitizen", "'yes' is not one of the allowed values"),
        ({"paymentmethod": "cash"}, "paymentmethod", "'cash' is not one of the allowed values"),
    ],
)
def test_invalid_fields_are_422_with_the_field(client, change, field, message):
    body = assert_problem(post_json(client, {**SAMPLE_CUSTOMER, **change}), 422, field)
    assert [(e["field"], e["message"]) for e in body["errors"]] == [(field, message)]
    assert body["errors"][0]["index"] is None


def test_missing_field_is_not_treated_as_zero(client):
    record = {k: v for k, v in SAMPLE_CUSTOMER.items() if k != "tenure"}
    body = assert_problem(post_json(client, record), 422, "tenure: is required")
    assert body["errors"] == [{"index": None, "field": "tenure", "message": "is required"}]


@pytest.mark.parametrize(
    ("data", "detail"),
    [
        ('{"tenure": 41,', "The body is not valid JSON"),
        ('{"tenure": NaN}', "NaN is not valid JSON"),
        ("", "The body is not valid JSON"),
        ('"a string"', "must be a customer object or an array of them, not a string"),
        ("[]", "The batch is empty"),
        ("[" * 50_000 + "]" * 50_000, "nested too deeply"),
    ],
)
def test_malformed_bodies_are_400(client, data, detail):
    response = client.post("/predict", data=data, content_type="application/json")
    assert_problem(response, 400, detail)


def test_not_json_is_415(client):
    response = client.post("/predict", data="tenure=41", content_type="application/x-www-form-urlencoded")
    assert_problem(response, 415, "Content-Type: application/json")


def test_the_largest_batch_fits_the_default_body_limit_however_it_is_written(client):
    # The 1,000 customers of the Telco data with the longest records, as clients send them, pretty-printed too.
    frame = pd.read_csv(DATA_FILE, dtype=str, keep_default_na=False).drop(columns="Churn")
    rows = sorted(frame.to_dict(orient="records"), key=lambda row: len(json.dumps(row)))[-1000:]
    body = json.dumps(rows, indent=4).encode()
    # Room to spare: longer ids, numbers written out to more digits.
    assert len(body) <= 0.75 * Settings().max_request_bytes
    response = client.post("/predict", data=body, content_type="application/json")
    assert response.status_code == 200
    assert len(response.get_json()) == 1000


def test_oversized_batch_is_413(client_with):
    client = client_with(max_batch_size=2)
    assert_problem(post_json(client, [SAMPLE_CUSTOMER] * 3), 413, "the limit is 2")
    assert post_json(client, [SAMPLE_CUSTOMER] * 2).status_code == 200


def test_an_array_filling_the_body_limit_is_413_without_being_parsed_whole(client):
    # As many elements as the default body limit holds: the parser stops at the 1001st, before the text after them.
    body = b"[" + b"0," * ((Settings().max_request_bytes - 9) // 2) + b"not JSON"
    response = client.post("/predict", data=body, content_type="application/json")
    body = assert_problem(response, 413, "The batch has more than 1000 customers; the limit is 1000.")
    assert body["errors"] == []


def test_objects_nested_in_ignored_keys_are_read_past(client, model):
    record = {**SAMPLE_CUSTOMER, "note": {"history": [{"a": 1}, {"b": {"c": []}}]}}
    response = post_json(client, [record, {**record, "note": [[{}]]}])
    assert response.status_code == 200
    assert [result["churn_probability"] for result in response.get_json()] == [
        expected_probability(model, SAMPLE_CUSTOMER)
    ] * 2


class UnreadableBody(io.BytesIO):
    """A request body that fails the test if the app reads any of it."""

    def read(self, *args):
        raise AssertionError("the oversized body was read")

    readinto = readline = read


def test_oversized_body_is_refused_from_its_content_length_before_reading(client_with):
    client = client_with(max_request_bytes=1000)
    response = client.post(
        "/predict",
        input_stream=UnreadableBody(),
        content_type="application/json",
        environ_overrides={"CONTENT_LENGTH": "1000001"},
    )
    assert_problem(response, 413, "The body has 1000001 bytes; the limit is 1000")


def post_chunked(client, body: bytes):
    return client.post(
        "/predict",
        input_stream=io.BytesIO(body),
        content_type="application/json",
        headers={"Transfer-Encoding": "chunked"},
        # What gunicorn sets for a chunked body, whose length is unknown until it ends.
        environ_overrides={"wsgi.input_terminated": True, "CONTENT_LENGTH": ""},
    )


def test_chunked_body_over_the_limit_is_refused_and_at_the_limit_is_served(client_with):
    body = json.dumps(SAMPLE_CUSTOMER).encode()
    at_limit = client_with(max_request_bytes=len(body))
    below_limit = client_with(max_request_bytes=len(body) - 1)
    assert post_chunked(at_limit, body).status_code == 200
    assert_problem(post_chunked(below_limit, body), 413, "The body has more bytes; the limit is")


def test_unknown_path_is_json_404(client):
    assert_problem(client.get("/predictions"), 404)


def test_wrong_method_is_json_405_with_allow(client):
    response = client.get("/predict")
    assert_problem(response, 405)
    assert "POST" in response.headers["Allow"]


def test_unexpected_failure_is_json_500_without_internals_and_the_model_is_called_once(app, model, monkeypatch):
    calls = []

    def broken(customers):
        calls.append(customers)
        raise RuntimeError("secret internals")

    monkeypatch.setattr(model, "predict_proba", broken)
    body = assert_problem(post_json(app.test_client(), SAMPLE_CUSTOMER), 500)
    assert "secret" not in json.dumps(body)
    assert len(calls) == 1


def test_ping(client):
    response = client.get("/ping")
    assert response.status_code == 200
    assert response.text == "PONG"


def test_health_names_the_model(client, model):
    body = client.get("/health").get_json()
    assert body["status"] == "ok"
    assert body["model"] == {key: model.metadata[key] for key in ("model_file", "model_sha256", "C")}
    # Library versions tell an attacker what to try; they are in /model, which can sit behind the API key.
    assert "1.9.1" not in json.dumps(body)


def test_model_metadata(client, model):
    body = client.get("/model").get_json()
    assert body["cv_auc"] == model.metadata["cv_auc"]
    assert body["test_auc"] == model.metadata["test_auc"]
    assert body["versions"]["scikit-learn"] == "1.9.1"
    assert body["schema"]["categorical"]["contract"] == ["month-to-month", "one_year", "two_year"]
    assert body["serving"] == {"threshold": 0.5, "max_batch_size": 1000, "max_request_bytes": 1024 * 1024}


def test_index_page_is_html_with_a_field_per_feature(client):
    response = client.get("/")
    assert response.status_code == 200
    assert response.mimetype == "text/html"
    for name in schema.FEATURES:
        assert f'name="{name}"' in response.text
    assert client.head("/").status_code == 200


def test_responses_are_not_sniffed(client):
    assert client.get("/ping").headers["X-Content-Type-Options"] == "nosniff"


def upload(client, data, filename="customers.csv", field="file", headers=None):
    return client.post(
        "/predict_file", data={field: (io.BytesIO(data), filename)}, content_type="multipart/form-data", headers=headers
    )


def telco_csv(rows=20, edit=None):
    frame = pd.read_csv(DATA_FILE, dtype=str, keep_default_na=False).head(rows)
    if edit:
        edit(frame)
    return frame.to_csv(index=False).encode()


def test_predict_file_returns_the_scored_csv_as_predict_scores_it(client):
    response = upload(client, telco_csv(rows=30), filename="march customers.csv")
    assert response.status_code == 200
    assert response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"] == 'attachment; filename="march_customers-scored.csv"'
    scored = pd.read_csv(io.BytesIO(response.data), dtype=str, keep_default_na=False)
    records = pd.read_csv(DATA_FILE, dtype=str, keep_default_na=False).head(30).to_dict(orient="records")
    expected = post_json(client, records).get_json()
    assert scored["customerID"].tolist() == [record["customerID"] for record in records]
    assert scored["churn_probability"].astype(float).tolist() == [e["churn_probability"] for e in expected]
    assert scored["churn"].tolist() == [str(e["churn"]) for e in expected]


@pytest.mark.parametrize("customer_id", ["line\rbreak", "line\nbreak", 'say "hi", then', "=1+1"])
def test_predict_file_text_comes_back_as_it_was_sent(client, customer_id):
    frame = pd.read_csv(DATA_FILE, dtype=str, keep_default_na=False).head(3)
    frame.loc[1, "customerID"] = customer_id
    response = upload(client, frame.to_csv(index=False, quoting=csv.QUOTE_ALL).encode())
    assert response.status_code == 200
    scored = pd.read_csv(io.BytesIO(response.data), dtype=str, keep_default_na=False)
    # A formula is neutralised with a leading quote; the rest is as sent, each row still one row.
    expected = "'" + customer_id if customer_id.startswith("=") else customer_id
    assert scored["customerID"].tolist()[1] == expected
    assert len(scored) == 3


def test_predict_file_is_all_or_nothing_with_lines(client):
    def spoil(frame):
        frame.loc[2, "Contract"] = "Three year"

    body = assert_problem(upload(client, telco_csv(edit=spoil)), 422, "line 4, contract")
    assert body["errors"] == [
        {
            "index": 2,
            "field": "contract",
            "message": "'Three year' is not one of the allowed values",
            "allowed": list(schema.CATEGORICAL["contract"]),
            "line": 4,
        }
    ]


def test_predict_file_missing_column_is_422(client):
    body = assert_problem(upload(client, telco_csv(edit=lambda f: f.pop("tenure"))), 422)
    assert body["errors"] == [{"index": None, "field": "tenure", "message": "is required"}]


@pytest.mark.parametrize(
    ("data", "detail"),
    [
        (b"", "The file is empty"),
        (b"gender,tenure\nfemale,1\nmale,2,3\n", "the row on line 3 has 3 cells where the header has 2"),
        (b"\xff\xfe\x00g", "not UTF-8"),
    ],
)
def test_predict_file_unreadable_is_400(client, data, detail):
    assert_problem(upload(client, data), 400, detail)


def test_predict_file_header_only_is_400(client):
    assert_problem(upload(client, telco_csv(rows=0)), 400, "no rows")


def test_predict_file_without_the_file_field_is_400(client):
    assert_problem(upload(client, telco_csv(), field="csv"), 400, "no file in a field named 'file'")


def test_predict_file_needs_a_form_415(client):
    response = client.post("/predict_file", data=telco_csv(), content_type="text/csv")
    assert_problem(response, 415, "-F file=@customers.csv")


def test_predict_file_has_the_batch_and_body_limits(client_with):
    client = client_with(max_batch_size=5, max_request_bytes=4000)
    assert upload(client, telco_csv(rows=5)).status_code == 200
    assert_problem(upload(client, telco_csv(rows=6)), 413, "more than 5 rows")
    assert_problem(upload(client, telco_csv(rows=30)), 413, "the limit is 4000")


def test_a_rule_added_to_the_pipeline_applies_to_every_endpoint(app):
    """Endpoints the pipeline answers and pages Flask answers alike go through every rule, once."""
    seen = []

    def rule(call, endpoint):
        seen.append(call.path)
        if call.header("X-Refuse"):
            raise Refused(403, "refused by the added rule")

    app.wsgi_app.rules = [*app.wsgi_app.rules, rule]
    client = app.test_client()
    requests = {
        "/predict": lambda headers: client.post("/predict", json=SAMPLE_CUSTOMER, headers=headers),
        "/predict_file": lambda headers: upload(client, telco_csv(rows=1), headers=headers),
        **{path: (lambda headers, path=path: client.get(path, headers=headers)) for path in GET_PATHS},
    }
    for path, send in requests.items():
        seen.clear()
        response = send({})
        assert response.status_code == 200, path
        response.close()
        assert seen == [path]
        assert_problem(send({"X-Refuse": "yes"}), 403, "refused by the added rule")


@pytest.mark.parametrize(
    ("headers", "reason"),
    [
        ({"Content-Type": "application/json; charset=latin-1"}, "charset=latin-1"),
        ({"Content-Type": "application/json; charset=utf-16"}, "charset=utf-16"),
        ({"Content-Type": "application/json", "Content-Encoding": "gzip"}, "Content-Encoding: gzip"),
    ],
)
def test_encodings_the_service_cannot_honour_are_415_with_the_reason(client, headers, reason):
    response = client.post("/predict", data=json.dumps(SAMPLE_CUSTOMER), headers=headers)
    assert_problem(response, 415, reason)


@pytest.mark.parametrize("charset", ["utf-8", "UTF-8", '"utf-8"', "utf8"])
def test_utf8_declared_any_way_is_read(client, charset):
    response = client.post(
        "/predict", data=json.dumps(SAMPLE_CUSTOMER), content_type=f"application/json; charset={charset}"
    )
    assert response.status_code == 200


def test_explain_adds_exact_explanations_to_single_and_batch_results(client, model):
    plain = post_json(client, SAMPLE_CUSTOMER).get_json()
    single = client.post("/predict?explain=true", json=SAMPLE_CUSTOMER).get_json()
    assert {key: single[key] for key in plain} == plain
    contributions = single["explanation"]["contributions"]
    logit = math.log(single["churn_probability"] / (1 - single["churn_probability"]))
    assert single["explanation"]["intercept"] + sum(item["contribution"] for item in contributions) == pytest.approx(
        logit, abs=1e-9
    )
    assert {item["feature"] for item in contributions} == set(schema.FEATURES)
    assert all(change["field"] not in ("tenure", "gender", "seniorcitizen") for change in single["what_if"])
    assert single["warnings"] == []
    batch = client.post("/predict?explain=1", json=[SAMPLE_CUSTOMER, {**SAMPLE_CUSTOMER, "monthlycharges": 7985}])
    first, second = batch.get_json()
    assert first == single
    assert [warning["field"] for warning in second["warnings"]][:1] == ["monthlycharges"]


def test_explain_false_or_absent_changes_nothing(client):
    plain = post_json(client, SAMPLE_CUSTOMER).get_json()
    assert client.post("/predict?explain=false", json=SAMPLE_CUSTOMER).get_json() == plain
    assert set(plain) == {"churn_probability", "churn", "customerid"}
    assert_problem(client.post("/predict?explain=maybe", json=SAMPLE_CUSTOMER), 400, "'explain' must be true or false")


def test_a_field_given_twice_in_json_is_422_naming_it(client):
    body = json.dumps(SAMPLE_CUSTOMER)[:-1] + ', "tenure": 9999}'
    response = post_json(client, json.loads(json.dumps(SAMPLE_CUSTOMER)))
    assert response.status_code == 200
    refused = client.post("/predict", data=body, content_type="application/json")
    assert_problem(refused, 422, "tenure: is given twice")
    both_ids = json.dumps({**SAMPLE_CUSTOMER, "customerID": "other"})
    assert_problem(client.post("/predict", data=both_ids, content_type="application/json"), 422, "customerid")
    # A key the service does not read may repeat: nothing is silently taken from it.
    ignored = json.dumps(SAMPLE_CUSTOMER)[:-1] + ', "note": 1, "note": 2}'
    assert client.post("/predict", data=ignored, content_type="application/json").status_code == 200


def test_a_number_too_long_for_python_gets_the_services_own_message(client):
    body = json.dumps(SAMPLE_CUSTOMER).replace('"tenure": 41', '"tenure": ' + "9" * 5000)
    response = assert_problem(client.post("/predict", data=body, content_type="application/json"), 400)
    assert "more than 4300 digits" in response["detail"]
    assert "set_int_max_str_digits" not in json.dumps(response)


def test_a_batch_of_bad_records_lists_a_bounded_number_of_problems(client):
    response = assert_problem(post_json(client, [{}] * 1000), 422)
    assert response["detail"].startswith("19000 problems with the customer data")
    assert "(the first 100 are listed)" in response["detail"]
    assert len(response["errors"]) == 100
