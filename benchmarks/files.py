"""File figures: predict_file.py end to end on CSV and Parquet, against a plain pyarrow read and write of the same file.

Every run is a child process (``python -m benchmarks.files KIND INPUT OUTPUT``), so its CPU time
and peak memory are its own; the scoring and the plain read-and-write alternate in rounds, and
medians are reported, as the machine's load moves between runs.
"""

from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from churn import schema
from churn.settings import PROJECT_DIR
from churn.training import DATA_FILE

ROWS, BIG_ROWS, BAD_ROWS = 1_000_000, 10_000_000, 300_000
ROUNDS = 2
CSV_GOAL, PARQUET_GOAL, REJECTS_GOAL = 1_000_000, 3_000_000, 100_000
BASELINE_RATIO_GOAL, MEMORY_GOAL_MB = 2.0, 400
WRITE_ROWS = 100_000


def telco_rows(rows: int, path: Path, *, bad: bool = False) -> Path:
    """``rows`` Telco customers drawn at random into ``path`` (CSV or Parquet by its name), written in pieces.

    With ``bad``, every feature is invalid: ten distinct categories, a distinct number in each row.
    """
    telco = pa_csv.read_csv(DATA_FILE, convert_options=pa_csv.ConvertOptions(column_types=_as_text(DATA_FILE)))
    generator = np.random.default_rng(1)
    kind = pq.ParquetWriter if path.suffix == ".parquet" else pa_csv.CSVWriter
    with kind(path, telco.schema) as writer:
        for start in range(0, rows, WRITE_ROWS):
            piece = telco.take(generator.integers(0, telco.num_rows, min(WRITE_ROWS, rows - start)))
            writer.write_table(_spoiled(piece, start) if bad else piece)
    return path


def _as_text(path: Path | str) -> dict[str, pa.DataType]:
    """Every column of a CSV file as text, as predict_file.py reads it."""
    with open(path, "rb") as stream:
        return dict.fromkeys(stream.readline().decode().strip().split(","), pa.string())


def _spoiled(table: pa.Table, start: int) -> pa.Table:
    numbers = np.arange(start, start + table.num_rows).astype(str)
    for index, name in enumerate(table.column_names):
        cleaned = schema.normalise(name)
        if cleaned in schema.CATEGORICAL:
            values = pa.array(np.char.add("nope", np.char.mod("%d", np.arange(table.num_rows) % 10)))
        elif cleaned in schema.NUMERICAL:
            values = pa.array(np.char.add("-" if cleaned == "tenure" else "x", numbers))
        else:
            continue
        table = table.set_column(index, name, values)
    return table


def child(kind: str, source: str, output: str) -> dict[str, float]:
    """One run in this process: ``score`` (predict_file.py) or ``plain`` (pyarrow read and write); times and memory."""
    # Imported before the clock starts, as pyarrow is for the plain run: interpreter start-up is not the file's cost.
    import predict_file
    from churn import file_scoring, model  # noqa: F401

    before = resource.getrusage(resource.RUSAGE_SELF)
    started = time.perf_counter()
    if kind == "score":
        status = predict_file.main([source, "-o", output, "--rejects", f"{output}.rejects{Path(output).suffix}"])
        assert status in (predict_file.EXIT_SCORED, predict_file.EXIT_FAILED), status
    else:
        _plain(source, output)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "seconds": time.perf_counter() - started,
        "cpu": usage.ru_utime + usage.ru_stime - before.ru_utime - before.ru_stime,
        "peak_mb": usage.ru_maxrss / 1024,
    }


def _plain(source: str, output: str) -> None:
    """Read ``source`` and write it to ``output`` with pyarrow alone, streaming, every column as text for CSV."""
    if source.endswith(".parquet"):
        parquet = pq.ParquetFile(source)
        with pq.ParquetWriter(output, parquet.schema_arrow) as writer:
            for batch in parquet.iter_batches():
                writer.write_batch(batch)
    else:
        reader = pa_csv.open_csv(source, convert_options=pa_csv.ConvertOptions(column_types=_as_text(source)))
        with pa_csv.CSVWriter(output, reader.schema) as writer:
            for batch in reader:
                writer.write_batch(batch)
    # As predict_file.py does before it renames its output into place.
    descriptor = os.open(output, os.O_RDONLY)
    os.fsync(descriptor)
    os.close(descriptor)


def run_child(kind: str, source: Path, output: Path) -> dict[str, float]:
    """Run :func:`child` in a fresh interpreter and read the JSON line it prints."""
    completed = subprocess.run(
        [sys.executable, "-m", "benchmarks.files", kind, str(source), str(output)],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(completed.stdout.splitlines()[-1])


def _median(runs: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(run[key] for run in runs) for key in runs[0]}


def compared(source: Path, folder: Path, rounds: int = ROUNDS) -> tuple[dict[str, float], dict[str, float]]:
    """Median figures of the scoring and of the plain read and write of ``source``, run in alternation."""
    output = folder / f"out{source.suffix}"
    runs: dict[str, list[dict[str, float]]] = {"score": [], "plain": []}
    for _ in range(rounds):
        for kind in runs:
            runs[kind].append(run_child(kind, source, output))
    return _median(runs["score"]), _median(runs["plain"])


def _verdict(met: bool) -> str:
    return "met" if met else "NOT MET"


def _line(label: str, rows: int, run: dict[str, float]) -> str:
    return (
        f"  {label:44} {run['seconds']:6.2f} s wall {rows / run['seconds']:11,.0f} rows/s   "
        f"{run['cpu']:6.2f} s CPU {rows / run['cpu']:11,.0f} rows/s   peak {run['peak_mb']:5,.0f} MB"
    )


def file_figures(rows: int = ROWS, big_rows: int = BIG_ROWS, bad_rows: int = BAD_ROWS) -> str:
    """The report: each file benchmark, its goal, and whether it is met (by wall clock, CPU time alongside)."""
    lines = [f"\nFiles end to end (read, validate, score, write), medians of {ROUNDS} alternating rounds"]
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        for suffix, goal in ((".csv", CSV_GOAL), (".parquet", PARQUET_GOAL)):
            source = telco_rows(rows, folder / f"customers{suffix}")
            scored, plain = compared(source, folder)
            ratio = scored["seconds"] / plain["seconds"]
            lines += [
                _line(f"predict_file.py, {rows:,} rows of {suffix[1:]}", rows, scored),
                _line("pyarrow alone: read and write the same", rows, plain),
                f"  {ratio:.1f}x pyarrow alone ({scored['cpu'] / plain['cpu']:.1f}x by CPU)",
                f"  goal >= {goal:,} rows/s: {_verdict(rows / scored['seconds'] >= goal)} "
                f"(by CPU: {_verdict(rows / scored['cpu'] >= goal)})",
            ]
            if suffix == ".csv":
                lines.append(
                    f"  goal <= {BASELINE_RATIO_GOAL:g}x pyarrow alone: {_verdict(ratio <= BASELINE_RATIO_GOAL)}"
                )
            source.unlink()
        source = telco_rows(bad_rows, folder / "bad.csv", bad=True)
        bad = run_child("score", source, folder / "bad-out.csv")
        lines += [
            _line(f"{bad_rows:,} rows, every feature invalid", bad_rows, bad),
            f"  goal >= {REJECTS_GOAL:,} rows/s and < {MEMORY_GOAL_MB} MB: "
            f"{_verdict(bad_rows / bad['seconds'] >= REJECTS_GOAL and bad['peak_mb'] < MEMORY_GOAL_MB)} "
            f"(by CPU: {_verdict(bad_rows / bad['cpu'] >= REJECTS_GOAL)})",
        ]
        source.unlink()
        source = telco_rows(big_rows, folder / "big.csv")
        big = run_child("score", source, folder / "big-out.csv")
        lines += [
            _line(f"predict_file.py, {big_rows:,} rows of csv", big_rows, big),
            f"  goal peak < {MEMORY_GOAL_MB} MB whatever the size: {_verdict(big['peak_mb'] < MEMORY_GOAL_MB)}",
        ]
    return "\n".join(lines)


if __name__ == "__main__":
    if len(sys.argv) == 4:
        print(json.dumps(child(*sys.argv[1:])))
    else:
        print(file_figures())
