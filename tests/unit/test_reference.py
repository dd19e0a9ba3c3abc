"""The training reference: shares, bins, the totals tolerance, and the population stability index."""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest
from sklearn.model_selection import train_test_split

from churn import schema
from churn.model import ChurnModel
from churn.reference import bin_shares, psi, reference_distributions, total_difference
from churn.training import DATA_FILE, SEED, TEST_SIZE, load_dataset


@pytest.fixture(scope="module")
def training(model: ChurnModel) -> tuple[list[schema.Customer], np.ndarray]:
    """The full training split, made as churn.training.train makes it, and the model's probabilities for it."""
    customers = load_dataset(DATA_FILE).customers
    full_train, _ = train_test_split(np.arange(len(customers)), test_size=TEST_SIZE, random_state=SEED)
    rows = [customers[i] for i in full_train]
    return rows, np.array(model.predict_proba(rows))


@pytest.fixture(scope="module")
def reference(training: tuple[list[schema.Customer], np.ndarray]) -> dict:
    return reference_distributions(*training)


def test_every_distribution_sums_to_one(reference: dict) -> None:
    for name, shares in reference["categorical"].items():
        assert math.fsum(shares.values()) == pytest.approx(1, abs=1e-12), name
    for name, summary in reference["numerical"].items():
        assert math.fsum(summary["shares"]) == pytest.approx(1, abs=1e-12), name
    assert math.fsum(reference["probability"]["shares"]) == pytest.approx(1, abs=1e-12)


def test_shares_match_pandas_and_list_every_allowed_value(
    reference: dict, training: tuple[list[schema.Customer], np.ndarray]
) -> None:
    frame = pd.DataFrame(training[0])
    assert reference["rows"] == len(frame)
    for name, allowed in schema.CATEGORICAL.items():
        counts = frame[name].value_counts(normalize=True)
        assert reference["categorical"][name] == pytest.approx(
            {str(value): counts.get(value, 0.0) for value in allowed}, abs=1e-12
        )
    assert list(reference["categorical"]["seniorcitizen"]) == ["0", "1"]


def test_numerical_summaries(reference: dict, training: tuple[list[schema.Customer], np.ndarray]) -> None:
    frame = pd.DataFrame(training[0])
    for name in schema.NUMERICAL:
        summary = reference["numerical"][name]
        assert summary["min"] == frame[name].min()
        assert summary["max"] == frame[name].max()
        assert summary["mean"] == pytest.approx(frame[name].mean(), rel=1e-12)
        edges = summary["edges"]
        assert edges[0] == summary["min"]
        assert edges[-1] == summary["max"]
        assert edges == sorted(set(edges)), f"{name} edges repeat"
        assert len(summary["shares"]) == len(edges) - 1
    assert len(reference["numerical"]["monthlycharges"]["edges"]) == 11


def test_repeated_deciles_are_one_edge() -> None:
    base = {**{name: allowed[0] for name, allowed in schema.CATEGORICAL.items()}, "totalcharges": 0.0}
    customers = [{**base, "tenure": 12.0, "monthlycharges": float(m)} for m in (20, 20, 20, 20, 30)]
    numerical = reference_distributions(customers, np.full(5, 0.5))["numerical"]
    assert numerical["tenure"]["edges"] == [12.0]
    assert numerical["tenure"]["shares"] == [1.0]
    # Deciles 0 to 7 all fall on 20; the 8th and 9th sit 0.2 and 0.6 of the way from the 4th value to the 5th.
    assert numerical["monthlycharges"]["edges"] == [20.0, 22.0, 26.0, 30.0]
    assert numerical["monthlycharges"]["shares"] == [0.8, 0.0, 0.2]


def test_probability_bins_are_tenths(reference: dict) -> None:
    assert reference["probability"]["edges"] == [0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
    assert len(reference["probability"]["shares"]) == 10


def test_is_plain_json_and_deterministic(reference: dict, training: tuple[list[schema.Customer], np.ndarray]) -> None:
    text = json.dumps(reference, sort_keys=True, allow_nan=False)
    assert json.loads(text) == reference
    assert json.dumps(reference_distributions(*training), sort_keys=True) == text


def test_total_tolerance_covers_all_but_a_thousandth(
    reference: dict, training: tuple[list[schema.Customer], np.ndarray]
) -> None:
    tolerance = reference["total_charges"]["tolerance"]
    differences = np.array(
        [total_difference(c["tenure"], c["monthlycharges"], c["totalcharges"]) for c in training[0]]  # type: ignore[arg-type]
    )
    assert 0 < tolerance < 1
    assert np.mean(differences <= tolerance) >= 0.999
    assert np.mean(differences < tolerance) < 0.9995


def test_total_difference() -> None:
    assert total_difference(0, 20.0, 0) == 0  # first month: the data leaves the total blank
    assert total_difference(10, 20.0, 200.0) == 0
    assert total_difference(10, 20.0, 150.0) == pytest.approx(0.25)
    assert total_difference(10, 20.0, 400.0) == pytest.approx(0.5)
    assert total_difference(0, 20.0, 20.0) == 1


def test_rejects_empty_or_mismatched_input() -> None:
    with pytest.raises(ValueError, match="no customers"):
        reference_distributions([], np.array([]))
    customer = {
        **{name: allowed[0] for name, allowed in schema.CATEGORICAL.items()},
        **dict.fromkeys(schema.NUMERICAL, 1.0),
    }
    with pytest.raises(ValueError, match="2 probabilities for 1 customers"):
        reference_distributions([customer], np.array([0.1, 0.2]))


def test_bin_shares_by_hand() -> None:
    # [0, 2) holds 0 and 1; [2, 4] holds 2, 3 and 4 (the last bin is closed); 10 and -1 are outside.
    shares, outside = bin_shares(np.array([0, 1, 2, 3, 4, 10, -1, 1.5]), [0, 2, 4])
    assert shares == [3 / 8, 3 / 8]
    assert outside == 2 / 8


def test_bin_shares_single_edge_and_empty() -> None:
    assert bin_shares(np.array([5.0, 5.0, 6.0]), [5.0]) == ([2 / 3], 1 / 3)
    with pytest.raises(ValueError, match="no values"):
        bin_shares(np.array([]), [0, 1])


def test_psi_by_hand() -> None:
    # (0.25 - 0.5) ln(0.25 / 0.5) + (0.75 - 0.5) ln(0.75 / 0.5) = 0.25 ln 2 + 0.25 ln 1.5 = 0.25 ln 3
    assert psi([0.5, 0.5], [0.25, 0.75]) == pytest.approx(0.2746530721670274, rel=1e-12)
    # Symmetric in its arguments.
    assert psi([0.25, 0.75], [0.5, 0.5]) == pytest.approx(0.2746530721670274, rel=1e-12)
    assert psi([0.2, 0.3, 0.5], [0.2, 0.3, 0.5]) == 0


def test_psi_counts_an_empty_bin_as_epsilon() -> None:
    # The empty expected bin counts as 1e-4: (0.1 - 0.0001) ln(0.1 / 0.0001) = 0.0999 ln 1000 = 0.690082...
    # and the middle bin adds (0.4 - 0.5) ln(0.4 / 0.5) = 0.1 ln 1.25 = 0.022314...
    expected = 0.0999 * 6.907755278982137 + 0.1 * 0.22314355131420976
    assert psi([0.5, 0.5, 0.0], [0.5, 0.4, 0.1]) == pytest.approx(expected, rel=1e-12)
    assert psi([0.5, 0.5, 0.0], [0.5, 0.4, 0.1], epsilon=0.01) == pytest.approx(
        0.09 * math.log(10) + 0.1 * math.log(1.25), rel=1e-12
    )


def test_psi_rejects_bins_that_do_not_match() -> None:
    with pytest.raises(ValueError, match="2 expected shares but 3 actual"):
        psi([0.5, 0.5], [0.2, 0.3, 0.5])


def test_training_data_against_itself_is_stable(
    reference: dict, training: tuple[list[schema.Customer], np.ndarray]
) -> None:
    customers, probabilities = training
    for name, summary in reference["numerical"].items():
        shares, outside = bin_shares(np.array([c[name] for c in customers]), summary["edges"])
        assert outside == 0
        assert psi(summary["shares"], shares) == 0
    shares, outside = bin_shares(probabilities, reference["probability"]["edges"])
    assert outside == 0
    assert psi(reference["probability"]["shares"], shares) == 0


def test_shifted_data_is_not_stable(reference: dict, training: tuple[list[schema.Customer], np.ndarray]) -> None:
    summary = reference["numerical"]["monthlycharges"]
    doubled = np.array([c["monthlycharges"] for c in training[0]]) * 2
    shares, outside = bin_shares(doubled, summary["edges"])
    assert outside > 0.4
    assert psi([*summary["shares"], 0.0], [*shares, outside]) > 0.25
