"""In-process cost of an explanation: ``scorer.score()`` against score + ``Explainer.explain()``, per customer.

``python -m benchmarks.explain`` prints the figures for the configured model.
"""

from __future__ import annotations

import statistics
import time
import timeit

import numpy as np
from sklearn.model_selection import train_test_split

from churn import schema
from churn.explain import Explainer
from churn.model import ChurnModel, load_model
from churn.reference import reference_distributions
from churn.settings import Settings
from churn.training import DATA_FILE, SEED, TEST_SIZE, load_dataset

ROUNDS = 7
CUSTOMERS = 1000
# Each timing covers this many passes over the customers: long enough to dwarf the timer's own cost.
PASSES = 20
GOAL_MICROSECONDS = 10.0


def training_reference(model: ChurnModel, customers: list[schema.Customer]) -> dict[str, object]:
    """The reference train.py stores, rebuilt from the training split for a model saved without one."""
    full_train, _ = train_test_split(np.arange(len(customers)), test_size=TEST_SIZE, random_state=SEED)
    rows = [customers[i] for i in full_train]
    return reference_distributions(rows, np.array(model.predict_proba(rows)))


def explain_figures(model: ChurnModel) -> str:
    """Median CPU microseconds per customer of score() and of score() + explain(), in interleaved rounds, as text."""
    customers = load_dataset(DATA_FILE).customers
    reference = model.metadata.get("reference") or training_reference(model, customers)
    explainer = Explainer.from_model(model.scorer, reference)  # type: ignore[arg-type]
    scorer = model.scorer
    # Evenly spaced through the file: a mix of contracts and services, so what-if lists vary in length.
    sample = customers[:: len(customers) // CUSTOMERS][:CUSTOMERS]

    def score() -> None:
        for customer in sample:
            scorer.score(customer)

    def explain() -> None:
        for customer in sample:
            explainer.explain(customer, scorer.score(customer))

    paths = {"score": score, "explain": explain}
    times: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(ROUNDS):
        for name, function in paths.items():
            # CPU time: on a shared machine, waiting for a core is not the code's cost.
            seconds = timeit.Timer(function, timer=time.process_time).timeit(number=PASSES)
            times[name].append(seconds / (PASSES * len(sample)) * 1e6)
    scored, explained = (statistics.median(times[name]) for name in paths)
    verdict = "met" if explained <= GOAL_MICROSECONDS else "NOT MET"
    return "\n".join(
        [
            f"Explanations, CPU time per customer (median of {ROUNDS} interleaved rounds, {len(sample):,} customers)",
            f"  scorer.score()                     {scored:7.2f} µs",
            f"  score() + explain() with what-if   {explained:7.2f} µs   (explain alone {explained - scored:.2f} µs)",
            f"  goal <= {GOAL_MICROSECONDS:g} µs for score + explain: {verdict}",
        ]
    )


if __name__ == "__main__":
    print(explain_figures(load_model(Settings().model_path)))
