"""Score a CSV or Parquet file of customers with the churn model: python predict_file.py customers.csv.

Every row that passes the API's validation is written to the output with churn_probability and churn
appended; a row that does not goes to the rejects file with its line and problems, and the run goes
on. Outputs appear whole or not at all. docs/files.md tells the rest.
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import stat
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from itertools import combinations
from pathlib import Path
from types import FrameType
from typing import IO, TYPE_CHECKING

from churn.arguments import integer_at_least, probability

if TYPE_CHECKING:
    from churn.file_scoring import Summary

EXIT_SCORED, EXIT_FAILED, EXIT_USAGE, EXIT_REJECTS = 0, 1, 2, 3
# The shells' convention: 128 plus the signal's number.
EXIT_SIGNAL: dict[int, int] = {signal.SIGINT: 130, signal.SIGTERM: 143}
STDIO = "-"
# The default of --chunk-rows; churn.csv_files has the same, but importing it here would load pandas for --help.
CHUNK_ROWS = 50_000
# As churn.file_scoring has them, for the same reason.
FORMATS = ("csv", "parquet")
PARQUET_SUFFIXES = (".parquet", ".pq")
EXIT_CODES = """exit status:
  0    every row was scored
  3    some rows were scored, some rejected (see the rejects file)
  1    no row was scored: the file was refused, or every row was rejected
  2    the command line is wrong (nothing is read or written)
  130  interrupted by Ctrl-C, 143 by SIGTERM (partial files are removed)"""


class Refused(Exception):
    """The file cannot be scored: the model, the settings, the file or its columns say why."""


class Interrupted(Exception):
    """A signal asked the run to stop."""

    def __init__(self, signum: int) -> None:
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def plural(count: int, noun: str) -> str:
    """``1 row``, ``2 rows``, ``1,000 rows``."""
    return f"{count:,} {noun}" if count == 1 else f"{count:,} {noun}s"


def shown(name: str) -> str:
    """How messages name an output file, standard output included."""
    return "standard output" if name == STDIO else name


def _stdio_name(role: str, name: str) -> str:
    return "standard input" if role == "input" and name == STDIO else shown(name)


class Progress:
    """A one-line progress report on a terminal: share of the file read (if its size is known), rows, rows/s."""

    def __init__(self, name: str, stream: IO[bytes], size: int | None, every: float = 0.2) -> None:
        self.name = name
        self.stream = stream
        self.size = size
        self.every = every
        self.started = self.shown = time.perf_counter()

    def __call__(self, rows: int) -> None:
        """Redraw the line, at most every ``every`` seconds."""
        now = time.perf_counter()
        if now - self.shown < self.every:
            return
        self.shown = now
        share = "" if self.size is None else f"{min(self.stream.tell() / self.size, 1.0) if self.size else 1.0:4.0%}  "
        rate = rows / max(now - self.started, 1e-9)
        print(f"\r{self.name}: {share}{plural(rows, 'row')}  {rate:,.0f} rows/s", end="", file=sys.stderr)

    def close(self) -> None:
        """End the line, so the summary starts on its own."""
        print(file=sys.stderr)


def arguments(argv: list[str] | None) -> argparse.Namespace:
    """The command line, with outputs named after the input unless given; usage errors exit with status 2."""
    parser = argparse.ArgumentParser(
        prog="predict_file.py",
        description=" ".join(__doc__.split("\n\n")[1].split()),
        epilog=EXIT_CODES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "input", help="CSV file of customers with a header line, or Parquet file; - reads standard input"
    )
    parser.add_argument(
        "-o",
        "--output",
        help="scored file; - writes standard output "
        "(default: INPUT-scored.csv or .parquet beside the input, stdin-scored.csv for -)",
    )
    parser.add_argument(
        "--rejects",
        help="file of the rows that fail validation, with their line and errors; - writes standard output "
        "(default: INPUT-rejects.csv or .parquet beside the input, stdin-rejects.csv for -)",
    )
    parser.add_argument(
        "--format",
        choices=FORMATS,
        help="the input's format (default: parquet for a name ending in .parquet or .pq, else csv)",
    )
    parser.add_argument(
        "--output-format",
        choices=FORMATS,
        help="the outputs' format (default: by each output's name as for the input, else the input's format)",
    )
    parser.add_argument(
        "--threshold",
        type=probability,
        help="churn is true from this probability up, between 0 and 1 (default: CHURN_THRESHOLD, or 0.5)",
    )
    parser.add_argument(
        "--chunk-rows",
        type=integer_at_least(1),
        default=CHUNK_ROWS,
        help="rows read and held in memory at a time (default: %(default)s)",
    )
    parser.add_argument(
        "--explain",
        action="store_true",
        help="add each scored row's three largest reasons (reason_1 to reason_3) and the change that would "
        "lower its churn probability most (best_action); docs/explanations.md tells how to read them",
    )
    parser.add_argument(
        "--no-escape-formulas",
        dest="escape_formulas",
        action="store_false",
        help="write text cells as they are, even those a spreadsheet would run as formulas "
        "(default: put ' before a cell that starts with =, +, -, @, tab or carriage return)",
    )
    args = parser.parse_args(argv)
    if args.input != STDIO and Path(args.input).is_dir():
        parser.error(f"{args.input} is a directory: name a CSV or Parquet file")
    args.format = args.format or _format_of(args.input)
    stem = Path("stdin" if args.input == STDIO else args.input).with_suffix("")
    suffix = f".{args.output_format or args.format}"
    args.output = args.output or str(stem.with_name(f"{stem.name}-scored{suffix}"))
    args.rejects = args.rejects or str(stem.with_name(f"{stem.name}-rejects{suffix}"))
    args.formats = {role: args.output_format or _format_of(name, args.format) for role, name in _outputs(args)}
    clash = same_files({"input": args.input, "output": args.output, "rejects": args.rejects})
    if clash:
        parser.error(clash)
    return args


def _format_of(name: str, otherwise: str = "csv") -> str:
    """The format a file's name says (as churn.file_scoring.file_format does); ``-`` and others take ``otherwise``."""
    if name == STDIO:
        return otherwise
    if name.lower().endswith(PARQUET_SUFFIXES):
        return "parquet"
    return "csv" if name.lower().endswith(".csv") else otherwise


def _outputs(args: argparse.Namespace) -> list[tuple[str, str]]:
    return [("output", args.output), ("rejects", args.rejects)]


def same_files(files: dict[str, str]) -> str | None:
    """Why two of ``files`` (by role) are one file, which the run would destroy; ``None`` when all differ.

    Names are compared resolved (symlinks followed) and, for files that exist, by device and inode, which
    catches hard links and standard input or output redirected from or to one of the files.
    """
    if files.get("output") == files.get("rejects") == STDIO:
        return "the output and the rejects cannot both be standard output (-)"
    for (role, name), (other_role, other_name) in combinations(files.items(), 2):
        if name != STDIO and other_name != STDIO and Path(name).resolve() == Path(other_name).resolve():
            return f"the {role} and the {other_role} are the same file ({name}): name two different files"
        identity, other = _identity(role, name), _identity(other_role, other_name)
        if identity is not None and identity == other:
            return (
                f"the {role} ({_stdio_name(role, name)}) and the {other_role} ({_stdio_name(other_role, other_name)}) "
                "are the same file"
            )
    return None


def _identity(role: str, name: str) -> tuple[int, int] | None:
    """The file's device and inode: of the named file, or of the file standard input or output is redirected to."""
    try:
        if name != STDIO:
            status = os.stat(name)
        else:
            status = os.fstat((sys.stdin if role == "input" else sys.stdout).fileno())
            # Terminals and pipes are not files the run could destroy.
            if not stat.S_ISREG(status.st_mode):
                return None
    except (OSError, ValueError):
        return None
    return status.st_dev, status.st_ino


class Output:
    """An output file that appears only complete: written beside its name, flushed to disk, then renamed over it.

    Standard output (``-``) is written as it goes, as a pipe cannot be taken back.
    """

    def __init__(self, name: str) -> None:
        self.name = name
        self.partial: Path | None = None
        if name == STDIO:
            self.stream: IO[bytes] = sys.stdout.buffer
            return
        path = Path(name)
        # Unique, so two runs writing the same name never share a partial file; a dot hides it from listings.
        self.partial = path.with_name(f".{path.name}.{secrets.token_hex(4)}.partial")
        # Opened as a new file so the umask sets its mode, as for a file written in place.
        descriptor = os.open(self.partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        self.stream = open(descriptor, "wb")  # noqa: SIM115 (closed by commit or discard)

    def commit(self, keep: bool) -> None:
        """Put the written file in place, or with ``keep`` false remove any earlier file of the name."""
        if self.partial is None:
            self.stream.flush()
            return
        if keep:
            self.stream.flush()
            os.fsync(self.stream.fileno())
            self.stream.close()
            self.partial.replace(self.name)
        else:
            self.discard()
            Path(self.name).unlink(missing_ok=True)

    def discard(self) -> None:
        """Remove the partial file; the file under the name, if any, is left as it was."""
        if self.partial is not None:
            self.stream.close()
            self.partial.unlink(missing_ok=True)


@contextmanager
def signals_held() -> Iterator[None]:
    """Hold Ctrl-C and SIGTERM while the outputs are put in place, so they change together.

    A signal that came meanwhile is dropped: the run it would have stopped is complete.
    """
    held = {signal.SIGINT, signal.SIGTERM}
    signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        for _ in held & signal.sigpending():
            signal.sigwait(held)
        signal.pthread_sigmask(signal.SIG_UNBLOCK, held)


def run(args: argparse.Namespace) -> Summary:
    """Score ``args.input`` into the outputs; :class:`Refused` says why not, and no partial file is left."""
    # Imported here, not at the top: loading pandas and the model takes seconds, which --help should not,
    # and a Ctrl-C meanwhile gets the same one line as one later.
    from churn.csv_files import FileError
    from churn.errors import InvalidCustomer
    from churn.model import ModelLoadError
    from churn.settings import SettingsError

    try:
        return _score(args)
    except (OSError, FileError, SettingsError, ModelLoadError) as error:
        raise Refused(str(error)) from None
    except InvalidCustomer as error:
        raise Refused(error.detail) from None


def _score(args: argparse.Namespace) -> Summary:
    from churn.explain import Explainer
    from churn.file_scoring import Formats, score_file
    from churn.model import load_model
    from churn.settings import Settings

    settings = Settings.from_env()
    threshold = settings.threshold if args.threshold is None else args.threshold
    model = load_model(settings.model_path)
    explainer = Explainer.from_model(model.scorer, model.metadata["reference"]) if args.explain else None
    formats = Formats(args.format, args.formats["output"], args.formats["rejects"], args.escape_formulas)
    with ExitStack() as stack:
        source = _source(args, stack)
        outputs = []
        for name in (args.output, args.rejects):
            output = Output(name)
            stack.callback(output.discard)
            outputs.append(output)
        progress = None
        if sys.stderr.isatty():
            size = os.fstat(source.fileno()).st_size if stat.S_ISREG(os.fstat(source.fileno()).st_mode) else None
            progress = Progress("stdin" if args.input == STDIO else Path(args.input).name, source, size)
        try:
            summary = score_file(
                model,
                source,
                outputs[0].stream,
                outputs[1].stream,
                threshold,
                formats,
                args.chunk_rows,
                progress,
                explainer,
            )
        finally:
            if progress is not None:
                progress.close()
        with signals_held():
            outputs[0].commit(keep=True)
            # A rejects file left by an earlier run would describe rows this run has not rejected.
            outputs[1].commit(keep=summary.rejected > 0)
    return summary


def _source(args: argparse.Namespace, stack: ExitStack) -> IO[bytes]:
    """The input, opened; Parquet from standard input is first copied to a temporary file: it is read from its end."""
    if args.input != STDIO:
        return stack.enter_context(open(args.input, "rb"))
    if args.format != "parquet":
        return sys.stdin.buffer
    spooled = stack.enter_context(tempfile.TemporaryFile())  # noqa: SIM115 (closed by the stack)
    shutil.copyfileobj(sys.stdin.buffer, spooled)
    spooled.seek(0)
    return spooled


def report(args: argparse.Namespace, summary: Summary, seconds: float) -> int:
    """Say what the run did, on standard error, and the exit status that says it too."""
    print(
        f"{summary.scored:,} of {plural(summary.rows, 'row')} scored into {shown(args.output)} in {seconds:.1f} s",
        file=sys.stderr,
    )
    for column, kept_as in summary.renamed.items():
        print(f"the input's {column} column is kept as {kept_as}: the output adds its own", file=sys.stderr)
    if not summary.rejected:
        return EXIT_SCORED
    print(
        f"{plural(summary.rejected, 'row')} rejected: see {shown(args.rejects)} for their lines and problems",
        file=sys.stderr,
    )
    return EXIT_REJECTS if summary.scored else EXIT_FAILED


def _stop(signum: int, frame: FrameType | None) -> None:
    raise Interrupted(signum)


def main(argv: list[str] | None = None) -> int:
    """Run the command line; the exit status says whether every row was scored (see ``--help``)."""
    args = arguments(argv)
    started = time.perf_counter()
    previous = signal.signal(signal.SIGTERM, _stop)
    try:
        summary = run(args)
    except (KeyboardInterrupt, Interrupted) as error:
        signum = error.signum if isinstance(error, Interrupted) else signal.SIGINT
        partial = "; standard output got part of the rows" if STDIO in (args.output, args.rejects) else ""
        print(f"interrupted by {signal.Signals(signum).name}: no output file was written{partial}", file=sys.stderr)
        return EXIT_SIGNAL[signum]
    except Refused as error:
        print(
            f"error: cannot score {_stdio_name('input', args.input)}: {error}{_left_as_they_were(args)}",
            file=sys.stderr,
        )
        return EXIT_FAILED
    finally:
        signal.signal(signal.SIGTERM, previous)
    return report(args, summary, time.perf_counter() - started)


def _left_as_they_were(args: argparse.Namespace) -> str:
    """A note naming earlier outputs a refused run leaves alone, so nobody takes them for its result."""
    earlier = [name for name in (args.output, args.rejects) if name != STDIO and Path(name).exists()]
    if not earlier:
        return ""
    return f" (nothing was written; {' and '.join(earlier)} {'is' if len(earlier) == 1 else 'are'} from an earlier run)"


if __name__ == "__main__":
    status = main()
    # Everything is written and closed by now. A plain exit could still abort ("terminate called without an
    # active exception", status -6) when a refused file leaves Arrow's read-ahead thread running at shutdown.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(status)
