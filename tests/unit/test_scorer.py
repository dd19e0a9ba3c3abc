"""The compiled scorer gives the course's ``predict_proba``, on every row and at the edges."""

import itertools
import math
import sys

import numpy as np
import pandas as pd
import pytest

from churn import schema
from churn.columns import clean_frame
from churn.examples import SAMPLE_CUSTOMER
from churn.scorer import sigmoid, sigmoid_array
from tests.helpers.data import COURSE_FEATURES

TOLERANCE = 1e-12
LARGE = (0.0, 1e-300, 1.0, 1e6, 1e15, 1e300, sys.float_info.max)


def course_proba(model, customers):
    """The course's path: the pickled pair through DictVectorizer and predict_proba."""
    return model.regression.predict_proba(model.vectorizer.transform(customers))[:, 1]


def by_columns(model, customers):
    columns = clean_frame(pd.DataFrame(customers))
    assert not columns.rejected.any()
    return model.scorer.score_columns(columns.codes, columns.numbers)


def edge_customers():
    """Every allowed value of every field, and zero to the largest float in every number."""
    base = schema.clean_customer(SAMPLE_CUSTOMER)
    customers = [{**base, name: value} for name, values in schema.CATEGORICAL.items() for value in values]
    customers += [{**base, name: value} for name in schema.NUMERICAL for value in LARGE]
    for values in itertools.product(LARGE, repeat=len(schema.NUMERICAL)):
        customers.append({**base, **dict(zip(schema.NUMERICAL, values, strict=True))})
    return customers


def test_every_row_one_at_a_time_and_by_columns(model, course_frame):
    customers = course_frame[COURSE_FEATURES].to_dict(orient="records")
    expected = course_proba(model, customers)
    assert len(expected) == 7043
    assert np.max(np.abs(np.array([model.scorer.score(c) for c in customers]) - expected)) <= TOLERANCE
    assert np.max(np.abs(by_columns(model, customers) - expected)) <= TOLERANCE


def test_edge_cases_one_at_a_time_and_by_columns(model):
    customers = edge_customers()
    expected = course_proba(model, customers)
    single = np.array(model.predict_proba(customers))
    columns = by_columns(model, customers)
    for scores in (single, columns):
        assert np.isfinite(scores).all()
        assert np.max(np.abs(scores - expected)) <= TOLERANCE
    # The sweep reaches both ends of the scale, where a naive exp() would overflow.
    assert single.min() < 1e-12
    assert single.max() > 1 - 1e-12


def test_tables_hold_every_weight_of_the_pair(model):
    scorer = model.scorer
    weights = dict(zip(model.vectorizer.feature_names_, model.regression.coef_[0], strict=True))
    assert scorer.tables["contract"]["two_year"] == weights["contract=two_year"]
    assert scorer.tables["seniorcitizen"] == {0: 0.0, 1: weights["seniorcitizen"]}
    assert scorer.weights == {name: weights[name] for name in schema.NUMERICAL}
    assert scorer.intercept == model.regression.intercept_[0]
    assert sum(len(table) for table in scorer.tables.values()) - 1 + len(scorer.weights) == len(weights)


@pytest.mark.parametrize("z", [-math.inf, -1e308, -800.0, -745.2, -40.0, 0.0, 40.0, 745.2, 800.0, 1e308, math.inf])
def test_sigmoid_is_stable_at_any_scale(z):
    p = sigmoid(z)
    assert 0.0 <= p <= 1.0
    assert math.isclose(p + sigmoid(-z), 1.0)
    assert sigmoid_array(np.array([z]))[0] == p


def test_sigmoid_keeps_small_probabilities_precise():
    # 1 - 1/(1 + e**-z) would round these to 0; the stable form keeps their digits.
    assert sigmoid(-40.0) == pytest.approx(math.exp(-40.0), rel=1e-15)
    assert sigmoid_array(np.array([-700.0]))[0] == pytest.approx(math.exp(-700.0), rel=1e-12)
