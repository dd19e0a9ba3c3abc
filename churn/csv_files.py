"""Files of customers: the rules every scored file follows, and CSV read as Arrow chunks with their lines.

Rows are validated by the API's rule (:mod:`churn.columns` applies :mod:`churn.schema`); a file
that lacks a feature column, names a column twice or cannot be read as CSV is refused whole, before
anything is written. :func:`read_csv` and :func:`score_frame` give the same chunks and scores as
pandas DataFrames, for the upload endpoint and Spark's tests.
"""

from __future__ import annotations

import csv
import io
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import IO, TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from churn import schema
from churn.columns import Columns, clean_frame, feature_columns
from churn.errors import InvalidCustomer, Problem
from churn.explain import SUMMARY_COLUMNS, Explainer

if TYPE_CHECKING:
    from churn.model import ChurnModel

# Rows held in memory at a time: per-chunk costs vanish, and memory stays flat whatever the file's size.
CHUNK_ROWS = 50_000
# What the CSV parser reads at a time; chunks are gathered from its batches.
BLOCK_BYTES = 1 << 20
PROBABILITY_COLUMN = "churn_probability"
PREDICTION_COLUMN = "churn"
# The columns a scored CSV ends with, after the scores: which model scored it, and from which probability it says churn.
MODEL_COLUMN, THRESHOLD_COLUMN = "model_sha256", "threshold"
# Input columns that clean to a name the output adds are kept under these names: the Telco export's
# ``Churn`` label, or the scores and explanations of an earlier run.
KEPT_AS = {
    PREDICTION_COLUMN: "churn_actual",
    PROBABILITY_COLUMN: "churn_probability_input",
    MODEL_COLUMN: "model_sha256_input",
    THRESHOLD_COLUMN: "threshold_input",
    **{name: f"{name}_input" for name in SUMMARY_COLUMNS},
}
# OWASP's list: a spreadsheet runs a cell starting with =, +, -, @, tab or carriage return as a formula.
_FORMULA_BYTES = np.frombuffer(b"=+-@\t\r", dtype=np.uint8)
# A number a spreadsheet reads as a number, sign and all: nothing to neutralise. ASCII digits only.
_PLAIN_NUMBER = r"^[+-]?(?:[0-9]+\.?[0-9]*|\.[0-9]+)(?:[eE][+-]?[0-9]+)?$"
# Far longer than any real header: a file without line breaks is refused instead of read whole.
HEADER_LIMIT = 1 << 20
# Categories are read straight into codes and distinct values: they are cleaned once per distinct value.
_CATEGORY = pa.dictionary(pa.int32(), pa.string())


class FileError(ValueError):
    """The file cannot be read: it is not CSV or Parquet, or not one of customers."""


class CsvError(FileError):
    """The file cannot be read as CSV text."""


@dataclass(frozen=True)
class Chunk:
    """Rows of a file: every column as read (text, from CSV) and each row's line (or row, in Parquet) in the file."""

    table: pa.Table
    lines: np.ndarray


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
            problems.append(Problem(name, f"names {count} columns: give each its own name"))
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


def escape_text(values: pa.Array) -> pa.Array:
    """``values`` with ``'`` put before every text a spreadsheet would run as a formula.

    OWASP's rule: text starting with ``=``, ``+``, ``-``, ``@``, tab or carriage return. Plain
    numbers such as ``-1.5`` are left alone, as a spreadsheet reads them as the same number either way.
    Dictionary arrays are escaped on their distinct values; other types are returned as they are.
    """
    if pa.types.is_dictionary(values.type):
        return pa.DictionaryArray.from_arrays(values.indices, escape_text(values.dictionary))
    if not (pa.types.is_string(values.type) or pa.types.is_large_string(values.type)):
        return values
    # The first bytes, looked at in place, rule out nearly every cell before a regular expression runs.
    candidates = np.flatnonzero(np.isin(_first_bytes(values), _FORMULA_BYTES))
    if not len(candidates):
        return values
    plain = pc.match_substring_regex(values.take(pa.array(candidates)), _PLAIN_NUMBER).fill_null(False)
    risky = np.zeros(len(values), dtype=bool)
    risky[candidates[~plain.to_numpy(zero_copy_only=False)]] = True
    if not risky.any():
        return values
    quote, nothing = pa.scalar("'", values.type), pa.scalar("", values.type)
    return pc.if_else(pa.array(risky), pc.binary_join_element_wise(quote, values, nothing), values)


def _first_bytes(values: pa.Array) -> np.ndarray:
    """Each text's first byte, 0 for empty and missing ones: the offsets and data buffers read as they are."""
    _, offsets_buffer, data_buffer = values.buffers()
    width = np.dtype(np.int64) if pa.types.is_large_string(values.type) else np.dtype(np.int32)
    offsets: np.ndarray = np.frombuffer(offsets_buffer, dtype=width)[values.offset : values.offset + len(values) + 1]
    firsts = np.zeros(len(values), dtype=np.uint8)
    held = (offsets[1:] > offsets[:-1]) & values.is_valid().to_numpy(zero_copy_only=False)
    if data_buffer is not None and held.any():
        firsts[held] = np.frombuffer(data_buffer, dtype=np.uint8)[offsets[:-1][held]]
    return firsts


def read_chunks(source: IO[bytes], chunk_rows: int = CHUNK_ROWS) -> Iterator[Chunk]:
    """The CSV's rows as text, about ``chunk_rows`` at a time, with their lines in the file.

    Lines are those an editor shows (the header is line 1), line breaks inside quoted cells counted.
    Rows with every cell empty, such as blank lines, are skipped; a file without rows gives one empty
    chunk. :class:`CsvError` when the file is
    not CSV, or a row has more or fewer cells than the header; :class:`InvalidCustomer` when its
    header is not one :func:`check_columns` accepts. Blanks stay empty text: the schema decides what
    a value means, as for JSON.
    """
    header, names = _read_header(source)
    replay = _Replay(header, source)
    categories = {column for column in names if schema.normalise(column) in schema.CATEGORICAL}
    invalid: list[pa_csv.InvalidRow] = []

    def refuse(row: pa_csv.InvalidRow) -> str:
        invalid.append(row)
        return "skip"

    reader = None
    try:
        reader = pa_csv.open_csv(
            replay,
            # One thread: the parser then numbers the rows it refuses, which gives their lines.
            read_options=pa_csv.ReadOptions(use_threads=False, block_size=BLOCK_BYTES),
            parse_options=pa_csv.ParseOptions(
                newlines_in_values=True, ignore_empty_lines=False, invalid_row_handler=refuse
            ),
            convert_options=pa_csv.ConvertOptions(
                column_types={name: _CATEGORY if name in categories else pa.string() for name in names},
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
        if reader.schema.names != names:
            raise CsvError("The header cannot be read the same way twice: check its quotes.")
        chunks = _gathered(_lined(reader, replay, 2 + _breaks(pa.array(names)).sum(), invalid), chunk_rows)
        # The header is judged once the first chunk parses: a file that is not CSV is told so first.
        first = next(chunks, None)
        check_columns(names)
        if first is None:
            # No rows: one empty chunk, so that callers still see the columns.
            yield Chunk(reader.schema.empty_table(), np.zeros(0, dtype=np.int64))
            return
        yield first
        yield from chunks
    except pa.ArrowInvalid as error:
        if replay.failure is not None:
            raise replay.failure from None
        if "invalid UTF8" in str(error):
            raise CsvError("The file is not UTF-8 text.") from None
        raise CsvError(f"The file is not valid CSV: {error}") from None
    finally:
        # A reader left open still reads ahead in a thread of its own: at exit that thread aborts the process.
        if reader is not None:
            reader.close()


def _lined(
    reader: pa_csv.CSVStreamingReader, replay: _Replay, line: int, invalid: list[pa_csv.InvalidRow]
) -> Iterator[Chunk]:
    """The reader's batches with their rows' lines, rows of empty cells dropped; refused at a row of the wrong width."""
    record = 2
    for batch in _batches(reader, replay):
        breaks = _row_breaks(batch) if replay.quoted else np.zeros(batch.num_rows, dtype=np.int64)
        ends = np.cumsum(breaks)
        lines = line + np.arange(batch.num_rows) + ends - breaks
        after = line + batch.num_rows + (int(ends[-1]) if batch.num_rows else 0)
        if invalid and (invalid[0].number is None or invalid[0].number <= record + batch.num_rows):
            _refuse(invalid[0], np.append(lines, after), record)
        keep = ~_empty_rows(batch)
        if keep.any():
            yield Chunk(pa.Table.from_batches([batch.filter(pa.array(keep))]), lines[keep])
        record += batch.num_rows
        line = after
    if invalid:
        _refuse(invalid[0], np.array([line]), record)


def _batches(reader: pa_csv.CSVStreamingReader, replay: _Replay) -> Iterator[pa.RecordBatch]:
    # The parser reports a failure to read as a parse error; _Replay keeps the real one, such as the
    # KeyboardInterrupt of a Ctrl-C while waiting for standard input.
    try:
        yield from reader
    except pa.ArrowException:
        if replay.failure is not None:
            raise replay.failure from None
        raise


def _refuse(row: pa_csv.InvalidRow, lines: np.ndarray, record: int) -> None:
    """Refuse the file at ``row``, which comes at ``lines[row.number - record]`` (the lines of rows from ``record``)."""
    where = "" if row.number is None else f" on line {lines[min(row.number - record, len(lines) - 1)]}"
    raise CsvError(
        f"The file is not valid CSV: the row{where} has {row.actual_columns} cells where the header has "
        f"{row.expected_columns}."
    )


def _gathered(chunks: Iterator[Chunk], rows: int) -> Iterator[Chunk]:
    """``chunks`` regrouped into chunks of ``rows`` rows, the last one perhaps shorter."""
    held: list[Chunk] = []
    count = 0
    for chunk in chunks:
        held.append(chunk)
        count += chunk.table.num_rows
        while count >= rows:
            whole = _joined(held)
            yield Chunk(whole.table.slice(0, rows), whole.lines[:rows])
            held = [Chunk(whole.table.slice(rows), whole.lines[rows:])]
            count -= rows
    if count:
        yield _joined(held)


def _joined(chunks: list[Chunk]) -> Chunk:
    if len(chunks) == 1:
        return chunks[0]
    return Chunk(
        pa.concat_tables([chunk.table for chunk in chunks]).combine_chunks(), np.concatenate([c.lines for c in chunks])
    )


class _Replay(io.RawIOBase):
    """The bytes already read for the header, then the rest of ``source``: the whole file, for the parser.

    ``quoted`` tells whether a quote has been read, without which no cell can span lines; ``failure``
    keeps an error in reading ``source``, which the parser would report as its own.
    """

    def __init__(self, head: bytes, source: IO[bytes]) -> None:
        self.head = memoryview(head)
        self.source = source
        self.failure: BaseException | None = None
        self.quoted = b'"' in head

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
        self.quoted = self.quoted or b'"' in data
        buffer[: len(data)] = data
        return len(data)


def _read_header(source: IO[bytes]) -> tuple[bytes, list[str]]:
    """The header's bytes and its column names, read by the csv module, which keeps names given twice."""
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


def _breaks(values: pa.Array) -> np.ndarray:
    """How many line breaks each text holds: CR LF, CR or LF."""
    counts = [pc.count_substring(values, text).to_numpy(zero_copy_only=False) for text in ("\n", "\r", "\r\n")]
    return counts[0] + counts[1] - counts[2]


def _row_breaks(batch: pa.RecordBatch) -> np.ndarray:
    """How many line breaks each row's cells hold (a quoted cell can span lines)."""
    total = np.zeros(batch.num_rows, dtype=np.int64)
    for values in batch.columns:
        if pa.types.is_dictionary(values.type):
            total += _breaks(values.dictionary)[values.indices.to_numpy(zero_copy_only=False)]
        else:
            total += _breaks(values)
    return total


def _empty_rows(batch: pa.RecordBatch) -> np.ndarray:
    """Which rows have nothing in any cell: blank lines, or lines of separators only."""
    empty = np.ones(batch.num_rows, dtype=bool)
    for values in batch.columns:
        empty &= pc.equal(values.cast(pa.string()) if pa.types.is_dictionary(values.type) else values, "").to_numpy(
            zero_copy_only=False
        )
        if not empty.any():
            break
    return empty


def read_csv(source: IO[bytes], chunk_rows: int = CHUNK_ROWS) -> Iterator[pd.DataFrame]:
    """:func:`read_chunks` as DataFrames of text, each indexed by its rows' lines in the file."""
    for chunk in read_chunks(source, chunk_rows):
        table = pa.table(
            {name: _plain(values) for name, values in zip(chunk.table.column_names, chunk.table.columns, strict=True)}
        )
        yield table.to_pandas().set_axis(pd.Index(chunk.lines))


def _plain(values: pa.ChunkedArray) -> pa.ChunkedArray:
    """Categories read as dictionaries, as text again."""
    return values.cast(pa.string()) if pa.types.is_dictionary(values.type) else values


def escape_formulas(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` with :func:`escape_text` applied to every text cell and column name."""
    escaped = {}
    for column in frame.columns:
        values = frame[column]
        if isinstance(values.dtype, pd.StringDtype) or values.dtype == object:
            text = pa.array(values, from_pandas=True)
            if pa.types.is_string(text.type) or pa.types.is_large_string(text.type):
                escaped[column] = pd.Series(
                    escape_text(text.cast(pa.string())).to_numpy(zero_copy_only=False),
                    index=frame.index,
                    dtype=values.dtype,
                )
    names = escape_text(pa.array([str(column) for column in frame.columns], pa.string())).to_pylist()
    return frame.assign(**escaped).set_axis(names, axis=1)


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

    def rejects(self) -> pd.DataFrame:
        """The rejected rows, after their ``line`` and ``errors``."""
        errors = self.columns.errors(self.bad).to_pylist()
        where = pd.DataFrame({"line": self.lines[self.bad], "errors": errors}, index=self.written.index[self.bad])
        return pd.concat([where, self.written.iloc[self.bad]], axis=1)

    @cached_property
    def problems(self) -> list[Problem]:
        """Each bad value as a :class:`Problem` with its record's index in the file and its line."""
        return [
            problem.at(problem.index + self.start, int(self.lines[problem.index]))  # type: ignore[operator]
            for problem in self.columns.problems()
        ]


def score_frame(
    model: ChurnModel,
    frame: pd.DataFrame,
    threshold: float,
    start: int = 0,
    *,
    escape: bool = True,
    explainer: Explainer | None = None,
) -> ScoredFrame:
    """Score every valid row of ``frame``, a chunk from :func:`read_csv` whose first row is record ``start``.

    With ``escape``, text a spreadsheet would run as a formula is neutralised (:func:`escape_formulas`);
    with ``explainer``, each scored row gets the :data:`~churn.explain.SUMMARY_COLUMNS` after its scores.
    """
    columns = clean_frame(frame)
    probabilities = model.scorer.score_columns(columns.codes, columns.numbers)
    valid = ~columns.rejected
    renamed = frame.rename(columns=label_renames(frame.columns))
    written = escape_formulas(renamed) if escape else renamed
    scored = written[valid].assign(
        **{PROBABILITY_COLUMN: probabilities[valid], PREDICTION_COLUMN: probabilities[valid] >= threshold}
    )
    if explainer is not None:
        rows = np.flatnonzero(valid)
        scored = scored.assign(**explainer.summarise(columns.customers(rows), probabilities[rows].tolist()))
    return ScoredFrame(scored, written, columns, frame.index.to_numpy(), start)
