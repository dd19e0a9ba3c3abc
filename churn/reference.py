"""What the training customers looked like, as plain JSON data, and how to compare other customers with it.

:func:`reference_distributions` summarises the training split once, at training; the explanations
use its means and shares as their baseline and its ranges for warnings, and monitoring compares
later traffic with its bins through :func:`bin_shares` and :func:`psi`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from churn import schema

DECILES = 10
# The probability bins are fixed rather than deciles, so that they mean the same for every model.
PROBABILITY_EDGES = [i / DECILES for i in range(DECILES + 1)]
# A bin with no customers would make ln(a/e) infinite; counting it as this share keeps the index finite
# while an empty bin still weighs heavily (a 10% bin against an empty one adds about 0.7).
PSI_EPSILON = 1e-4
# The share of training customers whose total charges may differ from tenure x monthly charges by the
# tolerance or less: monthly charges change over a customer's life, so totals are never exact.
TOTAL_QUANTILE = 0.999


def reference_distributions(customers: Sequence[schema.Customer], probabilities: np.ndarray) -> dict[str, object]:
    """The distributions of the training split's features and predicted probabilities.

    Categorical fields give the share of every allowed value (JSON keys, so ``"0"``/``"1"`` for
    ``seniorcitizen``); numerical ones their range, mean and decile bins; ``total_charges`` the
    tolerance of :func:`total_difference` that all but 0.1% of the customers meet.
    """
    if not customers:
        raise ValueError("no customers to describe")
    if len(probabilities) != len(customers):
        raise ValueError(f"{len(probabilities)} probabilities for {len(customers)} customers")
    rows = len(customers)
    categorical: dict[str, dict[str, float]] = {}
    for name, allowed in schema.CATEGORICAL.items():
        counts = dict.fromkeys(allowed, 0)
        for customer in customers:
            counts[customer[name]] += 1
        categorical[name] = {str(value): count / rows for value, count in counts.items()}

    numbers = {name: np.array([customer[name] for customer in customers], dtype=float) for name in schema.NUMERICAL}
    numerical = {name: _numeric_summary(values) for name, values in numbers.items()}
    differences = [
        total_difference(tenure, monthly, total)
        for tenure, monthly, total in zip(
            numbers["tenure"].tolist(),
            numbers["monthlycharges"].tolist(),
            numbers["totalcharges"].tolist(),
            strict=True,
        )
    ]
    probability_shares, _ = bin_shares(np.asarray(probabilities, dtype=float), PROBABILITY_EDGES)
    return {
        "rows": rows,
        "categorical": categorical,
        "numerical": numerical,
        "probability": {"edges": list(PROBABILITY_EDGES), "shares": probability_shares},
        "total_charges": {
            "quantile": TOTAL_QUANTILE,
            # "higher": a difference some training customer has, so that the quantile's share is within it.
            "tolerance": float(np.quantile(differences, TOTAL_QUANTILE, method="higher")),
        },
    }


def _numeric_summary(values: np.ndarray) -> dict[str, object]:
    # Many equal values (few customers, whole months) make deciles coincide; a repeated edge would be an empty bin.
    edges = np.unique(np.quantile(values, np.linspace(0.0, 1.0, DECILES + 1))).tolist()
    shares, _ = bin_shares(values, edges)
    return {
        "min": float(values.min()),
        "max": float(values.max()),
        "mean": float(values.mean()),
        "edges": edges,
        "shares": shares,
    }


def total_difference(tenure: float, monthlycharges: float, totalcharges: float) -> float:
    """How far total charges are from tenure x monthly charges, relative to the larger of the two: 0 to 1.

    Both are 0 for a customer in their first month, whose total the Telco data leaves blank: no difference.
    """
    expected = tenure * monthlycharges
    larger = max(expected, totalcharges)
    return abs(totalcharges - expected) / larger if larger > 0 else 0.0


def bin_shares(values: np.ndarray, edges: Sequence[float]) -> tuple[list[float], float]:
    """The share of ``values`` in each bin ``[e_i, e_i+1)`` (the last one closed), and the share outside them all.

    Shares are of all the values, so the two parts sum to 1. A single edge is one bin holding just that value.
    """
    values = np.asarray(values, dtype=float)
    if not len(values):
        raise ValueError("no values to bin")
    bounds = np.asarray(edges, dtype=float)
    inside = (values >= bounds[0]) & (values <= bounds[-1])
    bins = max(len(bounds) - 1, 1)
    # side="right" puts a value equal to an edge in the bin that edge opens; the top edge joins the last bin.
    positions = np.minimum(np.searchsorted(bounds, values[inside], side="right") - 1, bins - 1)
    counts = np.bincount(positions, minlength=bins)
    total = len(values)
    return [int(count) / total for count in counts], int(total - inside.sum()) / total


def psi(expected_shares: Sequence[float], actual_shares: Sequence[float], epsilon: float = PSI_EPSILON) -> float:
    """The population stability index ``sum((a - e) * ln(a / e))`` over matching bins.

    Shares below ``epsilon`` count as ``epsilon``, so empty bins give a large but finite index. To count
    values outside the training range, append :func:`bin_shares`'s out-of-range share to the actual
    shares and ``0.0`` to the expected ones. Common reading: below 0.1 stable, above 0.25 shifted.
    """
    if len(expected_shares) != len(actual_shares):
        raise ValueError(f"{len(expected_shares)} expected shares but {len(actual_shares)} actual ones")
    index = 0.0
    for expected, actual in zip(expected_shares, actual_shares, strict=True):
        e, a = max(expected, epsilon), max(actual, epsilon)
        index += (a - e) * math.log(a / e)
    return index
