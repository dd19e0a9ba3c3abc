"""Drift, outcomes and their figures, computed by SQL on an SQLite file, checked against independent computations."""

from __future__ import annotations

import json
import math
import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry
from sklearn.calibration import calibration_curve
from sklearn.metrics import precision_score, recall_score, roc_auc_score
from sqlalchemy import Connection, delete, select, update
from sqlalchemy.engine import URL

from benchmarks.monitoring import START, STEP, replay
from churn import monitor as monitor_cli
from churn import summaries
from churn.drift import DriftTally
from churn.errors import InvalidCustomer, MalformedInput
from churn.log_sinks import PREDICTIONS, database_url
from churn.model import ChurnModel
from churn.monitoring import (
    EMPTY_WINDOW,
    NO_OUTCOMES,
    NO_PREDICTIONS,
    Monitor,
    MonitoringGauges,
    MonitoringSettings,
    Window,
)
from churn.outcomes import Outcome, parse_feedback
from churn.prediction import MAX_KEYS
from churn.reference import PROBABILITY_EDGES
from churn.settings import Settings, SettingsError
from churn.summaries import SUMMARIES
from churn.training import DATA_FILE, load_dataset

NOW = datetime(2025, 1, 1, tzinfo=UTC)
EPSILON = 1e-4
# A reference small enough to work PSI out by hand: three contracts, tenure in two bins, probability uniform.
HAND_REFERENCE = {
    "categorical": {"contract": {"month-to-month": 0.5, "one_year": 0.25, "two_year": 0.25}},
    "numerical": {"tenure": {"edges": [0.0, 10.0, 20.0], "shares": [0.5, 0.5]}},
    "probability": {"edges": PROBABILITY_EDGES, "shares": [0.1] * 10},
}


def term(expected: float, actual: float) -> float:
    """One bin's part of PSI, written out: (a - e) ln(a / e), empty shares counted as 1e-4."""
    e, a = max(expected, EPSILON), max(actual, EPSILON)
    return (a - e) * math.log(a / e)


@pytest.fixture
def url(tmp_path: Path) -> URL:
    return database_url(f"sqlite:///{tmp_path / 'predictions.db'}")


def monitor_of(url: URL, reference: dict[str, object], **settings: float) -> Monitor:
    return Monitor(url, reference, MonitoringSettings(**settings), clock=lambda: NOW)  # type: ignore[arg-type]


def by_name(document: dict[str, object]) -> dict[str, dict[str, object]]:
    features = [*document["features"], document["probability"]]  # type: ignore[misc]
    return {feature["name"]: feature for feature in features}


@pytest.fixture(scope="module")
def telco(model: ChurnModel) -> tuple[list[dict[str, object]], list[float], list[int]]:
    dataset = load_dataset(DATA_FILE)
    return dataset.customers, model.predict_proba(dataset.customers), list(dataset.churn)  # type: ignore[return-value]


def test_psi_and_unseen_shares_match_the_formula_on_hand_made_distributions(url: URL) -> None:
    contracts = ["month-to-month"] * 4 + ["one_year"] * 4
    # 10 opens the second bin, 20 (the top edge) closes it, 25 was never seen in training.
    tenures = [0.0, 5.0, 10.0, 15.0, 19.9, 20.0, 20.0, 25.0]
    probabilities = [0.05, 0.15, 0.25, 0.35, 0.45, 0.55, 0.65, 0.7]
    customers = [{"contract": c, "tenure": t} for c, t in zip(contracts, tenures, strict=True)]
    replay(url, customers, probabilities, "hand-")  # type: ignore[arg-type]

    found = by_name(monitor_of(url, HAND_REFERENCE).drift(Window()))

    contract = found["contract"]
    assert contract["current"] == [0.5, 0.5, 0.0]
    assert contract["unseen_share"] == 0.0
    assert contract["psi"] == pytest.approx(term(0.5, 0.5) + term(0.25, 0.5) + term(0.25, 0.0))
    assert contract["psi"] == pytest.approx(0.25 * math.log(2) + (0.25 - EPSILON) * math.log(0.25 / EPSILON))
    tenure = found["tenure"]
    assert tenure["current"] == [0.25, 0.625]
    assert tenure["unseen_share"] == 0.125
    assert tenure["psi"] == pytest.approx(0.25 * math.log(2) + 0.125 * math.log(1.25) + term(0.0, 0.125))
    assert tenure["bins"] == ["0 to 10", "10 to 20"]
    probability = found["probability"]
    # 0.7 opens the eighth tenth.
    assert probability["current"] == [0.125] * 8 + [0.0, 0.0]
    assert probability["psi"] == pytest.approx(8 * term(0.1, 0.125) + 2 * term(0.1, 0.0))
    assert [found[name]["status"] for name in ("contract", "tenure", "probability")] == ["act", "act", "act"]


def test_statuses_follow_the_thresholds(url: URL) -> None:
    # contract PSI = 0.25 ln 2 + ... with one two_year in eight: a value between the thresholds chosen below.
    customers = [{"contract": c, "tenure": 5.0} for c in ["month-to-month"] * 4 + ["one_year"] * 3 + ["two_year"]]
    replay(url, customers, [0.5] * 8, "s-")  # type: ignore[arg-type]
    psi = term(0.5, 0.5) + term(0.25, 0.375) + term(0.25, 0.125)

    for watch, act, expected in ((psi / 2, psi * 2, "watch"), (psi * 2, psi * 3, "stable"), (psi / 3, psi / 2, "act")):
        found = by_name(monitor_of(url, HAND_REFERENCE, psi_watch=watch, psi_act=act).drift(Window()))
        assert found["contract"]["psi"] == pytest.approx(psi)
        assert found["contract"]["status"] == expected


def test_replayed_telco_traffic_is_stable_and_a_shifted_copy_crosses_the_action_threshold_where_shifted(
    url: URL, model: ChurnModel, telco: tuple[list[dict[str, object]], list[float], list[int]]
) -> None:
    customers, probabilities, _ = telco
    monitor = monitor_of(url, model.metadata["reference"])  # type: ignore[arg-type]
    replay(url, customers, probabilities, "telco-")  # type: ignore[arg-type]

    stable = monitor.drift(Window(last=len(customers)))
    assert stable["rows"] == len(customers)
    assert {name: feature["psi"] for name, feature in by_name(stable).items() if feature["psi"] >= 0.1} == {}
    assert {feature["status"] for feature in by_name(stable).values()} == {"stable"}

    shifted = [
        {**c, "contract": "month-to-month", "monthlycharges": c["monthlycharges"] * 1.5,  # type: ignore[operator]
         "totalcharges": c["totalcharges"] * 1.5}  # type: ignore[operator]
        for c in customers
    ]  # fmt: skip
    replay(url, shifted, model.predict_proba(shifted), "shifted-", start=START + timedelta(days=60))  # type: ignore[arg-type]
    drifted = by_name(monitor.drift(Window(last=len(customers))))
    features = {name: feature for name, feature in drifted.items() if name != "probability"}
    assert {name for name, feature in features.items() if feature["psi"] > 0.25} == {
        "contract",
        "monthlycharges",
        "totalcharges",
    }
    assert {name for name, feature in features.items() if feature["status"] == "act"} == {
        "contract",
        "monthlycharges",
        "totalcharges",
    }
    assert max(feature["psi"] for name, feature in features.items() if feature["status"] != "act") < 0.1  # type: ignore[type-var]
    # Charges 1.5 times the training's largest are outside its range.
    assert drifted["monthlycharges"]["unseen_share"] > 0.3  # type: ignore[operator]


def test_realised_auc_precision_and_recall_match_scikit_learn_overall_and_per_week(url: URL) -> None:
    rng = random.Random(7)
    count = 3000
    # Two decimals: many ties, which the AUC must count as half, as roc_auc_score does.
    probabilities = [round(rng.random(), 2) for _ in range(count)]
    churned = [int(rng.random() < 0.2 + 0.6 * p) for p in probabilities]
    customers = [{"contract": "one_year", "tenure": 5.0}] * count
    replay(url, customers, probabilities, "c-", threshold=0.4)  # type: ignore[arg-type]
    monitor = monitor_of(url, HAND_REFERENCE)
    monitor.record([Outcome(f"c-{i}", None, bool(y), NOW) for i, y in enumerate(churned)])

    found = monitor.performance(Window(last=count))

    decisions = [p >= 0.4 for p in probabilities]
    assert found["message"] is None
    assert found["labelled"] == count
    assert found["churned"] == sum(churned)
    assert found["auc"] == pytest.approx(roc_auc_score(churned, probabilities), abs=1e-12)
    assert found["precision"] == pytest.approx(precision_score(churned, decisions))
    assert found["recall"] == pytest.approx(recall_score(churned, decisions))
    # 3000 predictions 10 minutes apart from a Monday: three weeks of 1008 and the rest.
    weeks = found["weeks"]
    assert [week["start"] for week in weeks] == ["2024-01-01", "2024-01-08", "2024-01-15"]  # type: ignore[index]
    for index, week in enumerate(weeks):  # type: ignore[arg-type]
        rows = range(index * 1008, min((index + 1) * 1008, count))
        assert week["labelled"] == len(rows)
        truth, scores = [churned[i] for i in rows], [probabilities[i] for i in rows]
        assert week["auc"] == pytest.approx(roc_auc_score(truth, scores), abs=1e-12)
        assert week["recall"] == pytest.approx(recall_score(truth, [decisions[i] for i in rows]))


def test_calibration_matches_scikit_learns_uniform_calibration_curve(url: URL) -> None:
    rng = random.Random(11)
    probabilities = [rng.random() for _ in range(2000)]
    churned = [int(rng.random() < p) for p in probabilities]
    replay(url, [{"tenure": 1.0}] * 2000, probabilities, "k-")  # type: ignore[arg-type]
    monitor = monitor_of(url, HAND_REFERENCE)
    monitor.record([Outcome(f"k-{i}", None, bool(y), NOW) for i, y in enumerate(churned)])

    calibration = monitor.performance(Window())["calibration"]

    observed, predicted = calibration_curve(churned, probabilities, n_bins=10, strategy="uniform")
    assert [b["observed"] for b in calibration] == pytest.approx(list(observed))  # type: ignore[union-attr]
    assert [b["predicted"] for b in calibration] == pytest.approx(list(predicted))  # type: ignore[union-attr]
    assert sum(b["rows"] for b in calibration) == 2000  # type: ignore[union-attr]


def test_the_most_specific_outcome_counts_and_a_customer_outcome_only_for_earlier_predictions(url: URL) -> None:
    # Predictions 0..3 are all of customer "a", in requests r-0..r-3, ten minutes apart.
    replay(url, [{"tenure": 1.0}] * 4, [0.9, 0.8, 0.7, 0.6], "r-")  # type: ignore[arg-type]
    monitor = monitor_of(url, HAND_REFERENCE)
    with monitor.engine().begin() as connection:
        connection.execute(update(PREDICTIONS).values(customer_id="a"))
    second = START + STEP
    monitor.record(
        [
            Outcome("a", None, True, second),  # predictions 0 and 1 were made by then, not 2 and 3
            Outcome(None, "r-1", False, NOW),  # r-1's own outcome beats the customer's
            Outcome("a", "r-0", False, NOW),  # and r-0's for customer a, too
        ]
    )
    assert monitor.performance(Window())["labelled"] == 2
    assert monitor.performance(Window())["churned"] == 0

    # Sent again, an outcome replaces the earlier one about the same subject.
    monitor.record([Outcome(None, "r-1", True, NOW), Outcome("a", None, True, NOW)])
    found = monitor.performance(Window())
    assert (found["labelled"], found["churned"]) == (4, 3)


def test_quiet_states_explain_themselves(url: URL) -> None:
    monitor = monitor_of(url, HAND_REFERENCE)
    assert monitor.drift(Window())["message"] == NO_PREDICTIONS
    assert monitor.performance(Window())["message"] == NO_PREDICTIONS

    replay(url, [{"tenure": 1.0}], [0.5], "q-")  # type: ignore[arg-type]
    assert monitor.drift(Window())["message"] is None
    assert monitor.performance(Window())["message"] == NO_OUTCOMES
    monitor.record([Outcome("nobody", None, True, NOW)])
    assert monitor.performance(Window())["message"] == NO_OUTCOMES
    assert monitor.drift(Window(since=NOW - timedelta(days=1)))["message"] == EMPTY_WINDOW


def test_windows_select_the_last_predictions_or_a_time_range(url: URL) -> None:
    replay(url, [{"tenure": 1.0}] * 30, [0.5] * 30, "w-")  # type: ignore[arg-type]
    monitor = monitor_of(url, HAND_REFERENCE, window=12)
    assert monitor.drift(Window())["rows"] == 12
    assert monitor.drift(Window(last=25))["rows"] == 25
    assert monitor.drift(Window(last=1000))["rows"] == 30
    # From the 5th prediction (40 minutes in) to the 10th, excluded.
    window = Window(since=START + 4 * STEP, until=START + 9 * STEP)
    found = monitor.drift(window)
    assert found["rows"] == 5
    assert found["first_logged_at"] == (START + 4 * STEP).isoformat()
    shares = [0.0] * 5 + [1.0] + [0.0] * 4
    assert found["timeline"]["buckets"] == [{"start": "2024-01-01", "rows": 5, "shares": shares}]  # type: ignore[index]


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ({"last": "500"}, Window(last=500)),
        ({"since": "7d"}, Window(since=NOW - timedelta(days=7))),
        ({"since": "2w", "until": "12h"}, Window(since=NOW - timedelta(weeks=2), until=NOW - timedelta(hours=12))),
        ({"since": "2024-05-01"}, Window(since=datetime(2024, 5, 1, tzinfo=UTC))),
        ({"since": "2024-05-01T02:00:00+02:00"}, Window(since=datetime(2024, 5, 1, tzinfo=UTC))),
        ({}, Window()),
    ],
)
def test_windows_are_read_from_text(query: dict[str, str], expected: Window) -> None:
    assert Window.parse(query.get("last"), query.get("since"), query.get("until"), NOW) == expected


@pytest.mark.parametrize(
    ("query", "message"),
    [
        ({"last": "0"}, "at least 1"),
        ({"last": "ten"}, "whole number"),
        ({"last": "5", "since": "7d"}, "not both"),
        ({"until": "1d"}, "until needs since"),
        ({"since": "yesterday"}, "duration back from now"),
        ({"since": "1d", "until": "2d"}, "later than since"),
    ],
)
def test_bad_windows_are_refused_saying_why(query: dict[str, str], message: str) -> None:
    with pytest.raises(MalformedInput, match=message):
        Window.parse(query.get("last"), query.get("since"), query.get("until"), NOW)


def test_feedback_is_read_as_predict_reads_customers() -> None:
    single = parse_feedback(b'{"customerID": "7590-VHVEG", "churned": true, "observed_at": "2024-05-31"}', 10, NOW)
    assert single == [Outcome("7590-VHVEG", None, True, datetime(2024, 5, 31, tzinfo=UTC))]
    batch = parse_feedback(b'[{"request_id": "abc", "churned": false}, {"customerid": 42, "churned": true}]', 10, NOW)
    assert batch == [Outcome(None, "abc", False, NOW), Outcome("42", None, True, NOW)]

    with pytest.raises(InvalidCustomer) as refused:
        parse_feedback(
            b'[{"churned": true}, {"customerid": "x", "churned": "yes"}, {"customerid": "y", "churned": false,'
            b' "observed_at": "2099-01-01T00:00:00Z"}, {"request_id": "has space", "churned": true}, 7]',
            10,
            NOW,
        )
    assert [(p.index, p.field) for p in refused.value.problems] == [
        (0, "customerid"),
        (1, "churned"),
        (2, "observed_at"),
        (3, "request_id"),
        (4, None),
    ]
    assert "in the future" in refused.value.problems[2].message
    # As /predict refuses a customer of 1,001 keys, unread.
    padded = json.dumps({"customerid": "x", "churned": True, **{f"note{i}": 0 for i in range(MAX_KEYS - 1)}})
    with pytest.raises(InvalidCustomer) as refused:
        parse_feedback(padded.encode(), 10, NOW)
    assert [problem.message for problem in refused.value.problems] == [
        f"has {MAX_KEYS + 1} keys; an outcome has at most {MAX_KEYS}"
    ]
    with pytest.raises(MalformedInput, match="not valid JSON"):
        parse_feedback(b"{", 10, NOW)
    with pytest.raises(MalformedInput, match="empty"):
        parse_feedback(b"[]", 10, NOW)


def test_settings_come_from_the_service_settings() -> None:
    given = Settings.from_env({"CHURN_MONITORING_WINDOW": "500", "CHURN_MONITORING_PSI_ACT": "0.3"})
    assert MonitoringSettings.from_settings(given) == MonitoringSettings(window=500, psi_watch=0.1, psi_act=0.3)
    with pytest.raises(SettingsError, match="watch < act"):
        MonitoringSettings(psi_watch=0.3, psi_act=0.2)


def test_gauges_show_psi_and_auc_and_are_recomputed_at_most_once_per_interval(url: URL, model: ChurnModel) -> None:
    registry = CollectorRegistry()
    monitor = monitor_of(url, HAND_REFERENCE, metrics_interval_s=60)
    clock = [0.0]
    gauges = MonitoringGauges(registry, monitor, clock=lambda: clock[0])
    assert math.isnan(registry.get_sample_value("churn_realised_auc"))  # type: ignore[arg-type]
    gauges.refresh()
    assert registry.get_sample_value("churn_feature_psi", {"feature": "tenure"}) is None

    replay(url, [{"contract": "two_year", "tenure": 5.0}] * 2, [0.2, 0.9], "g-")  # type: ignore[arg-type]
    monitor.record([Outcome("g-0", None, False, NOW), Outcome("g-1", None, True, NOW)])
    clock[0] = 59.0
    gauges.refresh()
    assert registry.get_sample_value("churn_feature_psi", {"feature": "tenure"}) is None, "not yet due"
    clock[0] = 60.0
    gauges.refresh()
    expected = by_name(monitor.drift(Window()))
    for name in ("contract", "tenure", "probability"):
        assert registry.get_sample_value("churn_feature_psi", {"feature": name}) == expected[name]["psi"]
    assert registry.get_sample_value("churn_realised_auc") == 1.0


def test_the_report_is_one_file_with_its_figures_and_nothing_to_fetch(
    url: URL, tmp_path: Path, telco: tuple[list[dict[str, object]], list[float], list[int]]
) -> None:
    customers, probabilities, _ = telco
    replay(url, customers[:500], probabilities[:500], "rep-")  # type: ignore[arg-type]
    output = tmp_path / "report.html"

    assert monitor_cli.main(["report", "--last", "500", "-o", str(output), "--log", url.render_as_string()]) == 0

    html = output.read_text()
    assert '"rows": 500' in html
    assert "Chart.js v4" in html
    assert 'src="' not in html
    assert 'href="static' not in html
    assert monitor_cli.main(["report", "--since", "soon", "-o", str(output), "--log", url.render_as_string()]) == 2


def rounded(document: object) -> object:
    """``document`` with its numbers to 9 decimals: tallies added block by block sum floats in another order."""
    if isinstance(document, dict):
        return {key: rounded(value) for key, value in document.items()}
    if isinstance(document, list):
        return [rounded(value) for value in document]
    return round(document, 9) if isinstance(document, float) else document


def figures(monitor: Monitor, windows: list[Window]) -> object:
    return rounded([[monitor.drift(window), monitor.performance(window)] for window in windows])


def stored_blocks(monitor: Monitor, kind: str) -> list[int]:
    with monitor.engine().connect() as connection:
        return sorted(connection.scalars(select(SUMMARIES.c.block).where(SUMMARIES.c.kind == kind)))


@pytest.fixture
def log_of_blocks(url: URL, monkeypatch: pytest.MonkeyPatch) -> Monitor:
    """200 varied predictions, each with an outcome, in blocks of 16 rows."""
    monkeypatch.setattr(summaries, "BLOCK_ROWS", 16)
    rng = random.Random(3)
    probabilities = [rng.random() for _ in range(200)]
    contracts = rng.choices(["month-to-month", "one_year", "two_year"], k=200)
    replay(url, [{"contract": c, "tenure": rng.uniform(0, 25)} for c in contracts], probabilities, "b-")  # type: ignore[arg-type]
    monitor = monitor_of(url, HAND_REFERENCE)
    monitor.record([Outcome(f"b-{i}", None, rng.random() < p, NOW) for i, p in enumerate(probabilities)])
    # The outcomes set tallies counting in the background: done before a test changes the log or the blocks'
    # size, or it could store a tally of the rows as they were over one counted since.
    monitor.close()
    return monitor


# Ids run from 1 to 200; blocks of 16 hold ids 16n to 16n + 15.
WINDOWS = [
    Window(last=150),
    Window(last=37),
    Window(last=1000),
    Window(since=START + 20 * STEP, until=START + 170 * STEP),
    Window(since=START + 50 * STEP),
]


def test_stored_block_tallies_give_the_figures_the_rows_give(
    log_of_blocks: Monitor, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = figures(log_of_blocks, WINDOWS)
    # Blocks 0 to 11 are whole in the window of all (ids start at 1); block 12 ends at 200, partial.
    assert stored_blocks(log_of_blocks, "drift") == list(range(12))
    assert stored_blocks(log_of_blocks, "performance") == list(range(12))
    again = figures(log_of_blocks, WINDOWS)
    monkeypatch.setattr(summaries, "BLOCK_ROWS", 10**9)
    from_rows = figures(log_of_blocks, WINDOWS)

    assert first == again == from_rows
    assert [document[0]["rows"] for document in from_rows] == [150, 37, 200, 150, 150]  # type: ignore[index]


def test_a_stored_tally_serves_only_while_its_block_holds_the_rows_and_outcomes_it_counted(
    url: URL, log_of_blocks: Monitor, monkeypatch: pytest.MonkeyPatch
) -> None:
    monitor, everything = log_of_blocks, [Window(last=1000)]
    figures(monitor, everything)
    # Served from storage: a tally emptied behind the monitor's back takes its block's 16 rows away.
    with monitor.engine().begin() as connection:
        connection.execute(
            update(SUMMARIES)
            .where(SUMMARIES.c.kind == "drift", SUMMARIES.c.block == 5)
            .values(tally=json.dumps(DriftTally().as_json()))
        )
    assert monitor.drift(Window(last=1000))["rows"] == 200 - 16
    with monitor.engine().begin() as connection:
        connection.execute(delete(SUMMARIES).where(SUMMARIES.c.block == 5))

    def changed(change: Callable[[Connection], object]) -> None:
        with monitor.engine().begin() as connection:
            change(connection)
        stored = figures(monitor, everything)
        monkeypatch.setattr(summaries, "BLOCK_ROWS", 10**9)
        assert stored == figures(monitor, everything)
        monkeypatch.setattr(summaries, "BLOCK_ROWS", 16)

    # A row deleted, then one committed late into the gap (PostgreSQL's ids may commit out of order).
    changed(lambda connection: connection.execute(delete(PREDICTIONS).where(PREDICTIONS.c.id == 40)))
    changed(lambda connection: connection.execute(update(PREDICTIONS).where(PREDICTIONS.c.id == 100).values(id=40)))
    assert monitor.drift(Window(last=1000))["rows"] == 199
    # Outcomes sent again, the other way round.
    monitor.record([Outcome(f"b-{i}", None, i % 2 == 0, NOW) for i in range(200)])
    monitor.close()
    changed(lambda connection: None)
    # Another model's reference: other bins.
    other = {**HAND_REFERENCE, "numerical": {"tenure": {"edges": [0.0, 5.0, 25.0], "shares": [0.3, 0.7]}}}
    tenure = by_name(monitor_of(url, other).drift(Window(last=1000)))["tenure"]
    assert sum(tenure["current"]) + tenure["unseen_share"] == pytest.approx(1.0)  # type: ignore[operator]
    assert tenure["unseen_share"] == 0.0


def test_a_window_of_the_last_n_counts_n_rows_when_ids_have_gaps(log_of_blocks: Monitor) -> None:
    with log_of_blocks.engine().begin() as connection:
        connection.execute(delete(PREDICTIONS).where(PREDICTIONS.c.id.between(150, 179)))
    found = log_of_blocks.drift(Window(last=100))
    assert found["rows"] == 100
    # Ids 200 to 180, then 149 down to 71, logged at START + (id - 1) steps.
    assert found["first_logged_at"] == (START + 70 * STEP).isoformat()


def test_new_outcomes_have_the_stale_performance_tallies_counted_again_in_the_background(
    log_of_blocks: Monitor, monkeypatch: pytest.MonkeyPatch
) -> None:
    def bases() -> set[str]:
        with log_of_blocks.engine().connect() as connection:
            return set(connection.scalars(select(SUMMARIES.c.basis).where(SUMMARIES.c.kind == "performance")))

    figures(log_of_blocks, [Window(last=1000)])
    before = bases()
    log_of_blocks.record([Outcome(f"b-{i}", None, i % 3 == 0, NOW) for i in range(200)])
    log_of_blocks.close()  # Lets the refresh finish.

    after = bases()
    assert len(after) == 1
    assert after != before
    assert stored_blocks(log_of_blocks, "performance") == list(range(12))
    stored = rounded(log_of_blocks.performance(Window(last=1000)))
    assert bases() == after
    monkeypatch.setattr(summaries, "BLOCK_ROWS", 10**9)
    assert stored == rounded(log_of_blocks.performance(Window(last=1000)))


def test_the_blocks_of_the_recent_predictions_are_counted_ahead_of_any_look(url: URL, log_of_blocks: Monitor) -> None:
    # The gauges' own window, the last 20, covers no block whole: what is stored was counted ahead.
    monitor = monitor_of(url, HAND_REFERENCE, window=20)
    MonitoringGauges(CollectorRegistry(), monitor).refresh()
    monitor.close()  # Lets the counting finish.

    assert stored_blocks(monitor, "drift") == list(range(12))
    assert stored_blocks(monitor, "performance") == list(range(12))
