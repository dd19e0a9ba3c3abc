"""The cleaning rule and the validation of one customer record."""

import difflib
import json
import math

import pytest

from churn import schema
from churn.errors import InvalidCustomer
from churn.examples import RAW_TELCO_CUSTOMER, SAMPLE_CUSTOMER
from churn.settings import Settings


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
        # An object inside a record, as the service's JSON parser gives it.
        ((("value", 41),), "must be a number, not an object"),
        ((), "must be a number, not an object"),
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
    cleaned = schema.clean_customer({**SAMPLE_CUSTOMER, "region": {"nested": True}})
    assert set(cleaned) == set(schema.FEATURES)


def test_the_customer_id_in_two_spellings_is_refused_not_guessed():
    assert problems_of({**SAMPLE_CUSTOMER, "customerID": "x"}) == {
        "customerid": "is given twice (the second time as 'customerID')"
    }


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


def test_remembered_spellings_are_bounded(monkeypatch):
    monkeypatch.setattr(schema, "_NAMES", {})
    # Each spelling of "deviceprotection" in its own case: 65,536 of them clean to the one field.
    name = "deviceprotection"
    for number in range(3 * schema._MEMO_LIMIT):
        key = "".join(c.upper() if number >> i & 1 else c for i, c in enumerate(name))
        schema.clean_record({**{k: v for k, v in SAMPLE_CUSTOMER.items() if k != name}, key: "yes"})
    assert len(schema._NAMES) == schema._MEMO_LIMIT


def test_unknown_keys_are_not_remembered(monkeypatch):
    monkeypatch.setattr(schema, "_NAMES", {})
    schema.clean_record({**SAMPLE_CUSTOMER, "a key no client sent before": 1})
    assert "a key no client sent before" not in schema._NAMES


# Hostile records: the work a refusal costs is bounded by the record's shape, whatever its size.

BODY_LIMIT = Settings().max_request_bytes
LONGEST_FIELD = max(map(len, schema.FEATURES))


@pytest.fixture
def comparisons(monkeypatch):
    """The names the schema compares with difflib, one per comparison: the expensive part of a refusal."""
    compared: list[str] = []

    class Counting(difflib.SequenceMatcher):
        def set_seq1(self, a):
            # The constructor sets an empty first sequence; each comparison then sets a name.
            if a:
                compared.append(a)
            super().set_seq1(a)

    monkeypatch.setattr(difflib, "SequenceMatcher", Counting)
    return compared


def near_misses(count: int) -> list[str]:
    """Distinct names, each a field's name with one character changed: every one a plausible misspelling."""
    names = []
    for number in range(count):
        field = schema.FEATURES[number % len(schema.FEATURES)]
        at = number // len(schema.FEATURES) % len(field)
        names.append(f"{field[:at]}{number:x}{field[at + 1 :]}")
    return names


def json_size(document) -> int:
    return len(json.dumps(document, separators=(",", ":")).encode())


def test_a_record_of_near_misses_filling_the_body_costs_a_bounded_number_of_comparisons(comparisons):
    record = dict.fromkeys(near_misses(50_000), 0)
    assert json_size(record) <= BODY_LIMIT
    problems = problems_of(record)
    assert len(comparisons) <= schema.HINT_COMPARISONS
    assert all(len(key) <= LONGEST_FIELD + schema.HINT_LENGTH_SLACK for key in comparisons)
    # Only the first unknown names are candidates.
    assert set(comparisons) <= set(list(record)[: schema.HINT_KEYS])
    assert set(problems) == set(schema.FEATURES)
    assert 1 <= sum("misspelling" in message for message in problems.values()) <= schema.HINTS


def test_long_keys_never_reach_difflib(comparisons):
    record = {f"paymentmethod{number:x}{'x' * 2000}": 0 for number in range(500)}
    assert json_size(record) <= BODY_LIMIT
    assert problems_of(record)["paymentmethod"] == "is required"
    assert comparisons == []


def test_near_misses_of_every_length_share_one_budget(comparisons):
    # Each field's name with one to three letters added: every missing field has candidates.
    record = {f"{field}{'z' * extra}": 0 for extra in range(1, 4) for field in schema.FEATURES}
    problems_of(record)
    assert 0 < len(comparisons) <= schema.HINT_COMPARISONS


def test_a_batch_of_1000_such_records_is_bounded_per_record(comparisons):
    misses = near_misses(3000)
    batch = [dict.fromkeys(misses[number : number + 50], 0) for number in range(1000)]
    assert json_size(batch) <= BODY_LIMIT
    for record in batch:
        problems_of(record)
    assert len(comparisons) <= 1000 * schema.HINT_COMPARISONS
    comparisons.clear()
    for record in batch:
        with pytest.raises(InvalidCustomer):
            schema.clean_record(record, hints=False)
    assert comparisons == []


def test_judging_a_record_returns_what_cleaning_it_returns_or_raises():
    assert schema.judge_record(SAMPLE_CUSTOMER) == (*schema.clean_record(SAMPLE_CUSTOMER), [])
    bad = {**SAMPLE_CUSTOMER, "tenure": -1, "contract": "weekly"}
    with pytest.raises(InvalidCustomer) as caught:
        schema.clean_record(bad)
    assert [problem.field for problem in caught.value.problems] == ["contract", "tenure"]
    assert schema.judge_record(bad)[2] == list(caught.value.problems)


def test_column_names_get_the_same_bounds(comparisons):
    message = schema.missing_message("paymentmethod", dict.fromkeys(near_misses(100_000)))
    assert message.endswith("a misspelling of it?)")
    assert len(comparisons) <= schema.HINT_COMPARISONS


def test_misspelling_hints_need_a_close_name_of_a_close_length():
    assert schema.missing_message("paymentmethod", ["payment", "paymentmethod_of_choice"]) == "is required"
    assert schema.missing_message("tenure", ["tenur", "tneure", "region"]) == (
        "is required (is 'tenur' a misspelling of it?)"
    )


def test_a_field_given_in_many_spellings_is_one_problem():
    spellings = ["".join(c.upper() if n >> i & 1 else c for i, c in enumerate("contract")) for n in range(256)]
    record = {**{k: v for k, v in SAMPLE_CUSTOMER.items() if k != "contract"}, **dict.fromkeys(spellings, "weekly")}
    assert problems_of(record) == {"contract": "is given 256 times (the second time as 'Contract')"}


def test_a_record_has_at_most_one_problem_per_field():
    spellings = {f"{field.upper()}": [] for field in schema.FEATURES}
    record = {"customerid": None, **{field: [] for field in schema.FEATURES}, **spellings}
    with pytest.raises(InvalidCustomer) as caught:
        schema.clean_customer(record)
    fields = [problem.field for problem in caught.value.problems]
    assert sorted(fields) == sorted(schema.FEATURES)
    record["customerid"] = {"id": 1}
    with pytest.raises(InvalidCustomer) as caught:
        schema.clean_customer(record)
    assert len(caught.value.problems) == len(schema.FEATURES) + 1


@pytest.mark.parametrize("field", ["tenure", "contract", "seniorcitizen"])
def test_a_megabyte_value_is_quoted_in_short(field):
    problem = problems_of({**SAMPLE_CUSTOMER, field: "x" * 1_000_000})[field]
    assert f"{'x' * 40!r}… (1000000 characters)" in problem
    assert len(problem) < 120


def test_describe_cuts_long_strings_and_numbers():
    assert schema.describe("x" * 40) == repr("x" * 40)
    assert schema.describe("é" * 41) == f"{'é' * 40!r}… (41 characters)"
    assert schema.describe(10**39) == str(10**39)
    # repr() of an integer of more than 4300 digits raises.
    assert schema.describe(-(10**5000)) == "a number of more than 40 digits"


def test_an_integer_of_5000_digits_gets_the_services_message():
    assert problems_of({**SAMPLE_CUSTOMER, "seniorcitizen": 10**5000}) == {
        "seniorcitizen": "a number of more than 40 digits is not one of the allowed values"
    }
    assert problems_of({**SAMPLE_CUSTOMER, "tenure": 10**5000}) == {"tenure": "must be a finite number"}


# Numbers and spellings: ASCII only, as JSON and the Telco export write them.


@pytest.mark.parametrize(
    "text", ["4_1", "\u0663", "\uff14\uff11", "\u00a041", "41\u2003", "1_000.5", "0x29", "41 months"]
)
def test_numbers_in_strings_are_ascii_decimals(text):
    assert problems_of({**SAMPLE_CUSTOMER, "tenure": text}) == {"tenure": f"must be a number, not {text!r}"}


@pytest.mark.parametrize(
    ("text", "number"),
    [("41", 41.0), ("  41 ", 41.0), ("\t41\n", 41.0), ("+41", 41.0), ("41.", 41.0), (".5", 0.5), ("4.1e1", 41.0)],
)
def test_ascii_decimals_with_spaces_around_are_numbers(text, number):
    assert schema.clean_customer({**SAMPLE_CUSTOMER, "tenure": text})["tenure"] == number


@pytest.mark.parametrize("text", ["nan", "-inf", " Infinity ", "1e400"])
def test_non_finite_spellings_keep_their_message(text):
    assert problems_of({**SAMPLE_CUSTOMER, "tenure": text}) == {"tenure": "must be a finite number"}


def test_a_flag_in_arabic_digits_is_not_a_flag():
    assert "seniorcitizen" in problems_of({**SAMPLE_CUSTOMER, "seniorcitizen": "\u0661"})


def test_only_ascii_letters_are_folded():
    kelvin = "\u212a"
    assert kelvin.lower() == "k"
    assert schema.normalise(f"Ban{kelvin} Transfer") == f"ban{kelvin}_transfer"
    assert problems_of({**SAMPLE_CUSTOMER, "paymentmethod": f"Ban{kelvin} transfer (automatic)"}) == {
        "paymentmethod": f"'Ban{kelvin} transfer (automatic)' is not one of the allowed values"
    }
    record = {**{k: v for k, v in SAMPLE_CUSTOMER.items() if k != "onlinebackup"}, f"OnlineBac{kelvin}up": "no"}
    assert problems_of(record) == {"onlinebackup": f"is required (is 'onlinebac{kelvin}up' a misspelling of it?)"}
