"""Cleaning by columns accepts, refuses and explains exactly what cleaning one record does."""

import numpy as np
import pandas as pd
import pytest

from churn import schema
from churn.columns import clean_frame, feature_columns
from churn.errors import InvalidCustomer
from churn.examples import RAW_TELCO_CUSTOMER, SAMPLE_CUSTOMER

NUMBER_SPELLINGS = [
    "1", " 2 ", "1_000", "+3", ".5", "5.", "1e3", "1E3", "0x10", "inf", "-inf", "nan", "Infinity", "",
    " ", "-0", "-1", "1,000", "1e400", "00012", "1.5e-3", "\t7\n", "٣", "abc",
]  # fmt: skip
CATEGORY_SPELLINGS = ["Yes", "yes", "YES", " yes", "y", "", "No", "no phone service", "No internet service"]


def row_by_row(records):
    """What clean_record says of each record: its features, or its problems by field."""
    results = []
    for record in records:
        try:
            results.append(("ok", schema.clean_customer(record)))
        except InvalidCustomer as error:
            results.append(("bad", sorted((p.field, p.message) for p in error.problems)))
    return results


def by_columns(frame):
    columns = clean_frame(frame)
    results = []
    for index in range(len(frame)):
        if columns.rejected[index]:
            problems = sorted((p.field, p.message) for p in columns.problems() if p.index == index)
            results.append(("bad", problems))
        else:
            customer = {name: schema.CATEGORICAL[name][columns.codes[name][index]] for name in schema.CATEGORICAL}
            customer |= {name: float(columns.numbers[name][index]) for name in schema.NUMERICAL}
            results.append(("ok", customer))
    return results


def test_number_spellings_as_text_agree_with_the_record_rule():
    records = [{**SAMPLE_CUSTOMER, name: text} for name in schema.NUMERICAL for text in NUMBER_SPELLINGS]
    frame = pd.DataFrame(records).astype(str)
    assert isinstance(frame["tenure"].dtype, pd.StringDtype)
    assert by_columns(frame) == row_by_row(records)


def test_category_spellings_agree_with_the_record_rule():
    fields = ["partner", "multiplelines", "onlinebackup", "seniorcitizen"]
    records = [{**SAMPLE_CUSTOMER, name: text} for name in fields for text in [*CATEGORY_SPELLINGS, "1", "0", "2"]]
    results = by_columns(pd.DataFrame(records).astype(str))
    assert results == row_by_row(records)
    assert {status for status, _ in results} == {"ok", "bad"}


def test_python_values_in_object_columns_agree_with_the_record_rule():
    values = [True, None, 1, 1.0, -2, "7", np.nan]
    records = [{**SAMPLE_CUSTOMER, name: value} for name in ("seniorcitizen", "tenure", "gender") for value in values]
    frame = pd.DataFrame(records, dtype=object)
    expected = row_by_row([{k: (None if v is np.nan else v) for k, v in r.items()} for r in records])
    assert by_columns(frame) == expected


def test_typed_columns_score_as_their_text():
    clean = pd.DataFrame([schema.clean_customer(SAMPLE_CUSTOMER), schema.clean_customer(RAW_TELCO_CUSTOMER)])
    typed = clean.astype({name: "category" for name in schema.CATEGORICAL})
    as_text = by_columns(clean.astype(str))
    assert by_columns(typed) == by_columns(clean) == as_text


def test_missing_numbers_in_a_numeric_column_are_reported_as_null():
    frame = pd.DataFrame([SAMPLE_CUSTOMER, SAMPLE_CUSTOMER])
    frame.loc[1, "tenure"] = np.nan
    columns = clean_frame(frame)
    assert columns.rejected.tolist() == [False, True]
    assert [(p.index, p.field, p.message) for p in columns.problems()] == [(1, "tenure", "must be a number, not null")]


def test_columns_are_matched_by_the_cleaning_rule():
    columns = feature_columns(list(RAW_TELCO_CUSTOMER))
    assert columns["paymentmethod"] == "PaymentMethod"
    assert list(columns) == list(schema.FEATURES)


def test_missing_and_doubled_columns_are_refused_whole():
    names = [name for name in SAMPLE_CUSTOMER if name != "paymentmethod"] + ["paymentmetod", "Tenure"]
    with pytest.raises(InvalidCustomer) as caught:
        feature_columns(names)
    messages = {problem.field: problem.message for problem in caught.value.problems}
    assert messages["tenure"] == "is given twice (the second time as column 'Tenure')"
    assert messages["paymentmethod"] == "is required (is 'paymentmetod' a misspelling of it?)"


def test_bad_rows_share_one_message_per_distinct_value_and_list_fields_in_schema_order():
    records = [{**SAMPLE_CUSTOMER, "contract": "Three year", "tenure": str(-(index % 3) - 1)} for index in range(1000)]
    records[5]["contract"] = "month-to-month"
    columns = clean_frame(pd.DataFrame(records).astype(str))
    faults = {fault.field: fault for fault in columns.faults}
    assert list(faults) == ["contract", "tenure"]
    assert faults["contract"].messages.to_pylist() == ["'Three year' is not one of the allowed values"]
    assert faults["contract"].allowed == schema.CATEGORICAL["contract"]
    assert sorted(set(faults["tenure"].messages.to_pylist())) == [
        f"must not be negative, got '-{n}'" for n in (1, 2, 3)
    ]
    assert faults["contract"].codes[5] == -1
    assert columns.rejected.all()
    problems = columns.problems()
    assert [(p.index, p.field) for p in problems[:3]] == [(0, "contract"), (0, "tenure"), (1, "contract")]
    assert problems[1].message == "must not be negative, got '-1'"
    assert len(problems) == 1999


def test_text_pandas_holds_in_several_arrow_chunks_is_cleaned_whole():
    records = [{**SAMPLE_CUSTOMER, "tenure": text} for text in NUMBER_SPELLINGS]
    halves = [pd.DataFrame(part).astype(str) for part in (records[:10], records[10:])]
    frame = pd.concat(halves, ignore_index=True)
    assert by_columns(frame) == row_by_row(records)


def test_customers_are_the_rows_as_the_record_rule_cleans_them():
    other = {**SAMPLE_CUSTOMER, "seniorcitizen": 1, "contract": "Two year", "monthlycharges": "70.5"}
    records = [SAMPLE_CUSTOMER, {**SAMPLE_CUSTOMER, "tenure": "-1"}, other]
    columns = clean_frame(pd.DataFrame(records).astype(str))
    valid = np.flatnonzero(~columns.rejected)
    assert valid.tolist() == [0, 2]
    customers = columns.customers(valid)
    assert customers == [schema.clean_customer(records[0]), schema.clean_customer(records[2])]
    assert [list(customer) for customer in customers] == [list(schema.FEATURES)] * 2
