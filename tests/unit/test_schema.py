"""The cleaning rule and the validation of one customer record."""

import math

import pytest

from churn import schema
from churn.errors import InvalidCustomer
from churn.examples import RAW_TELCO_CUSTOMER, SAMPLE_CUSTOMER


def problems_of(record: dict) -> dict[str, str]:
    with pytest.raises(InvalidCustomer) as caught:
        schema.clean_customer(record)
    return {problem.field: problem.message for problem in caught.value.problems}


def test_normalise_is_the_courses_rule():
    assert schema.normalise("PaymentMethod") == "paymentmethod"
    assert schema.normalise("Bank transfer (automatic)") == "bank_transfer_(automatic)"
    assert schema.normalise("Month-to-month") == "month-to-month"
    assert schema.normalise("No phone service") == "no_phone_service"


def test_course_customer_is_clean_as_sent():
    cleaned = schema.clean_customer(SAMPLE_CUSTOMER)
    assert set(cleaned) == set(schema.FEATURES)
    assert cleaned["contract"] == "one_year"
    assert cleaned["seniorcitizen"] == 0
    assert cleaned["tenure"] == 41.0


def test_raw_telco_spelling_cleans_to_the_course_spelling():
    assert schema.clean_customer(RAW_TELCO_CUSTOMER) == schema.clean_customer(SAMPLE_CUSTOMER)


def test_blank_total_charges_is_zero_as_in_training():
    assert schema.clean_customer({**SAMPLE_CUSTOMER, "totalcharges": " "})["totalcharges"] == 0.0
    assert schema.clean_customer({**SAMPLE_CUSTOMER, "totalcharges": ""})["totalcharges"] == 0.0


def test_blank_is_not_zero_for_other_numbers():
    assert problems_of({**SAMPLE_CUSTOMER, "tenure": " "}) == {"tenure": "must be a number, not a blank string"}


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (-1, "must not be negative, got -1"),
        ("-0.5", "must not be negative, got '-0.5'"),
        ("nan", "must be a finite number"),
        ("Infinity", "must be a finite number"),
        (10**400, "must be a finite number"),
        ("12 months", "must be a number, not '12 months'"),
        (True, "must be a number, not a boolean"),
        (None, "must be a number, not null"),
        ([41], "must be a number, not an array"),
        ({"value": 41}, "must be a number, not an object"),
    ],
)
def test_bad_numbers_are_named(value, message):
    assert problems_of({**SAMPLE_CUSTOMER, "tenure": value}) == {"tenure": message}


def test_numeric_strings_are_numbers():
    cleaned = schema.clean_customer({**SAMPLE_CUSTOMER, "tenure": "41", "monthlycharges": " 79.85 "})
    assert cleaned["tenure"] == 41.0
    assert cleaned["monthlycharges"] == 79.85


def test_unknown_category_lists_the_allowed_values():
    with pytest.raises(InvalidCustomer) as caught:
        schema.clean_customer({**SAMPLE_CUSTOMER, "contract": "two_years"})
    (problem,) = caught.value.problems
    assert problem.field == "contract"
    assert problem.message == "'two_years' is not one of the allowed values"
    assert problem.allowed == ("month-to-month", "one_year", "two_year")


@pytest.mark.parametrize("value", [5, None, ["yes"], {"a": 1}, True])
def test_category_must_be_text(value):
    assert problems_of({**SAMPLE_CUSTOMER, "partner": value})["partner"].startswith("must be a string, not ")


@pytest.mark.parametrize(("value", "expected"), [(0, 0), (1, 1), ("1", 1), ("0", 0), (1.0, 1)])
def test_senior_citizen_is_an_integer_flag(value, expected):
    assert schema.clean_customer({**SAMPLE_CUSTOMER, "seniorcitizen": value})["seniorcitizen"] == expected


@pytest.mark.parametrize("value", [2, "yes", True, 0.5, None, -1])
def test_senior_citizen_refuses_anything_else(value):
    assert "seniorcitizen" in problems_of({**SAMPLE_CUSTOMER, "seniorcitizen": value})


def test_missing_fields_are_errors_not_zeros():
    record = {k: v for k, v in SAMPLE_CUSTOMER.items() if k not in ("contract", "tenure")}
    assert problems_of(record) == {"contract": "is required", "tenure": "is required"}


def test_misspelt_field_is_pointed_out():
    record = {k: v for k, v in SAMPLE_CUSTOMER.items() if k != "paymentmethod"}
    record["paymentmetod"] = "mailed_check"
    assert problems_of(record) == {"paymentmethod": "is required (is 'paymentmetod' a misspelling of it?)"}


def test_field_given_twice_in_two_spellings_is_an_error():
    assert problems_of({**SAMPLE_CUSTOMER, "Contract": "Two year"}) == {
        "contract": "is given twice (the second time as 'Contract')"
    }


def test_extra_keys_are_ignored():
    cleaned = schema.clean_customer({**SAMPLE_CUSTOMER, "customerID": "x", "region": {"nested": True}})
    assert set(cleaned) == set(schema.FEATURES)


def test_customer_id_must_be_scalar():
    assert problems_of({**SAMPLE_CUSTOMER, "customerid": {"id": 1}}) == {
        "customerid": "must be a string or an integer, not an object"
    }


def test_every_problem_is_reported_at_once():
    assert set(problems_of({"gender": "other"})) == set(schema.FEATURES)


def test_target_rule():
    assert schema.parse_target("Yes") == 1
    assert schema.parse_target("no") == 0
    with pytest.raises(schema.FieldError):
        schema.parse_target("maybe")


def test_feature_names_match_a_fitted_vectorizer(model):
    assert schema.feature_names() == list(model.vectorizer.feature_names_)


def test_parse_number_accepts_large_finite_numbers():
    assert schema.parse_number(1e300) == 1e300
    assert not math.isnan(schema.parse_number("0"))


def test_remembered_spellings_do_not_change_answers():
    """Cleaning remembers spellings it has seen; a second sight must clean and refuse the same way."""
    telco_spelling = {**{k: v for k, v in SAMPLE_CUSTOMER.items() if k != "contract"}, "Contract": "One year"}
    for _ in range(2):
        assert schema.clean_customer({**telco_spelling, "seniorcitizen": "1"})["contract"] == "one_year"
        # True == 1 and hashes like it: a remembered 1 must not let a boolean through.
        assert "seniorcitizen" in problems_of({**SAMPLE_CUSTOMER, "seniorcitizen": True})
        assert "tenure" in problems_of({**SAMPLE_CUSTOMER, "tenure": True})
        assert problems_of({**SAMPLE_CUSTOMER, "tenure": 10**400}) == {"tenure": "must be a finite number"}


def test_remembered_spellings_are_bounded():
    for number in range(3 * schema._MEMO_LIMIT):
        schema.clean_record({**SAMPLE_CUSTOMER, f"extra_key_{number}": 1})
    assert len(schema._NAMES) <= schema._MEMO_LIMIT
