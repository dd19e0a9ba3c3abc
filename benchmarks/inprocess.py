"""In-process figures: one prediction, a million in memory, and a million-row file, each against the course.

Batch runs happen in child processes (``python -m benchmarks.inprocess PATH``), so each one's peak
memory is its own and no run inherits another's heap.
"""

from __future__ import annotations

import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd

import predict_file
from churn import schema
from churn.columns import clean_frame
from churn.examples import RAW_TELCO_CUSTOMER
from churn.model import load_model
from churn.settings import PROJECT_DIR, Settings
from churn.training import DATA_FILE, load_dataset

ROWS = 1_000_000
SINGLE_ROUNDS = 7
BATCH_PATHS = ("course", "text", "category")
SINGLE_GOAL_MICROSECONDS, SPEEDUP_GOAL, ROWS_PER_SECOND_GOAL, MEMORY_GOAL_MB = 3.0, 40.0, 2_000_000, 500


def per_call(function: Callable[[], object], seconds: float = 0.5) -> float:
    """Seconds per call of ``function``, timed over about ``seconds``."""
    calls = 1
    while True:
        started = time.perf_counter()
        for _ in range(calls):
            function()
        elapsed = time.perf_counter() - started
        if elapsed >= seconds:
            return elapsed / calls
        calls *= 2 if elapsed < seconds / 4 else 1 + int(seconds / max(elapsed, 1e-9))


def single() -> dict[str, float]:
    """Median microseconds per prediction for each path, measured in interleaved rounds."""
    model = load_model(Settings().model_path)
    dv, lr = model.vectorizer, model.regression
    customer = schema.clean_customer(RAW_TELCO_CUSTOMER)
    paths: dict[str, Callable[[], object]] = {
        "course": lambda: lr.predict_proba(dv.transform([customer]))[0, 1],
        "compiled": lambda: model.scorer.score(customer),
        "request": lambda: model.scorer.score(schema.clean_record(RAW_TELCO_CUSTOMER)[0]),
    }
    times: dict[str, list[float]] = {name: [] for name in paths}
    for _ in range(SINGLE_ROUNDS):
        for name, function in paths.items():
            times[name].append(per_call(function, seconds=0.2 if name == "course" else 0.5) * 1e6)
    return {name: statistics.median(values) for name, values in times.items()}


def customers_frame(rows: int) -> pd.DataFrame:
    """``rows`` customers drawn from the Telco data, cleaned the course's way, as the course holds them."""
    clean = pd.DataFrame(load_dataset(DATA_FILE).customers)
    return clean.sample(rows, replace=True, random_state=1).reset_index(drop=True)


def batch_child(path: str, rows: int) -> dict[str, float]:
    """Score ``rows`` in-memory customers by ``path``; seconds taken and this process's peak memory."""
    frame = customers_frame(rows)
    model = load_model(Settings().model_path)
    if path == "category":
        frame = frame.astype(dict.fromkeys(schema.CATEGORICAL, "category"))
    started = time.perf_counter()
    if path == "course":
        dicts = frame[list(schema.FEATURES)].to_dict(orient="records")
        probabilities = model.regression.predict_proba(model.vectorizer.transform(dicts))[:, 1]
    else:
        columns = clean_frame(frame)
        probabilities = model.scorer.score_columns(columns.codes, columns.numbers)
    seconds = time.perf_counter() - started
    assert len(probabilities) == rows
    return {"seconds": seconds, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def run_child(*arguments: str) -> dict[str, float]:
    """Run this module in a fresh interpreter and read the JSON line it prints."""
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks.inprocess", *arguments],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(completed.stdout.splitlines()[-1])


def file_child(source: str) -> dict[str, float]:
    """``predict_file.py`` on ``source``, in this process: seconds taken and peak memory."""
    started = time.perf_counter()
    status = predict_file.main([source])
    seconds = time.perf_counter() - started
    assert status == 0, f"predict_file.py exited with {status}"
    return {"seconds": seconds, "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def file_run(rows: int) -> dict[str, float]:
    """``predict_file.py`` on a ``rows``-row CSV in the Telco export's spelling, in a child process."""
    with tempfile.TemporaryDirectory() as folder:
        source = Path(folder) / "customers.csv"
        raw = pd.read_csv(DATA_FILE, dtype=str, keep_default_na=False)
        raw.sample(rows, replace=True, random_state=1).to_csv(source, index=False)
        return {**run_child("file", str(source)), "size_mb": source.stat().st_size / 1e6}


def verdict(met: bool) -> str:
    """How a goal reads in the report."""
    return "met" if met else "NOT MET"


def report(rows: int = ROWS) -> None:
    """Print the in-process figures, and whether each of the issue's goals is met."""
    print("\nIn-process scoring, one customer (median of interleaved rounds)")
    micro = single()
    speedup = micro["course"] / micro["compiled"]
    print(f"  course: DictVectorizer + predict_proba   {micro['course']:9.2f} µs")
    print(f"  compiled tables                          {micro['compiled']:9.2f} µs   {speedup:6.0f}x the course")
    print(f"  request path: clean_record + tables      {micro['request']:9.2f} µs")
    met = micro["compiled"] <= SINGLE_GOAL_MICROSECONDS and speedup >= SPEEDUP_GOAL
    print(f"  goal <= {SINGLE_GOAL_MICROSECONDS:g} µs and >= {SPEEDUP_GOAL:g}x: {verdict(met)}")

    print(f"\nIn-process scoring, {rows:,} customers in memory (each in its own process)")
    results = {path: run_child(path, str(rows)) for path in BATCH_PATHS}
    labels = {
        "course": "course: to_dict + DictVectorizer + predict_proba",
        "text": "compiled, str columns (pandas' default)",
        "category": "compiled, category columns",
    }
    for path, result in results.items():
        rate = rows / result["seconds"]
        ratio = results["course"]["seconds"] / result["seconds"]
        print(
            f"  {labels[path]:50} {result['seconds']:7.2f} s {rate:12,.0f} rows/s {ratio:6.0f}x"
            f"   peak {result['peak_mb']:6,.0f} MB"
        )
    best = min(("text", "category"), key=lambda path: results[path]["seconds"])
    rate = rows / results[best]["seconds"]
    ratio = results["course"]["seconds"] / results[best]["seconds"]
    met = rate >= ROWS_PER_SECOND_GOAL and ratio >= SPEEDUP_GOAL and results[best]["peak_mb"] < MEMORY_GOAL_MB
    print(
        f"  goal >= {ROWS_PER_SECOND_GOAL:,} rows/s, >= {SPEEDUP_GOAL:g}x, < {MEMORY_GOAL_MB} MB "
        f"({labels[best]}): {verdict(met)}"
    )

    print(f"\nEnd to end, predict_file.py on a {rows:,}-row Telco CSV (read, validate, score, write)")
    result = file_run(rows)
    print(
        f"  {result['size_mb']:.0f} MB in {result['seconds']:.1f} s: {rows / result['seconds']:,.0f} rows/s, "
        f"peak {result['peak_mb']:,.0f} MB"
    )


if __name__ == "__main__":
    if sys.argv[1] == "file":
        print(json.dumps(file_child(sys.argv[2])))
    else:
        print(json.dumps(batch_child(sys.argv[1], int(sys.argv[2]))))
