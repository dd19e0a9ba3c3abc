"""Exact explanations of one prediction, the changes a customer could make, and warnings about odd inputs.

The compiled model is a sum (see :mod:`churn.scorer`), so a prediction splits exactly into one term
per feature. Each term is measured from the average training customer: a number's from its
training mean, a category's from the share-weighted average weight of its field. The intercept
is moved by the same amounts, so ``intercept + sum(contributions)`` is the prediction's log-odds.
Everything is looked up in tables built once from the scorer and the training reference
(:func:`churn.reference.reference_distributions`), so explaining costs microseconds.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from operator import itemgetter
from typing import Any

from churn import schema
from churn.reference import total_difference
from churn.scorer import Scorer

BASELINE = "average training customer: numbers at their training means, categories weighted by their training shares"
# The fields a customer or the company can change; the rest (tenure, gender, services) describe who they are.
ACTIONABLE: tuple[str, ...] = ("contract", "paymentmethod", "paperlessbilling", "onlinesecurity", "techsupport")
# Add-on services exist only with internet: their value is "no_internet_service" exactly when it has none.
NO_INTERNET = "no_internet_service"
REASONS = 3
# The columns :func:`summary_columns` adds to a scored file, in order.
SUMMARY_COLUMNS: tuple[str, ...] = (*(f"reason_{rank}" for rank in range(1, REASONS + 1)), "best_action")
_first = itemgetter(0)


def _number(value: float) -> str:
    """A number as a person writes it: ``7985``, ``118.75``."""
    return format(value, ".15g")


def _beyond(value: float, low: float, high: float) -> str:
    """How far ``value`` lies outside ``[low, high]``: a multiple when at least twice the top, else a percentage."""
    if value < low:
        # Numbers are never negative, so a value below the range has a positive low to compare with.
        return f"{1 - value / low:.1%} below the smallest value seen in training ({_number(low)})"
    if high <= 0:
        return f"above the largest value seen in training ({_number(high)})"
    if value >= 2 * high:
        return f"{value / high:.1f}x the largest value seen in training ({_number(high)})"
    return f"{value / high - 1:.1%} above the largest value seen in training ({_number(high)})"


def _record(**fields: object) -> dict[str, object]:
    """A prepared result record, copied for each customer."""
    return fields


class Explainer:
    """Explanations, what-if changes and warnings for one model and its training reference."""

    def __init__(
        self,
        intercept: float,
        contributions: dict[str, dict[schema.Value, float]],
        numerical: dict[str, tuple[float, float]],
        steps: dict[str, dict[schema.Value, dict[schema.Value, float]]],
        ranges: dict[str, tuple[float, float]],
        total_tolerance: float,
        total_quantile: float,
    ) -> None:
        """Tables: each category's contribution, each number's weight and mean, each actionable change in log-odds."""
        self.intercept = intercept
        self.contributions = contributions
        self.numerical = numerical
        self.steps = steps
        self.ranges = ranges
        # The largest total_difference, and the share of training customers within it.
        self.total_tolerance = total_tolerance
        self.total_quantile = total_quantile
        # Per customer, look-ups and copies: copying a prepared dict takes half the time of building one.
        self._categorical = tuple(
            (
                name,
                {value: (-abs(c), _record(feature=name, value=value, contribution=c)) for value, c in table.items()},
            )
            for name, table in contributions.items()
        )
        self._numerical = tuple((name, weight, mean) for name, (weight, mean) in numerical.items())
        # Only the changes that lower the log-odds, hence the probability, are ever offered.
        offers = {
            name: {
                value: tuple(
                    (step, math.exp(step), _record(**{"field": name, "from": value, "to": other}))
                    for other, step in by_other.items()
                    if step < 0
                )
                for value, by_other in by_value.items()
            }
            for name, by_value in steps.items()
        }
        self._with_internet = tuple(offers.items())
        # An add-on service stays "no_internet_service" while there is no internet: nothing to offer.
        self._without_internet = tuple(
            (name, by_value) for name, by_value in offers.items() if NO_INTERNET not in by_value
        )
        self._ranges = tuple((name, low, high) for name, (low, high) in ranges.items())

    @classmethod
    def from_model(cls, scorer: Scorer, reference: Mapping[str, Any]) -> Explainer:
        """The tables for ``scorer``, with ``reference`` (the training split's distributions) as the baseline."""
        shares: Mapping[str, Mapping[str, float]] = reference["categorical"]
        summaries: Mapping[str, Mapping[str, float]] = reference["numerical"]
        intercept = scorer.intercept
        contributions: dict[str, dict[schema.Value, float]] = {}
        for name, table in scorer.tables.items():
            average = math.fsum(shares[name][str(value)] * weight for value, weight in table.items())
            intercept += average
            contributions[name] = {value: weight - average for value, weight in table.items()}
        numerical: dict[str, tuple[float, float]] = {}
        for name, weight in scorer.weights.items():
            mean = summaries[name]["mean"]
            intercept += weight * mean
            numerical[name] = (weight, mean)
        # A customer with internet can take an add-on service or drop it, but cannot have "no_internet_service".
        steps: dict[str, dict[schema.Value, dict[schema.Value, float]]] = {
            name: {
                value: {
                    other: scorer.tables[name][other] - scorer.tables[name][value]
                    for other in schema.CATEGORICAL[name]
                    if other not in (value, NO_INTERNET)
                }
                for value in schema.CATEGORICAL[name]
            }
            for name in ACTIONABLE
        }
        ranges = {name: (summaries[name]["min"], summaries[name]["max"]) for name in schema.NUMERICAL}
        total: Mapping[str, float] = reference["total_charges"]
        return cls(intercept, contributions, numerical, steps, ranges, total["tolerance"], total["quantile"])

    def explain(self, customer: schema.Customer, probability: float) -> dict[str, object]:
        """The explanation, what-if changes and warnings for a cleaned customer and its churn probability.

        ``probability`` is the scorer's for ``customer``; the what-if changes are measured from it.
        """
        terms: list[tuple[float, dict[str, object]]] = [table[customer[name]] for name, table in self._categorical]
        for name, weight, mean in self._numerical:
            value = customer[name]
            contribution = weight * (value - mean)  # type: ignore[operator]
            terms.append((-abs(contribution), {"feature": name, "value": value, "contribution": contribution}))
        # Stable: equal sizes keep the schema's order.
        terms.sort(key=_first)
        return {
            "explanation": {
                "baseline": BASELINE,
                "intercept": self.intercept,
                "contributions": [term.copy() for _, term in terms],
            },
            "what_if": self._what_if(customer, probability),
            "warnings": self.warnings_for(customer),
        }

    def summarise(self, customers: Sequence[schema.Customer], probabilities: Sequence[float]) -> dict[str, list[str]]:
        """:func:`summary_columns` for cleaned customers and their churn probabilities."""
        pairs = zip(customers, probabilities, strict=True)
        return summary_columns(self.explain(customer, probability) for customer, probability in pairs)

    def _what_if(self, customer: schema.Customer, probability: float) -> list[dict[str, object]]:
        fields = self._without_internet if customer["internetservice"] == "no" else self._with_internet
        changes: list[tuple[float, float, dict[str, object]]] = []
        for name, by_value in fields:
            changes.extend(by_value[customer[name]])
        # The sigmoid is monotonic: the most negative step is the largest reduction.
        changes.sort(key=_first)
        # Adding a step to the log-odds multiplies the odds p / (1 - p) by its exp, precomputed as the ratio.
        rest = 1.0 - probability
        what_if: list[dict[str, object]] = []
        for _, ratio, offer in changes:
            scaled = probability * ratio
            changed = scaled / (scaled + rest)
            # A probability of exactly 0 or 1 (an extreme number) is past any change's reach.
            if changed >= probability:
                continue
            change = offer.copy()
            change["churn_probability"] = changed
            change["change"] = changed - probability
            what_if.append(change)
        return what_if

    def warnings_for(self, customer: schema.Customer) -> list[dict[str, object]]:
        """Advice about a cleaned customer unlike the training data: numbers out of range, inconsistent totals."""
        warnings: list[dict[str, object]] = []
        for name, low, high in self._ranges:
            value: float = customer[name]  # type: ignore[assignment]
            if low <= value <= high:
                continue
            warnings.append(
                {
                    "field": name,
                    "value": value,
                    "kind": "out_of_range",
                    "message": f"{name} {_number(value)} is {_beyond(value, low, high)}",
                    "training_min": low,
                    "training_max": high,
                }
            )
        tenure: float = customer["tenure"]  # type: ignore[assignment]
        monthly: float = customer["monthlycharges"]  # type: ignore[assignment]
        total: float = customer["totalcharges"]  # type: ignore[assignment]
        difference = total_difference(tenure, monthly, total)
        if difference > self.total_tolerance:
            expected = tenure * monthly
            warnings.append(
                {
                    "field": "totalcharges",
                    "value": total,
                    "kind": "inconsistent_total",
                    "message": (
                        f"totalcharges {_number(total)} is {difference:.0%} away from tenure x monthlycharges "
                        f"({_number(tenure)} x {_number(monthly)} = {_number(expected)}); "
                        f"{self.total_quantile:.1%} of training customers are within {self.total_tolerance:.0%}"
                    ),
                    "expected": expected,
                    "relative_difference": difference,
                    "tolerance": self.total_tolerance,
                }
            )
        return warnings


def summary_columns(explanations: Iterable[Mapping[str, object]]) -> dict[str, list[str]]:
    """Columns for a results file: the three largest contributions and the best change, one row per explanation.

    ``reason_N`` reads ``feature=value (+0.87)``, the contribution to the log-odds with its sign;
    ``best_action`` reads ``field -> value: 0.620 -> 0.210`` (the churn probability before and after),
    or is empty when no change lowers it.
    """
    columns: dict[str, list[str]] = {name: [] for name in SUMMARY_COLUMNS}
    cells = [columns[name].append for name in SUMMARY_COLUMNS]
    # One explanation at a time, so a file's worth of them is never held (or scanned by the garbage collector).
    for result in explanations:
        contributions = result["explanation"]["contributions"]  # type: ignore[index]
        for rank in range(REASONS):
            term = contributions[rank]
            value = term["value"]
            shown = _number(value) if isinstance(value, float) else str(value)
            cells[rank](f"{term['feature']}={shown} ({term['contribution']:+.2f})")
        what_if = result["what_if"]
        if what_if:
            best = what_if[0]  # type: ignore[index]
            before = best["churn_probability"] - best["change"]
            cells[REASONS](f"{best['field']} -> {best['to']}: {before:.3f} -> {best['churn_probability']:.3f}")
        else:
            cells[REASONS]("")
    return columns
