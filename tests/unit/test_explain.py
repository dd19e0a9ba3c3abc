"""Explanations checked against the fitted pair itself: the identity, the coefficients, what-if and warnings."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from sklearn.model_selection import train_test_split

from churn import schema
from churn.examples import SAMPLE_CUSTOMER
from churn.explain import ACTIONABLE, Explainer, summary_columns
from churn.model import ChurnModel
from churn.reference import reference_distributions
from churn.training import DATA_FILE, SEED, TEST_SIZE, load_dataset

# Written out apart from churn.explain.ACTIONABLE, so that a field added there by mistake fails here.
ALLOWED_ACTIONS = {"contract", "paymentmethod", "paperlessbilling", "onlinesecurity", "techsupport"}
INTERNET_ADD_ONS = {"onlinesecurity", "techsupport"}


@pytest.fixture(scope="module")
def customers() -> list[schema.Customer]:
    return load_dataset(DATA_FILE).customers


@pytest.fixture(scope="module")
def training(customers: list[schema.Customer]) -> list[schema.Customer]:
    """The full training split, made as churn.training.train makes it."""
    full_train, _ = train_test_split(np.arange(len(customers)), test_size=TEST_SIZE, random_state=SEED)
    return [customers[i] for i in full_train]


@pytest.fixture(scope="module")
def explainer(model: ChurnModel, training: list[schema.Customer]) -> Explainer:
    reference = reference_distributions(training, np.array(model.predict_proba(training)))
    return Explainer.from_model(model.scorer, reference)


def course_proba(model: ChurnModel, customers: list[schema.Customer]) -> np.ndarray:
    """The fitted pair's own probabilities, without the compiled tables."""
    return model.regression.predict_proba(model.vectorizer.transform(customers))[:, 1]


@pytest.fixture(scope="module")
def explained(model: ChurnModel, explainer: Explainer, customers: list[schema.Customer]) -> list[dict]:
    probabilities = course_proba(model, customers).tolist()
    return [explainer.explain(c, p) for c, p in zip(customers, probabilities, strict=True)]


def test_contributions_add_up_to_the_log_odds_on_every_row(
    model: ChurnModel, customers: list[schema.Customer], explained: list[dict]
) -> None:
    assert len(explained) == 7043
    for probability, result in zip(course_proba(model, customers), explained, strict=True):
        explanation = result["explanation"]
        total = explanation["intercept"] + math.fsum(term["contribution"] for term in explanation["contributions"])
        assert total == pytest.approx(math.log(probability / (1 - probability)), abs=1e-9)


def test_contributions_are_the_coefficients_against_the_training_means(
    model: ChurnModel,
    explainer: Explainer,
    customers: list[schema.Customer],
    training: list[schema.Customer],
    explained: list[dict],
) -> None:
    # Every column of the one-hot matrix, weighted and centred on its training mean, summed per field.
    coefficients = model.regression.coef_[0]
    means = model.vectorizer.transform(training).mean(axis=0)
    columns = (model.vectorizer.transform(customers) - means) * coefficients
    fields = sorted(schema.FEATURES)
    by_field = np.array([[name.split("=")[0] == field for field in fields] for name in model.vectorizer.feature_names_])
    expected = columns @ by_field
    by_feature = [{t["feature"]: t["contribution"] for t in r["explanation"]["contributions"]} for r in explained]
    actual = np.array([[contributions[field] for field in fields] for contributions in by_feature])
    assert np.abs(actual - expected).max() < 1e-9
    intercept = model.regression.intercept_[0] + float(means @ coefficients)
    assert explainer.intercept == pytest.approx(intercept, abs=1e-9)
    assert all(r["explanation"]["intercept"] == explainer.intercept for r in explained)


def test_contributions_name_the_values_and_are_sorted(customers: list[schema.Customer], explained: list[dict]) -> None:
    for customer, result in zip(customers, explained, strict=True):
        contributions = result["explanation"]["contributions"]
        assert sorted(t["feature"] for t in contributions) == sorted(schema.FEATURES)
        assert all(t["value"] == customer[t["feature"]] for t in contributions)
        sizes = [abs(t["contribution"]) for t in contributions]
        assert sizes == sorted(sizes, reverse=True)


def possible_values(customer: schema.Customer, field: str) -> set[str]:
    """What a field may be changed to, by the rule the docs give, written apart from churn.explain."""
    if field not in INTERNET_ADD_ONS:
        return set(schema.CATEGORICAL[field]) - {customer[field]}  # type: ignore[arg-type]
    if customer["internetservice"] == "no":
        return set()
    return {"no", "yes"} - {customer[field]}  # type: ignore[arg-type]


def test_what_if_offers_every_reduction_and_only_those(
    model: ChurnModel, customers: list[schema.Customer], explained: list[dict]
) -> None:
    sample = range(0, len(customers), 10)
    changed, keys = [], []
    for i in sample:
        for field in sorted(ALLOWED_ACTIONS):
            for value in sorted(possible_values(customers[i], field)):
                changed.append({**customers[i], field: value})
                keys.append((i, field, value))
    before = course_proba(model, customers)
    reductions: dict[int, dict[tuple[str, str], float]] = {i: {} for i in sample}
    for (i, field, value), probability in zip(keys, course_proba(model, changed).tolist(), strict=True):
        if probability < before[i]:
            reductions[i][field, value] = probability
    offers = 0
    for i in sample:
        what_if = explained[i]["what_if"]
        assert {(change["field"], change["to"]) for change in what_if} == set(reductions[i])
        for change in what_if:
            probability = reductions[i][change["field"], change["to"]]
            assert change["from"] == customers[i][change["field"]]
            assert change["churn_probability"] == pytest.approx(probability, abs=1e-9)
            assert change["change"] == pytest.approx(probability - before[i], abs=1e-9)
        changes = [change["change"] for change in what_if]
        assert changes == sorted(changes)
        offers += len(what_if)
    assert offers > len(sample)


def test_what_if_never_offers_a_forbidden_field_or_an_impossible_value(
    customers: list[schema.Customer], explained: list[dict]
) -> None:
    assert set(ACTIONABLE) == ALLOWED_ACTIONS
    without_internet = 0
    for customer, result in zip(customers, explained, strict=True):
        for change in result["what_if"]:
            assert change["field"] in ALLOWED_ACTIONS
            assert change["to"] != "no_internet_service"
            if customer["internetservice"] == "no":
                assert change["field"] not in INTERNET_ADD_ONS
        without_internet += customer["internetservice"] == "no"
    assert without_internet > 1000


def test_what_if_offers_nothing_to_a_customer_already_at_the_lowest_risk(
    model: ChurnModel, explainer: Explainer
) -> None:
    customer = schema.clean_customer(SAMPLE_CUSTOMER)
    for field in ALLOWED_ACTIONS:
        table = model.scorer.tables[field]
        customer[field] = min(possible_values(customer, field) | {customer[field]}, key=table.__getitem__)  # type: ignore[arg-type]
    result = explainer.explain(customer, model.scorer.score(customer))
    assert result["what_if"] == []
    assert summary_columns([result])["best_action"] == [""]


def test_no_warnings_for_the_sample_customer(explainer: Explainer) -> None:
    assert explainer.warnings_for(schema.clean_customer(SAMPLE_CUSTOMER)) == []


def test_few_training_customers_have_warnings(explainer: Explainer, training: list[schema.Customer]) -> None:
    warned = sum(bool(explainer.warnings_for(customer)) for customer in training)
    assert warned <= 0.001 * len(training) + 1


def test_a_charge_above_the_training_range(explainer: Explainer) -> None:
    customer = {
        **schema.clean_customer(SAMPLE_CUSTOMER),
        "tenure": 1.0,
        "monthlycharges": 7985.0,
        "totalcharges": 7985.0,
    }
    warnings = explainer.warnings_for(customer)
    assert len(warnings) == 1
    warning = warnings[0]
    high = warning["training_max"]
    assert warning["field"] == "monthlycharges"
    assert warning["kind"] == "out_of_range"
    assert warning["value"] == 7985.0
    assert 100 < high < 7985
    assert warning["message"] == (
        f"monthlycharges 7985 is {7985 / high:.1f}x the largest value seen in training ({high:g})"
    )


def test_a_value_just_above_or_below_the_training_range(explainer: Explainer) -> None:
    tenure = explainer.ranges["tenure"][1] + 1
    customer = {**schema.clean_customer(SAMPLE_CUSTOMER), "tenure": tenure}
    customer["totalcharges"] = tenure * customer["monthlycharges"]  # type: ignore[operator]
    (warning,) = explainer.warnings_for(customer)
    assert (
        warning["message"]
        == f"tenure {tenure:g} is {100 / (tenure - 1):.1f}% above the largest value seen in training ({tenure - 1:g})"
    )
    low = explainer.ranges["monthlycharges"][0]
    customer = {**schema.clean_customer(SAMPLE_CUSTOMER), "monthlycharges": low / 2, "totalcharges": 41 * low / 2}
    (warning,) = explainer.warnings_for(customer)
    assert warning["field"] == "monthlycharges"
    assert warning["training_min"] == low
    assert "is 50.0% below the smallest value seen in training" in warning["message"]


def test_totals_far_from_tenure_times_monthly_charges(explainer: Explainer) -> None:
    customer = schema.clean_customer(SAMPLE_CUSTOMER)
    # 41 months of 79.85 is 3273.85; the sample's 3320.75 is 1.4% off, as real totals are.
    for total in (100.0, 0.0, 3273.85 * 2):
        (warning,) = explainer.warnings_for({**customer, "totalcharges": total})
        assert warning["kind"] == "inconsistent_total"
        assert warning["field"] == "totalcharges"
        assert warning["value"] == total
        assert warning["expected"] == pytest.approx(3273.85)
        assert warning["relative_difference"] > warning["tolerance"]
        assert "tenure x monthlycharges (41 x 79.85 = 3273.85)" in warning["message"]
    assert explainer.warnings_for({**customer, "totalcharges": 3273.85 * 1.1}) == []


def test_first_month_customers_as_the_data_has_them(explainer: Explainer) -> None:
    customer = {**schema.clean_customer(SAMPLE_CUSTOMER), "tenure": 0.0, "totalcharges": 0.0}
    assert explainer.warnings_for(customer) == []
    (warning,) = explainer.warnings_for({**customer, "totalcharges": 500.0})
    assert warning["kind"] == "inconsistent_total"
    assert warning["expected"] == 0


def test_explain_returns_the_warnings_and_plain_json(model: ChurnModel, explainer: Explainer) -> None:
    customer = {**schema.clean_customer(SAMPLE_CUSTOMER), "monthlycharges": 7985.0}
    result = explainer.explain(customer, model.scorer.score(customer))
    assert result["warnings"] == explainer.warnings_for(customer)
    assert [w["kind"] for w in result["warnings"]] == ["out_of_range", "inconsistent_total"]
    assert json.loads(json.dumps(result, allow_nan=False)) == result


def test_summary_columns(model: ChurnModel, explainer: Explainer, customers: list[schema.Customer]) -> None:
    results = [explainer.explain(c, model.scorer.score(c)) for c in customers[:3]]
    columns = summary_columns(results)
    assert list(columns) == ["reason_1", "reason_2", "reason_3", "best_action"]
    assert all(len(column) == 3 for column in columns.values())
    # The first customer: one month, month-to-month, paying by electronic check.
    assert columns["reason_1"][0] == f"tenure=1 ({results[0]['explanation']['contributions'][0]['contribution']:+.2f})"
    for rank in (1, 2, 3):
        term = results[1]["explanation"]["contributions"][rank - 1]
        value = term["value"]
        shown = f"{value:g}" if isinstance(value, float) else value
        assert columns[f"reason_{rank}"][1] == f"{term['feature']}={shown} ({term['contribution']:+.2f})"
    best = results[0]["what_if"][0]
    before = model.scorer.score(customers[0])
    assert columns["best_action"][0] == (
        f"{best['field']} -> {best['to']}: {before:.3f} -> {best['churn_probability']:.3f}"
    )
    assert summary_columns([]) == {"reason_1": [], "reason_2": [], "reason_3": [], "best_action": []}


@pytest.mark.parametrize(("field", "probability"), [("totalcharges", 1.0), ("tenure", 0.0)])
def test_no_change_is_offered_past_a_certain_prediction(
    model: ChurnModel, explainer: Explainer, field: str, probability: float
) -> None:
    # Month-to-month, electronic check, no tech support: several changes help at an ordinary probability.
    base = schema.clean_customer(
        {**SAMPLE_CUSTOMER, "contract": "month-to-month", "paymentmethod": "electronic_check", "techsupport": "no"}
    )
    assert len(explainer.explain(base, model.scorer.score(base))["what_if"]) > 3
    customer = {**base, field: 1e300}
    assert model.scorer.score(customer) == probability
    result = explainer.explain(customer, probability)
    assert result["what_if"] == []
    assert {w["field"] for w in result["warnings"]} == {field, "totalcharges"}
    json.dumps(result, allow_nan=False)
