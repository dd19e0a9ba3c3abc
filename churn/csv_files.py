"""Scoring CSV files: chunk by chunk, so memory stays bounded whatever the file's size.

Rows are validated by the API's rule (:mod:`churn.columns` applies :mod:`churn.schema`); a file
that lacks a feature column, names a column twice or cannot be read as CSV is refused whole, before
anything is written. Bad rows are described per distinct bad value, so a file of bad rows costs no
more memory than a file of good ones.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import cached_property
from typing import IO, TYPE_CHECKING

import numpy as np
import pandas as pd

from churn import schema
from churn.columns import Columns, FieldFaults, clean_frame, feature_columns
from churn.errors import InvalidCustomer, Problem

if TYPE_CHECKING:
    from churn.model import ChurnModel

# About 7 MB of Telco-shaped CSV a chunk: per-chunk costs vanish, and a run peaks near 330 MB in all.
CHUNK_ROWS = 50_000
# A rejected row's errors take some 20 times the memory of a good row: they are written this many at a time.
REJECT_ROWS = 10_000
PROBABILITY_COLUMN = "churn_probability"
PREDICTION_COLUMN = "churn"
# Input columns that clean to a name the output adds are kept under these names: the Telco export's
# ``Churn`` label, or the scores of an earlier run.
KEPT_AS = {PREDICTION_COLUMN: "churn_actual", PROBABILITY_COLUMN: "churn_probability_input"}
# OWASP's list: a spreadsheet runs a cell starting with =, +, -, @, tab or carriage return as a formula.
_FORMULA_START = r"[=+\-@\t\r]"
# A number a spreadsheet reads as a number, sign and all: nothing to neutralise.
_PLAIN_NUMBER = r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?"
# Far longer than any real header: a file without line breaks is refused instead of read whole.
HEADER_LIMIT = 1 << 20
_LINE_BREAK = r"\r\n|\r|\n"


class CsvError(ValueError):
    """The file cannot be read as CSV text."""


@dataclass(frozen=True)
class ScoredFrame:
    """A frame's valid rows with their scores appended, and what its bad rows hold.

    ``scored`` and :meth:`rejects` are ready to write: label columns renamed, formulas neutralised
    when asked. ``written`` is the whole frame so, ``lines`` each row's line in the file.
    """

    scored: pd.DataFrame
    written: pd.DataFrame
    columns: Columns
    lines: np.ndarray
    start: int

    @cached_property
    def bad(self) -> np.ndarray:
        """The positions of the rejected rows."""
        return np.flatnonzero(self.columns.rejected)

    def rejects(self, first: int = 0, count: int | None = None) -> pd.DataFrame:
        """Rejected rows ``first`` to ``first + count`` (all by default), after their ``line`` and ``errors``."""
        bad = self.bad[first : None if count is None else first + count]
        where = pd.DataFrame(
            {"line": self.lines[bad], "errors": _errors(self.columns.faults, bad)}, index=self.written.index[bad]
        )
        return pd.concat([where, self.written.iloc[bad]], axis=1)

    @cached_property
    def problems(self) -> list[Problem]:
        """Each bad value as a :class:`Problem` with its record's index in the file and its line."""
        return [
            problem.at(problem.index + self.start, int(self.lines[problem.index]))  # type: ignore[operator,index]
            for problem in self.columns.problems()
        ]


@dataclass
class Summary:
    """What a run did: rows read, scored and rejected, and the input columns kept under another name."""

    rows: int = 0
    scored: int = 0
    rejected: int = 0
    renamed: dict[str, str] = field(default_factory=dict)


def read_csv(source: IO[bytes], chunk_rows: int = CHUNK_ROWS) -> Iterator[pd.DataFrame]:
    """The file's rows as text, ``chunk_rows`` at a time, each frame indexed by its rows' lines in the file.

    Lines are those an editor shows (the header is line 1), line breaks inside quoted cells counted.
    Rows with every cell empty, such as blank lines, are skipped. :class:`CsvError` when the file is
    not CSV; :class:`InvalidCustomer`, after the first chunk parses, when its header is not one
    :func:`check_columns` accepts.
    """
    header, names = _read_header(source)
    replay = _Replay(header, source)
    try:
        # Text, blanks kept as blanks: the schema decides what a value means, as for JSON. Blank lines
        # are kept as rows so that the rows' lines can be counted; they are dropped below.
        chunks = pd.read_csv(
            replay,
            dtype=str,
            keep_default_na=False,
            skip_blank_lines=False,
            encoding="utf-8-sig",
            chunksize=chunk_rows,
        )
        line = 1 + 1 + sum(_line_breaks(pd.Series(names, dtype=str)))
        for number, chunk in enumerate(chunks):
            if number == 0:
                check_columns(names)
            breaks = np.zeros(len(chunk), dtype=np.int64)
            for column in chunk.columns:
                breaks += _line_breaks(chunk[column])
            ends = np.cumsum(breaks)
            lines = line + np.arange(len(chunk)) + ends - breaks
            line += len(chunk) + (int(ends[-1]) if len(chunk) else 0)
            chunk.index = pd.Index(lines)
            yield chunk[~_empty_rows(chunk)]
    except UnicodeDecodeError:
        raise CsvError("The file is not UTF-8 text.") from None
    except pd.errors.ParserError as error:
        if replay.failure is not None:
            raise replay.failure from None
        raise CsvError(f"The file is not valid CSV: {error}") from None


class _Replay(io.RawIOBase):
    """The bytes already read for the header, then the rest of ``source``: the whole file, for pandas.

    pandas' parser reports any error in reading as a parse error; ``failure`` keeps the real one, such
    as the KeyboardInterrupt of a Ctrl-C while waiting for standard input.
    """

    def __init__(self, head: bytes, source: IO[bytes]) -> None:
        self.head = memoryview(head)
        self.source = source
        self.failure: BaseException | None = None

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self.head:
            size = min(len(buffer), len(self.head))
            buffer[:size] = self.head[:size]
            self.head = self.head[size:]
            return size
        try:
            data = self.source.read(len(buffer))
        except BaseException as error:
            self.failure = error
            raise
        buffer[: len(data)] = data
        return len(data)


def _read_header(source: IO[bytes]) -> tuple[bytes, list[str]]:
    """The header's bytes and its column names, read by the csv module: pandas would rename a duplicate."""
    head, quotes = bytearray(), 0
    while len(head) < HEADER_LIMIT:
        line = source.readline(HEADER_LIMIT - len(head))
        head += line
        quotes += line.count(b'"')
        # An even number of quotes: the line break ends the header rather than sitting inside a quoted name.
        if not line or (line.endswith(b"\n") and quotes % 2 == 0):
            break
    else:
        raise CsvError(f"The header is longer than {HEADER_LIMIT:,} bytes: this is not a CSV of customers.")
    try:
        text = head.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise CsvError("The file is not UTF-8 text.") from None
    names = next(csv.reader(io.StringIO(text, newline="")), None)
    if not names:
        raise CsvError("The file is empty: it needs a header line and at least one row.")
    return bytes(head), names


def _line_breaks(values: pd.Series) -> np.ndarray:
    """How many line breaks each cell holds (a quoted cell can span lines); zeros when none does."""
    if not values.str.contains(_LINE_BREAK, regex=True).any():
        return np.zeros(len(values), dtype=np.int64)
    return values.str.count(_LINE_BREAK).to_numpy(dtype=np.int64)


def _empty_rows(frame: pd.DataFrame) -> np.ndarray:
    """Which rows have nothing in any cell: blank lines, or lines of separators only."""
    empty = frame.iloc[:, 0].to_numpy() == ""
    for column in frame.columns[1:]:
        if not empty.any():
            break
        empty &= frame[column].to_numpy() == ""
    return empty


def check_columns(columns: list[str]) -> None:
    """:class:`InvalidCustomer` unless every feature has one column, no name is given twice, and labels can be kept.

    Columns that clean to a name the output adds are kept under :data:`KEPT_AS`'s names, which must be free.
    """
    problems: list[Problem] = []
    try:
        feature_columns(columns)
    except InvalidCustomer as error:
        problems.extend(error.problems)
    features = set(schema.FEATURES)
    for name, count in Counter(columns).items():
        if count > 1 and schema.normalise(name) not in features:
            problems.append(Problem(name, f"names {count} columns: pandas would rename all but one; give each its own"))
    cleaned = Counter(schema.normalise(column) for column in columns)
    for column, kept_as in label_renames(columns).items():
        if cleaned[schema.normalise(column)] > 1 or cleaned[kept_as] > 0:
            problems.append(
                Problem(
                    column,
                    f"is a column the output adds, so it is kept as {kept_as}, but another column cleans to "
                    f"{schema.normalise(column)!r} or {kept_as!r}: rename one of them",
                )
            )
    if problems:
        raise InvalidCustomer(problems)


def label_renames(columns: Iterable[str]) -> dict[str, str]:
    """The input columns the output keeps under another name, as ``Churn`` becomes ``churn_actual``."""
    return {column: KEPT_AS[name] for column in columns if (name := schema.normalise(str(column))) in KEPT_AS}


def escape_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with ``'`` put before every text cell and column name a spreadsheet would run as a formula.

    OWASP's rule: a cell starting with ``=``, ``+``, ``-``, ``@``, tab or carriage return. Plain
    numbers such as ``-1.5`` are left alone, as a spreadsheet reads them as the same number either way.
    """
    escaped = {}
    for column in frame.columns:
        values = frame[column]
        if not isinstance(values.dtype, pd.StringDtype) and values.dtype != object:
            continue
        risky = _risky(values)
        if risky.any():
            escaped[column] = values.mask(risky, "'" + values)
    names = pd.Series(frame.columns.astype(str), dtype=str)
    risky_names = _risky(names)
    if not escaped and not risky_names.any():
        return frame
    frame = frame.assign(**escaped) if escaped else frame
    if risky_names.any():
        frame = frame.set_axis(names.mask(risky_names, "'" + names).tolist(), axis=1)
    return frame


def _risky(values: pd.Series) -> pd.Series:
    starts = values.str.match(_FORMULA_START, na=False)
    if not starts.any():
        return starts
    return starts & ~values.str.fullmatch(_PLAIN_NUMBER, na=False)


def score_frame(
    model: ChurnModel,
    frame: pd.DataFrame,
    threshold: float,
    start: int = 0,
    *,
    escape: bool = True,
) -> ScoredFrame:
    """Score every valid row of ``frame``, a chunk from :func:`read_csv` whose first row is record ``start``.

    With ``escape``, text a spreadsheet would run as a formula is neutralised (:func:`escape_formulas`).
    """
    columns = clean_frame(frame)
    probabilities = model.scorer.score_columns(columns.codes, columns.numbers)
    valid = ~columns.rejected
    renamed = frame.rename(columns=label_renames(frame.columns))
    written = escape_formulas(renamed) if escape else renamed
    scored = written[valid].assign(
        **{PROBABILITY_COLUMN: probabilities[valid], PREDICTION_COLUMN: probabilities[valid] >= threshold}
    )
    return ScoredFrame(scored, written, columns, frame.index.to_numpy(), start)


def _errors(faults: list[FieldFaults], rows: np.ndarray) -> np.ndarray:
    """The ``rows``' problems as text, ``field: message`` joined by ``; `` in the schema's order."""
    errors = np.full(len(rows), "", dtype=object)
    for fault in faults:
        codes = fault.codes[rows]
        first = np.array([*(f"{fault.field}: {message}" for message in fault.messages), ""], dtype=object)
        later = np.array([*(f"; {text}" for text in first[:-1]), ""], dtype=object)
        # Code -1 (a good value) picks the empty string last in each table.
        errors += np.where(errors == "", first[codes], later[codes])
    return errors


def score_csv(
    model: ChurnModel,
    source: IO[bytes],
    output: IO[str],
    rejects: IO[str],
    threshold: float,
    chunk_rows: int = CHUNK_ROWS,
    progress: Callable[[int], None] | None = None,
    *,
    escape: bool = True,
) -> Summary:
    """Score the CSV in ``source`` into ``output``, writing its bad rows to ``rejects``.

    Output rows keep every input column, in order, with ``churn_probability`` and ``churn``
    appended; rejected rows keep theirs too, after their ``line`` and ``errors``. ``progress`` is
    called with the number of rows read so far after each chunk. The output gets its header even
    when no row is valid; ``rejects`` gets nothing unless a row is bad.
    """
    summary = Summary()
    nothing_scored = pd.DataFrame()
    for chunk in read_csv(source, chunk_rows):
        summary.renamed = label_renames(chunk.columns)
        result = score_frame(model, chunk, threshold, start=summary.rows, escape=escape)
        if len(result.scored):
            result.scored.to_csv(output, header=summary.scored == 0, index=False)
        else:
            nothing_scored = result.scored
        for first in range(0, len(result.bad), REJECT_ROWS):
            result.rejects(first, REJECT_ROWS).to_csv(rejects, header=summary.rejected == 0 and first == 0, index=False)
        summary.rows += len(chunk)
        summary.scored += len(result.scored)
        summary.rejected += len(result.bad)
        if progress is not None:
            progress(summary.rows)
    if summary.rows == 0:
        raise CsvError("The file has a header but no rows: it needs at least one customer.")
    if summary.scored == 0:
        nothing_scored.to_csv(output, index=False)
    return summary
