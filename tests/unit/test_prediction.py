"""Request bodies to customers, without the web layer."""

import pytest

from churn.errors import InvalidCustomer, MalformedInput, TooLarge
from churn.examples import RAW_TELCO_CUSTOMER, SAMPLE_CUSTOMER
from churn.prediction import parse_customers, parse_json, predictions


@pytest.mark.parametrize(
    ("body", "detail"),
    [
        (b"", "The body is not valid JSON: Expecting value at line 1 column 1."),
        (b'{"tenure": 4', "The body is not valid JSON: Expecting ',' delimiter at line 1 column 13."),
        (b'{"tenure": NaN}', "The body is not valid JSON: NaN is not valid JSON."),
        (b'{"tenure": -Infinity}', "The body is not valid JSON: -Infinity is not valid JSON."),
        (b"\xff\xfe{}", "The body is not valid JSON: it is not UTF-8 text."),
        (b"[" * 100_000 + b"]" * 100_000, "The body is not valid JSON for this service: it is nested too deeply."),
    ],
)
def test_bad_json_is_a_bad_request(body, detail):
    with pytest.raises(MalformedInput) as caught:
        parse_json(body)
    assert caught.value.detail == detail


def test_single_customer():
    parsed = parse_customers(SAMPLE_CUSTOMER, max_batch_size=10)
    assert not parsed.batch
    assert parsed.ids == ["8879-zkjof"]
    assert len(parsed.customers) == 1


def test_batch_keeps_order_and_ids_in_any_spelling():
    parsed = parse_customers([RAW_TELCO_CUSTOMER, SAMPLE_CUSTOMER], max_batch_size=10)
    assert parsed.batch
    assert parsed.ids == ["8879-ZKJOF", "8879-zkjof"]


@pytest.mark.parametrize("document", ["a string", 42, None, True])
def test_body_must_be_object_or_array(document):
    with pytest.raises(MalformedInput, match="must be a customer object or an array of them"):
        parse_customers(document, max_batch_size=10)


def test_empty_batch():
    with pytest.raises(MalformedInput, match="The batch is empty"):
        parse_customers([], max_batch_size=10)


def test_oversized_batch():
    with pytest.raises(TooLarge, match="The batch has 11 customers; the limit is 10"):
        parse_customers([SAMPLE_CUSTOMER] * 11, max_batch_size=10)


def test_one_bad_record_rejects_the_batch_naming_its_index():
    batch = [SAMPLE_CUSTOMER, {**SAMPLE_CUSTOMER, "tenure": -1}, "oops", SAMPLE_CUSTOMER]
    with pytest.raises(InvalidCustomer) as caught:
        parse_customers(batch, max_batch_size=10)
    located = [(p.index, p.field) for p in caught.value.problems]
    assert located == [(1, "tenure"), (2, None)]
    assert caught.value.detail == (
        "2 problems with the customer data: [1].tenure: must not be negative, got -1; "
        "[2]: must be a customer object, not a string"
    )


def test_predictions_apply_the_threshold_inclusively_and_echo_ids():
    results = predictions([0.5, 0.4999], ["a", None], threshold=0.5)
    assert results == [
        {"churn_probability": 0.5, "churn": True, "customerid": "a"},
        {"churn_probability": 0.4999, "churn": False},
    ]
