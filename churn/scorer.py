"""The fitted model compiled to look-up tables: a logistic regression over one-hot features is a sum.

``DictVectorizer`` + ``predict_proba`` builds a sparse matrix for every call; the same probability
is the intercept, plus one weight per categorical field looked up by its value, plus a weight
times each number, through a sigmoid. Nothing here is fitted: the tables are read off the pair.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
from sklearn.feature_extraction import DictVectorizer
from sklearn.linear_model import LogisticRegression

from churn import schema


def sigmoid(z: float) -> float:
    """``1 / (1 + e**-z)``, computed so that no ``z`` overflows: ``exp`` only sees ``-|z|``."""
    if z >= 0:
        return 1.0 / (1.0 + math.exp(-z))
    e = math.exp(z)
    return e / (1.0 + e)


def sigmoid_array(z: np.ndarray) -> np.ndarray:
    """:func:`sigmoid` of every element, without overflow warnings for any finite or infinite ``z``."""
    e = np.exp(-np.abs(z))
    return np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))


class Scorer:
    """Churn probabilities from cleaned customers, one at a time or by columns."""

    def __init__(
        self, intercept: float, tables: dict[str, dict[schema.Value, float]], weights: dict[str, float]
    ) -> None:
        self.intercept = intercept
        self.tables = tables
        self.weights = weights
        # score() iterates tuples of pairs: a quarter faster than dict views, on the per-request path.
        self._tables = tuple(tables.items())
        self._weights = tuple(weights.items())
        # Weight per position in the schema's tuple of allowed values, for scoring category codes.
        self.code_weights = {
            name: np.array([table[value] for value in schema.CATEGORICAL[name]]) for name, table in tables.items()
        }

    @classmethod
    def compile(cls, vectorizer: DictVectorizer, regression: LogisticRegression) -> Scorer:
        """The tables of a fitted pair whose features are the schema's (as :func:`load_model` checks)."""
        weight = dict(zip(vectorizer.feature_names_, regression.coef_[0].tolist(), strict=True))
        tables: dict[str, dict[schema.Value, float]] = {}
        for name, allowed in schema.CATEGORICAL.items():
            if isinstance(allowed[0], int):
                # An integer flag is one numeric column to the DictVectorizer: its value times one weight.
                tables[name] = {value: value * weight[name] for value in allowed}
            else:
                tables[name] = {value: weight[f"{name}={value}"] for value in allowed}
        weights = {name: weight[name] for name in schema.NUMERICAL}
        return cls(float(regression.intercept_[0]), tables, weights)

    def score(self, customer: schema.Customer) -> float:
        """The churn probability of one cleaned customer."""
        z = self.intercept
        for name, table in self._tables:
            z += table[customer[name]]
        for name, weight in self._weights:
            z += weight * customer[name]  # type: ignore[operator]
        return sigmoid(z)

    def score_many(self, customers: Sequence[schema.Customer]) -> list[float]:
        """The churn probability of each cleaned customer, in order."""
        return [self.score(customer) for customer in customers]

    def score_columns(self, codes: Mapping[str, np.ndarray], numbers: Mapping[str, np.ndarray]) -> np.ndarray:
        """Probabilities for columns: each categorical field as integer positions in its allowed values.

        ``codes[name][i]`` indexes ``schema.CATEGORICAL[name]``; ``numbers[name]`` holds valid numbers.
        """
        z = np.full(len(next(iter(numbers.values()))), self.intercept)
        for name, weights in self.code_weights.items():
            z += weights[codes[name]]
        # A product past the largest float is +-inf, which the sigmoid maps to 1 or 0, as it should.
        with np.errstate(over="ignore"):
            for name, weight in self._weights:
                z += weight * numbers[name]
        return sigmoid_array(z)
