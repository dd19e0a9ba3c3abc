"""The API document is valid, complete, and true of the running app."""

import io
import json

import pytest
from openapi_schema_validator import OAS30Validator
from openapi_spec_validator import validate

from churn import schema
from churn.apidocs import DOCS_ROUTE, SPEC_ROUTE
from churn.examples import RAW_TELCO_CUSTOMER, SAMPLE_CUSTOMER
from churn.openapi import spec
from churn.settings import Settings

# Files, not operations: the page's and the API docs' own.
UNDOCUMENTED = {"static", "asset"}


@pytest.fixture
def document(model, settings):
    return spec(model, settings)


def conforms(document, name_or_schema, instance):
    """Whether ``instance`` matches a component (by name) or an inline schema of ``document``."""
    target = {"$ref": f"#/components/schemas/{name_or_schema}"} if isinstance(name_or_schema, str) else name_or_schema
    validator = OAS30Validator({**target, "components": document["components"]})
    errors = [error.message for error in validator.iter_errors(instance)]
    assert not errors, errors


def test_document_is_valid_openapi(document):
    validate(document)


def test_served_document_is_the_generated_one(client, document):
    response = client.get(SPEC_ROUTE)
    assert response.status_code == 200
    assert response.get_json() == json.loads(json.dumps(document))


def test_every_route_is_documented_and_every_documented_path_exists(app, document):
    served = {
        rule.rule: rule.methods - {"HEAD", "OPTIONS"}
        for rule in app.url_map.iter_rules()
        if rule.endpoint not in UNDOCUMENTED
    }
    served |= {path: {endpoint.method} for path, endpoint in app.extensions["churn"].endpoints().items()}
    served.pop("/apidocs/")
    served.pop("/apispec.json")
    documented = {path: {method.upper() for method in operations} for path, operations in document["paths"].items()}
    assert served == documented


def test_customer_schema_comes_from_the_feature_schema(document):
    customer = document["components"]["schemas"]["Customer"]
    assert customer["required"] == list(schema.FEATURES)
    for name, values in schema.CATEGORICAL.items():
        assert customer["properties"][name]["enum"] == list(values)


def test_request_examples_are_served(client, document):
    examples = document["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]["examples"]
    assert set(examples) == {"course_customer", "telco_csv_spelling", "batch"}
    for example in examples.values():
        response = client.post("/predict", json=example["value"])
        assert response.status_code == 200
        conforms(
            document,
            document["paths"]["/predict"]["post"]["responses"]["200"]["content"]["application/json"]["schema"],
            response.get_json(),
        )


@pytest.mark.parametrize(
    ("request_kwargs", "status"),
    [
        ({"data": "{", "content_type": "application/json"}, 400),
        ({"data": "x=1", "content_type": "application/x-www-form-urlencoded"}, 415),
        ({"json": {"tenure": -1}}, 422),
        ({"json": [{"tenure": 1}] * 1001}, 413),
    ],
)
def test_error_responses_match_the_problem_schema(client, document, request_kwargs, status):
    response = client.post("/predict", **request_kwargs)
    assert response.status_code == status
    assert str(status) in document["paths"]["/predict"]["post"]["responses"]
    conforms(document, "Problem", response.get_json())


def test_documented_examples_match_their_schemas(document):
    for response in document["paths"]["/predict"]["post"]["responses"].values():
        for media in response["content"].values():
            for example in media.get("examples", {}).values():
                conforms(document, media["schema"], example["value"])
    conforms(document, "Customer", document["components"]["schemas"]["Customer"]["example"])


def test_health_and_model_match_their_schemas(client, document):
    conforms(document, "Health", client.get("/health").get_json())
    conforms(document, "ModelMetadata", client.get("/model").get_json())


def test_swagger_ui_is_served_from_the_service_itself(client):
    page = client.get(DOCS_ROUTE)
    assert page.status_code == 200
    assert "http" not in page.text
    script = client.get("/static/apidocs/init.js")
    assert "queryConfigEnabled: false" in script.text
    assert '"../apispec.json"' in script.text
    script.close()
    bundle = client.get(f"{DOCS_ROUTE}swagger-ui-bundle.js")
    assert bundle.status_code == 200
    assert len(bundle.data) > 1_000_000
    bundle.close()
    assert client.get(f"{DOCS_ROUTE}index.html").status_code == 404


def test_limits_in_the_document_follow_the_settings(model):
    document = spec(model, Settings(max_batch_size=7, threshold=0.3))
    body = document["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body["oneOf"][1]["maxItems"] == 7
    assert "at least 0.3" in document["info"]["description"]


def test_explained_example_is_what_explain_true_answers(client, document):
    operation = document["paths"]["/predict"]["post"]
    assert [parameter["name"] for parameter in operation["parameters"]] == ["explain"]
    shown = operation["responses"]["200"]["content"]["application/json"]["examples"]["course_customer_explained"]
    assert client.post("/predict?explain=true", json=SAMPLE_CUSTOMER).get_json() == shown["value"]
    assert set(shown["value"]) >= {"explanation", "what_if", "warnings"}


def test_response_example_is_what_the_course_customer_gets(client, document):
    operation = document["paths"]["/predict"]["post"]
    sent = operation["requestBody"]["content"]["application/json"]["examples"]["course_customer"]["value"]
    shown = operation["responses"]["200"]["content"]["application/json"]["examples"]["course_customer"]["value"]
    assert client.post("/predict", json=sent).get_json() == shown


def csv_upload(text):
    return {"data": {"file": (io.BytesIO(text.encode()), "customers.csv")}, "content_type": "multipart/form-data"}


def telco_csv(rows):
    header = ",".join(RAW_TELCO_CUSTOMER)
    return header + "\n" + "".join(",".join(str(v) for v in row.values()) + "\n" for row in rows)


# For each documented error, a request that gets it.
ERROR_REQUESTS = {
    ("/predict", "400"): {"data": "", "content_type": "application/json"},
    ("/predict", "401"): {"json": SAMPLE_CUSTOMER},
    ("/predict", "413"): {"json": [{"tenure": 1}] * 6},
    ("/predict", "415"): {"data": "x=1", "content_type": "application/x-www-form-urlencoded"},
    ("/predict", "422"): {"json": {**SAMPLE_CUSTOMER, "contract": "two_years"}},
    ("/predict_file", "400"): {"data": {"file": (io.BytesIO("gender,tenure\nfémale,1\n".encode("latin-1")), "c.csv")}},
    ("/predict_file", "401"): csv_upload(telco_csv([RAW_TELCO_CUSTOMER])),
    ("/predict_file", "413"): csv_upload(telco_csv([RAW_TELCO_CUSTOMER] * 6)),
    ("/predict_file", "415"): {"data": "x=1", "content_type": "application/x-www-form-urlencoded"},
    ("/predict_file", "422"): csv_upload(telco_csv([{**RAW_TELCO_CUSTOMER, "Contract": "Two years"}])),
}


@pytest.mark.parametrize(("path", "status"), sorted(ERROR_REQUESTS))
def test_every_error_example_is_what_the_service_answers(model, client_with, path, status):
    settings = Settings(max_batch_size=5, api_keys=("the-key",) if status == "401" else ())
    example = spec(model, settings)["paths"][path]["post"]["responses"][status]["content"]["application/problem+json"]
    client = client_with(max_batch_size=5, api_keys=settings.api_keys)
    response = client.post(path, **ERROR_REQUESTS[path, status])
    assert (response.status_code, response.get_json()) == (int(status), example["example"])


def test_schema_check_itself_rejects_a_wrong_shape(document):
    with pytest.raises(AssertionError):
        conforms(document, "Problem", {"detail": "no status"})
