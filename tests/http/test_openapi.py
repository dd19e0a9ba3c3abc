"""The API document is valid, complete, and true of the running app."""

import json

import pytest
from openapi_schema_validator import OAS30Validator
from openapi_spec_validator import validate

from churn import schema
from churn.openapi import DOCS_ROUTE, SPEC_ROUTE, spec
from churn.settings import Settings

DOCUMENTED_ELSEWHERE = {"static", "flasgger."}


@pytest.fixture
def document(settings):
    return spec(settings)


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
        if not rule.endpoint.startswith(tuple(DOCUMENTED_ELSEWHERE))
    }
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


def test_swagger_ui_is_served_offline(client):
    page = client.get(DOCS_ROUTE)
    assert page.status_code == 200
    assert SPEC_ROUTE in page.text
    bundle = client.get("/flasgger_static/swagger-ui-bundle.js")
    assert bundle.status_code == 200
    assert len(bundle.data) > 100_000
    bundle.close()


def test_limits_in_the_document_follow_the_settings(model):
    document = spec(Settings(max_batch_size=7, threshold=0.3))
    body = document["paths"]["/predict"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert body["oneOf"][1]["maxItems"] == 7
    assert "at least 0.3" in document["info"]["description"]


def test_response_example_is_what_the_course_customer_gets(client, document):
    operation = document["paths"]["/predict"]["post"]
    sent = operation["requestBody"]["content"]["application/json"]["examples"]["course_customer"]["value"]
    shown = operation["responses"]["200"]["content"]["application/json"]["examples"]["single"]["value"]
    assert client.post("/predict", json=sent).get_json() == shown


def test_schema_check_itself_rejects_a_wrong_shape(document):
    with pytest.raises(AssertionError):
        conforms(document, "Problem", {"detail": "no status"})
