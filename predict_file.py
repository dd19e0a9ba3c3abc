"""Score a CSV of customers: ``python predict_file.py customers.csv [-o scored.csv] [--rejects bad.csv]``.

The input is the Telco export's spelling or the course's cleaned one. Every row that passes the
API's validation is written to the output with ``churn_probability`` and ``churn`` appended; a row
that does not is written to the rejects file with its line number and problems, and the run goes
on. Exit status: 0 when every row was scored, 3 when some were rejected, 1 when the file could not
be scored at all (nothing is written then).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import IO

from churn.arguments import integer_at_least
from churn.csv_files import CHUNK_ROWS, CsvError, Summary, score_csv
from churn.errors import InvalidCustomer
from churn.model import ModelLoadError, load_model
from churn.settings import Settings, SettingsError

EXIT_REJECTS = 3


class Progress:
    """A one-line progress report on a terminal: share of the file read, rows, rows per second."""

    def __init__(self, source: Path, stream: IO[bytes], every: float = 0.2) -> None:
        self.source = source
        self.stream = stream
        self.size = source.stat().st_size
        self.every = every
        self.started = self.shown = time.perf_counter()

    def __call__(self, rows: int) -> None:
        """Redraw the line, at most every ``every`` seconds."""
        now = time.perf_counter()
        if now - self.shown < self.every:
            return
        self.shown = now
        share = min(self.stream.tell() / self.size, 1.0) if self.size else 1.0
        rate = rows / max(now - self.started, 1e-9)
        print(f"\r{self.source.name}: {share:4.0%}  {rows:,} rows  {rate:,.0f} rows/s", end="", file=sys.stderr)

    def close(self) -> None:
        """End the line, so the summary starts on its own."""
        print(file=sys.stderr)


def arguments(argv: list[str] | None) -> argparse.Namespace:
    """The command line, with outputs named after the input unless given."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0].removesuffix("."))
    parser.add_argument("input", type=Path, help="CSV file of customers, with a header line")
    parser.add_argument("-o", "--output", type=Path, help="scored CSV (default: INPUT-scored.csv)")
    parser.add_argument("--rejects", type=Path, help="rows that fail validation (default: INPUT-rejects.csv)")
    parser.add_argument("--threshold", type=float, help="churn is true from here up (default: CHURN_THRESHOLD or 0.5)")
    parser.add_argument("--chunk-rows", type=integer_at_least(1), default=CHUNK_ROWS, help="rows held in memory")
    args = parser.parse_args(argv)
    stem = args.input.with_suffix("")
    args.output = args.output or stem.with_name(f"{stem.name}-scored.csv")
    args.rejects = args.rejects or stem.with_name(f"{stem.name}-rejects.csv")
    return args


def run(args: argparse.Namespace) -> Summary:
    """Score ``args.input``; outputs appear only complete, through temporary files renamed at the end."""
    settings = Settings.from_env()
    threshold = settings.threshold if args.threshold is None else args.threshold
    model = load_model(settings.model_path)
    partial_output = args.output.with_name(args.output.name + ".partial")
    partial_rejects = args.rejects.with_name(args.rejects.name + ".partial")
    try:
        with (
            args.input.open("rb") as source,
            partial_output.open("w", newline="", encoding="utf-8") as output,
            partial_rejects.open("w", newline="", encoding="utf-8") as rejects,
        ):
            progress = Progress(args.input, source) if sys.stderr.isatty() else None
            summary = score_csv(model, source, output, rejects, threshold, args.chunk_rows, progress)
            if progress is not None:
                progress.close()
        partial_output.replace(args.output)
        if summary.rejected:
            partial_rejects.replace(args.rejects)
        else:
            # A rejects file left by an earlier run of the same input would describe rows now fixed.
            args.rejects.unlink(missing_ok=True)
    finally:
        partial_output.unlink(missing_ok=True)
        partial_rejects.unlink(missing_ok=True)
    return summary


def main(argv: list[str] | None = None) -> int:
    """Run the command line; the exit status says whether every row was scored."""
    args = arguments(argv)
    started = time.perf_counter()
    try:
        summary = run(args)
    except (OSError, CsvError, InvalidCustomer, SettingsError, ModelLoadError) as error:
        detail = error.detail if isinstance(error, InvalidCustomer) else error
        print(f"error: cannot score {args.input}: {detail}", file=sys.stderr)
        return 1
    seconds = time.perf_counter() - started
    print(f"{summary.scored:,} of {summary.rows:,} rows scored into {args.output} in {seconds:.1f} s", file=sys.stderr)
    if summary.rejected:
        print(f"{summary.rejected:,} rows rejected: see {args.rejects} for their lines and problems", file=sys.stderr)
        return EXIT_REJECTS
    return 0


if __name__ == "__main__":
    sys.exit(main())
