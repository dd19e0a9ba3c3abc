"""Request bodies to customers, without the web layer."""

import gc
import json

import pytest

from churn.errors import InvalidCustomer, MalformedInput, TooLarge
from churn.examples import RAW_TELCO_CUSTOMER, SAMPLE_CUSTOMER
from churn.prediction import MAX_KEYS, parse_customers, parse_json, predictions, score


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


def test_an_array_past_the_batch_limit_is_refused_before_the_rest_is_parsed():
    # Six elements, then text that is not JSON: with a limit of 5 the parser stops at the sixth.
    body = b"[" + b"0," * 6 + b"not JSON"
    with pytest.raises(TooLarge) as caught:
        parse_json(body, max_batch_size=5)
    assert caught.value.detail == (
        "The batch has more than 5 customers; the limit is 5. Split it into smaller requests."
    )
    with pytest.raises(MalformedInput, match="Expecting value"):
        parse_json(body, max_batch_size=6)
    assert parse_json(b" [0, 0 ,0,0,0] ", max_batch_size=5) == [0] * 5


@pytest.mark.parametrize(
    "body",
    [b"[1 2]", b"[1,]", b"[", b"[1,", b"[,1]", b"[] x", b"[1]]", b" [ 1 , 2 ", b"[1\n,\n]", b'[{"a":1},{"a"}]', b"[0"],
)
def test_an_array_read_element_by_element_fails_as_the_whole_parser_does(body):
    with pytest.raises(MalformedInput) as whole:
        parse_json(body)
    with pytest.raises(MalformedInput) as by_element:
        parse_json(body, max_batch_size=10)
    assert by_element.value.detail == whole.value.detail


def test_records_are_dicts_and_the_objects_inside_them_pairs():
    document = {"note": {"deeper": {"a": 1}}, "tenure": 1}
    record = {"note": (("deeper", (("a", 1),)),), "tenure": 1}
    assert parse_json(json.dumps(document).encode()) == record
    assert parse_json(json.dumps([document, [document]]).encode(), max_batch_size=2) == [
        record,
        [tuple(record.items())],
    ]


def test_a_field_repeated_under_one_key_is_named_in_the_order_of_its_second_mention():
    body = b'[{"tenure": 1, "gender": "x", "gender": "y", "tenure": 2, "note": 1, "note": 2}]'
    with pytest.raises(InvalidCustomer) as caught:
        parse_customers(parse_json(body, max_batch_size=10), max_batch_size=10)
    assert [(p.index, p.field, p.message) for p in caught.value.problems] == [
        (0, "gender", "is given twice"),
        (0, "tenure", "is given twice"),
    ]


def test_a_record_with_more_keys_than_a_customer_could_have_is_refused_unread():
    padded = {**SAMPLE_CUSTOMER, **{f"note{number}": 0 for number in range(MAX_KEYS - len(SAMPLE_CUSTOMER))}}
    assert parse_customers(parse_json(json.dumps(padded).encode()), max_batch_size=1).ids == ["8879-zkjof"]
    body = json.dumps([padded, {**padded, "tenure": -1, "one more": 0}]).encode()
    with pytest.raises(InvalidCustomer) as caught:
        parse_customers(parse_json(body), max_batch_size=2)
    assert (
        caught.value.detail
        == f"1 problem with the customer data: [1]: has {MAX_KEYS + 1} keys; a customer has at most {MAX_KEYS}"
    )


def test_keys_repeated_inside_an_ignored_value_are_not_refused():
    record = json.dumps({**SAMPLE_CUSTOMER, "note": {"a": 1}})[:-2] + ', "a": 2}}'
    assert parse_customers(parse_json(record.encode()), max_batch_size=1).ids == ["8879-zkjof"]


@pytest.mark.parametrize("enabled", [True, False])
def test_scoring_leaves_the_garbage_collector_as_it_found_it(model, enabled):
    good, bad = json.dumps(SAMPLE_CUSTOMER).encode(), b"[{}, 1]"
    try:
        (gc.enable if enabled else gc.disable)()
        score(model, good, 0.5, 10)
        assert gc.isenabled() is enabled
        with pytest.raises(InvalidCustomer):
            score(model, bad, 0.5, 10)
        assert gc.isenabled() is enabled
    finally:
        gc.enable()


def test_a_refusal_keeps_no_hold_on_the_parsed_body(model):
    # The collector is off while a body is scored: the body must be gone when it resumes, not held by the traceback.
    with pytest.raises(InvalidCustomer) as caught:
        score(model, b"[[0], [1], {}]", 0.5, 10)
    frames, tb = {}, caught.value.__traceback__
    while tb is not None:
        frames[tb.tb_frame.f_code.co_name] = tb.tb_frame.f_locals
        tb = tb.tb_next
    assert frames["parse_customers"] == {}
