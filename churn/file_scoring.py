"""Scoring files of customers, CSV or Parquet, chunk by chunk: memory stays bounded whatever the file's size.

Each chunk is cleaned by :mod:`churn.columns` (the API's rule) and scored by the compiled tables
without leaving Arrow; the valid rows go to the output with ``churn_probability`` and ``churn``
appended, the others to the rejects with their line and errors, built for all of them at once.
Scored files say which model made them: Parquet in its file metadata, CSV in two columns.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import cached_property
from typing import IO, TYPE_CHECKING

import numpy as np
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

from churn.columns import Columns, clean_arrays, feature_columns
from churn.csv_files import (
    CHUNK_ROWS,
    MODEL_COLUMN,
    PREDICTION_COLUMN,
    PROBABILITY_COLUMN,
    THRESHOLD_COLUMN,
    Chunk,
    CsvError,
    FileError,
    check_columns,
    escape_text,
    label_renames,
    read_chunks,
)

if TYPE_CHECKING:
    from churn.explain import Explainer
    from churn.model import ChurnModel

FORMATS = ("csv", "parquet")
PARQUET_SUFFIXES = (".parquet", ".pq")
# The same, as a scored Parquet file's metadata keys.
MODEL_KEY, THRESHOLD_KEY = b"churn.model_sha256", b"churn.threshold"
ERRORS_COLUMN = "errors"
REJECT_ROWS = 10_000
# CSV writes churn as pandas did and the course's readers expect; Parquet keeps it boolean.
_VERDICTS = pa.array(["False", "True"])


def file_format(name: str) -> str:
    """``parquet`` for a name ending in ``.parquet`` or ``.pq`` (any case), else ``csv``."""
    return "parquet" if name.lower().endswith(PARQUET_SUFFIXES) else "csv"


@dataclass
class Summary:
    """What a run did: rows read, scored and rejected, and the input columns kept under another name."""

    rows: int = 0
    scored: int = 0
    rejected: int = 0
    renamed: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Formats:
    """How each file is written: ``csv`` or ``parquet``; text a spreadsheet would run is escaped in CSV (``escape``)."""

    input: str = "csv"
    output: str = "csv"
    rejects: str = "csv"
    escape: bool = True


def read_parquet(source: IO[bytes], chunk_rows: int = CHUNK_ROWS) -> Iterator[Chunk]:
    """The Parquet file's rows as stored, ``chunk_rows`` at a time, with their positions in the file from 1."""
    try:
        parquet = pq.ParquetFile(source)
    except (pa.ArrowException, OSError) as error:
        raise FileError(f"The file is not Parquet: {error}") from None
    check_columns(parquet.schema_arrow.names)
    start = 1
    try:
        for batch in parquet.iter_batches(batch_size=chunk_rows):
            yield Chunk(pa.Table.from_batches([batch]), np.arange(start, start + batch.num_rows))
            start += batch.num_rows
    except pa.ArrowException as error:
        raise FileError(f"The Parquet file cannot be read: {error}") from None


class TableWriter:
    """Chunks of one table to a CSV or Parquet stream; the header (or schema) is written with the first chunk."""

    def __init__(self, stream: IO[bytes], kind: str, metadata: dict[bytes, bytes] | None = None) -> None:
        self.stream = stream
        self.kind = kind
        self.metadata = metadata
        self.writer: pa_csv.CSVWriter | pq.ParquetWriter | None = None

    def write(self, table: pa.Table) -> None:
        """Append ``table``'s rows."""
        if self.writer is None:
            schema = table.schema.with_metadata(self.metadata) if self.metadata else table.schema
            if self.kind == "parquet":
                self.writer = pq.ParquetWriter(self.stream, schema)
            else:
                # Strings are always quoted, which also keeps a lone carriage return from ending a row.
                self.writer = pa_csv.CSVWriter(
                    self.stream, schema, write_options=pa_csv.WriteOptions(quoting_style="needed")
                )
        self.writer.write_table(table)

    def close(self) -> None:
        """Finish the file (Parquet writes its footer); nothing at all if nothing was written."""
        if self.writer is not None:
            self.writer.close()


@dataclass(frozen=True)
class ScoredChunk:
    """A chunk's valid rows with their scores, ready to write, and what its rejected rows need."""

    scored: pa.Table
    chunk: Chunk
    columns: Columns
    renames: dict[str, str]
    formats: Formats
    position: str

    @cached_property
    def bad(self) -> np.ndarray:
        """The positions of the rejected rows."""
        return np.flatnonzero(self.columns.rejected)

    def rejects(self, first: int, count: int) -> pa.Table:
        """Rejected rows ``first`` to ``first + count``, after their line (or row) and errors, ready to write."""
        bad = self.bad[first : first + count]
        table = _written(self.chunk.table.take(pa.array(bad)), self.renames, self.formats.rejects, self.formats.escape)
        table = table.add_column(0, ERRORS_COLUMN, self.columns.errors(bad))
        return table.add_column(0, self.position, pa.array(self.chunk.lines[bad]))


def score_chunk(
    model: ChurnModel,
    chunk: Chunk,
    threshold: float,
    formats: Formats,
    position: str,
    explainer: Explainer | None = None,
) -> ScoredChunk:
    """Clean and score ``chunk``; ``position`` names the rejects' first column (``line`` or ``row``).

    With ``explainer``, each scored row gets the :data:`~churn.explain.SUMMARY_COLUMNS` after its scores.
    """
    table = chunk.table
    features = feature_columns(table.column_names)
    columns = clean_arrays({name: table.column(column).combine_chunks() for name, column in features.items()})
    probabilities = model.scorer.score_columns(columns.codes, columns.numbers)
    renames = label_renames(table.column_names)
    if columns.rejected.any():
        valid = ~columns.rejected
        table, probabilities = table.filter(pa.array(valid)), probabilities[valid]
    scored = _written(table, renames, formats.output, formats.escape)
    decisions = probabilities >= threshold
    scored = scored.append_column(PROBABILITY_COLUMN, pa.array(probabilities)).append_column(
        PREDICTION_COLUMN, _VERDICTS.take(decisions.astype(np.int8)) if formats.output == "csv" else pa.array(decisions)
    )
    if explainer is not None:
        summary = explainer.summarise(columns.customers(np.flatnonzero(~columns.rejected)), probabilities.tolist())
        for name, texts in summary.items():
            scored = scored.append_column(name, pa.array(texts, pa.string()))
    if formats.output == "csv":
        sha256 = str(model.metadata["model_sha256"])
        scored = scored.append_column(MODEL_COLUMN, pa.repeat(pa.scalar(sha256), len(decisions)))
        scored = scored.append_column(THRESHOLD_COLUMN, pa.repeat(pa.scalar(threshold), len(decisions)))
    return ScoredChunk(scored, chunk, columns, renames, formats, position)


def _written(table: pa.Table, renames: dict[str, str], kind: str, escape: bool) -> pa.Table:
    """The input's columns as a file of ``kind`` holds them: labels renamed; text escaped in CSV; categories as text."""
    names = [renames.get(name, name) for name in table.column_names]
    if kind == "csv" and escape:
        return pa.table([escape_text(values.combine_chunks()) for values in table.columns], names=_escaped(names))
    plain = [values.cast(pa.string()) if pa.types.is_dictionary(values.type) else values for values in table.columns]
    return pa.table(plain, names=names)


def _escaped(names: list[str]) -> list[str]:
    return escape_text(pa.array(names, pa.string())).to_pylist()


def score_file(
    model: ChurnModel,
    source: IO[bytes],
    output: IO[bytes],
    rejects: IO[bytes],
    threshold: float,
    formats: Formats = Formats(),
    chunk_rows: int = CHUNK_ROWS,
    progress: Callable[[int], None] | None = None,
    explainer: Explainer | None = None,
) -> Summary:
    """Score the file in ``source`` into ``output``, writing its bad rows to ``rejects``.

    Output rows keep every input column, in order, with ``churn_probability`` and ``churn``
    appended; rejected rows keep theirs too, after their ``line`` (``row`` for Parquet) and
    ``errors``. With ``explainer``, scored rows also get :func:`churn.explain.summary_columns`'s
    reasons and best action. ``progress`` is called with the number of rows read so far after each
    chunk. The output gets its header even when no row is valid; ``rejects`` gets nothing unless a row is bad.
    A file with a header but no rows is refused (:class:`CsvError`) before anything is written.
    """
    chunks = read_parquet(source, chunk_rows) if formats.input == "parquet" else read_chunks(source, chunk_rows)
    metadata = {MODEL_KEY: str(model.metadata["model_sha256"]).encode(), THRESHOLD_KEY: repr(threshold).encode()}
    scored = TableWriter(output, formats.output, metadata)
    rejected = TableWriter(rejects, formats.rejects, metadata)
    position = "row" if formats.input == "parquet" else "line"
    summary = Summary()
    # The scored rows are written beside the reading and scoring of the next chunk, as Arrow lets go of the
    # GIL for both; one write at a time keeps them in order and memory to two chunks. Rejects are written
    # here: a rejected row's errors take some ten times the memory of its cells, so they are built a
    # slice at a time, and not while the next chunk's are.
    writing: Future[None] | None = None
    try:
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="churn-writer") as writer:
            for chunk in chunks:
                if not chunk.table.num_rows:
                    continue
                summary.renamed = label_renames(chunk.table.column_names)
                result = score_chunk(model, chunk, threshold, formats, position, explainer)
                if writing is not None:
                    writing.result()
                # Written even when empty: a file of rejected rows still gets a scored file with its header.
                writing = writer.submit(scored.write, result.scored)
                for first in range(0, len(result.bad), REJECT_ROWS):
                    rejected.write(result.rejects(first, REJECT_ROWS))
                summary.rows += chunk.table.num_rows
                summary.scored += result.scored.num_rows
                summary.rejected += len(result.bad)
                if progress is not None:
                    progress(summary.rows)
            if writing is not None:
                writing.result()
    finally:
        scored.close()
        rejected.close()
    if summary.rows == 0:
        raise CsvError("The file has a header but no rows: it needs at least one customer.")
    return summary
