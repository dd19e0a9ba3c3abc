"""Scoring files chunk by chunk: rejects by line, refused headers, kept labels, neutralised formulas, Parquet."""

import csv
import io

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest

from churn import schema
from churn.csv_files import HEADER_LIMIT, CsvError, escape_formulas, read_csv
from churn.errors import InvalidCustomer
from churn.file_scoring import MODEL_KEY, THRESHOLD_KEY, Formats, score_file
from churn.training import DATA_FILE


@pytest.fixture(scope="module")
def telco_rows():
    with DATA_FILE.open(newline="") as stream:
        return list(csv.DictReader(stream))


def expected_scores(model, rows):
    return np.array(model.predict_proba([schema.clean_customer(row) for row in rows]))


def to_bytes(rows, quoting=csv.QUOTE_MINIMAL):
    return pd.DataFrame(rows).to_csv(index=False, quoting=quoting).encode()


def score_bytes(model, data, chunk_rows=1000, escape=True):
    output, rejects = io.BytesIO(), io.BytesIO()
    formats = Formats(escape=escape)
    summary = score_file(model, io.BytesIO(data), output, rejects, 0.5, formats, chunk_rows=chunk_rows)
    output.seek(0)
    rejects.seek(0)
    scored = pd.read_csv(output, dtype=str, keep_default_na=False) if output.getvalue() else None
    rejected = pd.read_csv(rejects, dtype=str, keep_default_na=False) if rejects.getvalue() else None
    return summary, scored, rejected


def test_whole_telco_file_in_chunks_keeps_columns_and_matches_the_api(model, telco_rows):
    summary, scored, rejected = score_bytes(model, DATA_FILE.read_bytes(), chunk_rows=1000)
    assert (summary.rows, summary.scored, summary.rejected) == (7043, 7043, 0)
    assert rejected is None
    columns = [name if name != "Churn" else "churn_actual" for name in telco_rows[0]]
    assert list(scored.columns) == [*columns, "churn_probability", "churn", "model_sha256", "threshold"]
    assert set(scored["model_sha256"]) == {model.metadata["model_sha256"]}
    assert set(scored["threshold"]) == {"0.5"}
    assert summary.renamed == {"Churn": "churn_actual"}
    assert scored["churn_actual"].tolist() == [row["Churn"] for row in telco_rows]
    assert scored["customerID"].tolist() == [row["customerID"] for row in telco_rows]
    probabilities = scored["churn_probability"].astype(float).to_numpy()
    # Written with every digit: reading the file back gives the very floats.
    assert np.max(np.abs(probabilities - expected_scores(model, telco_rows))) <= 1e-12
    assert scored["churn"].tolist() == ["True" if p >= 0.5 else "False" for p in probabilities]


def test_course_spelling_scores_the_same(model, telco_rows):
    rows = [{schema.normalise(k): schema.normalise(v) for k, v in row.items()} for row in telco_rows[:300]]
    for row in rows:
        row["churn_actual"] = row.pop("churn")
    data = pd.DataFrame(rows).to_csv(index=False).encode()
    _, scored, _ = score_bytes(model, data, chunk_rows=128)
    assert np.max(np.abs(scored["churn_probability"].astype(float) - expected_scores(model, telco_rows[:300]))) < 1e-12


def test_bad_rows_go_to_rejects_with_their_lines_and_the_rest_is_scored(model, telco_rows):
    rows = [dict(row) for row in telco_rows[:10]]
    rows[3]["Contract"] = "Three year"
    rows[7]["tenure"] = "-1"
    rows[7]["gender"] = ""
    summary, scored, rejected = score_bytes(model, pd.DataFrame(rows).to_csv(index=False).encode(), chunk_rows=4)
    assert (summary.rows, summary.scored, summary.rejected) == (10, 8, 2)
    assert rejected["line"].tolist() == ["5", "9"]
    assert rejected["customerID"].tolist() == [rows[3]["customerID"], rows[7]["customerID"]]
    assert "contract: 'Three year' is not one of the allowed values" in rejected["errors"][0]
    assert (
        rejected["errors"][1] == "gender: '' is not one of the allowed values; tenure: must not be negative, got '-1'"
    )
    assert list(rejected.columns) == ["line", "errors", *list(rows[0])[:-1], "churn_actual"]
    assert scored["customerID"].tolist() == [row["customerID"] for i, row in enumerate(rows) if i not in (3, 7)]


def test_missing_column_refuses_the_file_before_writing(model, telco_rows):
    data = pd.DataFrame(telco_rows[:5]).drop(columns="TotalCharges").to_csv(index=False).encode()
    output = io.BytesIO()
    with pytest.raises(InvalidCustomer, match="totalcharges: is required"):
        score_file(model, io.BytesIO(data), output, io.BytesIO(), 0.5)
    assert output.getvalue() == b""


@pytest.mark.parametrize(
    ("added", "kept_as"), [("CHURN", "churn_actual"), ("Churn_Probability", "churn_probability_input")]
)
def test_columns_the_output_adds_are_kept_under_another_name(model, telco_rows, added, kept_as):
    rows = [{**row, added: "x"} for row in pd.DataFrame(telco_rows[:5]).drop(columns="Churn").to_dict("records")]
    rows[1]["tenure"] = "-"
    summary, scored, rejected = score_bytes(model, to_bytes(rows))
    assert kept_as in summary.renamed.values()
    assert scored[kept_as].tolist() == ["x"] * 4
    assert rejected[kept_as].tolist() == ["x"]
    assert added not in scored.columns


@pytest.mark.parametrize(
    ("names", "field", "message"),
    [
        (["tenure", "tenure"], "tenure", "is given twice (the second time as column 'tenure')"),
        (["Tenure", "tenure"], "tenure", "is given twice (the second time as column 'tenure')"),
        (["note", "note"], "note", "names 2 columns"),
        (["Churn", "churn_actual"], "Churn", "is kept as churn_actual, but another column cleans to"),
        (["Churn", "churn"], "Churn", "is kept as churn_actual, but another column cleans to"),
    ],
)
def test_headers_that_would_lose_a_column_are_refused_naming_it(telco_rows, names, field, message):
    frame = pd.DataFrame(telco_rows[:3]).drop(columns=["tenure", "Churn"])
    header = ",".join([*frame.columns, *names])
    body = "\n".join(",".join([*row, *(["1"] * len(names))]) for row in frame.itertuples(index=False))
    with pytest.raises(InvalidCustomer) as caught:
        list(read_csv(io.BytesIO(f"{header}\n{body}\n".encode())))
    assert any(p.field == field and message in p.message for p in caught.value.problems)


def test_lines_count_line_breaks_in_quoted_cells_and_skip_empty_rows(model, telco_rows):
    rows = [dict(row) for row in telco_rows[:6]]
    rows[0]["customerID"] = "first\nsecond\r\nthird"
    rows[2]["customerID"] = "a,\rb"
    rows[4]["Contract"] = "Three year"
    text = pd.DataFrame(rows).to_csv(index=False)
    lines = text.split("\n")
    # A blank line and a line of separators only, among the rows: skipped, but counted.
    data = "\n".join([*lines[:5], "", "," * 20, *lines[5:]]).encode()
    chunks = list(read_csv(io.BytesIO(data), chunk_rows=2))
    assert [line for chunk in chunks for line in chunk.index] == [2, 5, 8, 10, 11, 12]
    summary, _, rejected = score_bytes(model, data, chunk_rows=2)
    assert (summary.rows, summary.rejected) == (6, 1)
    assert rejected["line"].tolist() == ["11"]
    assert rejected["customerID"].tolist() == [rows[4]["customerID"]]


def test_a_quoted_line_break_in_the_header_counts_too(model, telco_rows):
    rows = [{**row, "note\nmore": "x"} for row in telco_rows[:3]]
    rows[1]["tenure"] = "ten"
    _, scored, rejected = score_bytes(model, to_bytes(rows))
    assert rejected["line"].tolist() == ["4"]
    assert "note\nmore" in scored.columns


FORMULAS = ['=HYPERLINK("http://x","y")', "+1+1", "-1+1", "@SUM(A1)", "\tcmd", "-", "=1"]


def test_cells_a_spreadsheet_would_run_get_a_quote_and_numbers_do_not(model, telco_rows):
    values = [*FORMULAS, "-1.5", "+3", "1e-3", "a=b", " =1"]
    rows = [{**row, "note": value, "=cmd()": "x"} for row, value in zip(telco_rows, values, strict=False)]
    rows[0]["tenure"] = "-1"
    rows[1]["tenure"] = "=1"
    _, scored, rejected = score_bytes(model, to_bytes(rows, csv.QUOTE_ALL))
    assert "'=cmd()" in scored.columns
    assert rejected["note"].tolist() == ["'" + FORMULAS[0], "'" + FORMULAS[1]]
    assert rejected["tenure"].tolist() == ["-1", "'=1"]
    assert rejected["errors"][1] == "tenure: must be a number, not '=1'"
    assert scored["note"].tolist() == ["'" + value for value in FORMULAS[2:]] + ["-1.5", "+3", "1e-3", "a=b", " =1"]


def test_a_carriage_return_first_is_escaped_too():
    frame = pd.DataFrame({"note": ["\rcmd", "x\ry"], "\rname": ["", ""]}, dtype=str)
    escaped = escape_formulas(frame)
    assert list(escaped.columns) == ["note", "'\rname"]
    assert escaped["note"].tolist() == ["'\rcmd", "x\ry"]


def test_escaping_can_be_turned_off(model, telco_rows):
    rows = [{**row, "note": value} for row, value in zip(telco_rows, FORMULAS, strict=False)]
    _, scored, _ = score_bytes(model, to_bytes(rows, csv.QUOTE_ALL), escape=False)
    assert scored["note"].tolist() == FORMULAS


def test_every_row_rejected_leaves_an_output_with_its_header_only(model, telco_rows):
    rows = [{**row, "gender": "x"} for row in telco_rows[:3]]
    summary, scored, rejected = score_bytes(model, to_bytes(rows), chunk_rows=2)
    assert (summary.scored, summary.rejected) == (0, 3)
    assert scored.empty
    assert list(scored.columns)[-4:] == ["churn_probability", "churn", "model_sha256", "threshold"]
    assert rejected["line"].tolist() == ["2", "3", "4"]


def test_header_only_is_refused_before_writing(model, telco_rows):
    output = io.BytesIO()
    data = (",".join(telco_rows[0]) + "\n\n").encode()
    with pytest.raises(CsvError, match="The file has a header but no rows"):
        score_file(model, io.BytesIO(data), output, io.BytesIO(), 0.5)
    assert output.getvalue() == b""


HEADER = ",".join(schema.FEATURES).encode() + b"\n"
ROW = b",".join([b"x"] * len(schema.FEATURES)) + b"\n"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "The file is empty"),
        (HEADER + ROW + ROW[:-1] + b",1\n", "the row on line 3 has 20 cells where the header has 19"),
        (HEADER + b'"1\n2"' + ROW[1:] + b"\n" + ROW[2:], "the row on line 5 has 18 cells where the header has 19"),
        ("gender\nfemale\n".encode("utf-16"), "not UTF-8"),
        (b"gender,\xff\ngender\n", "not UTF-8"),
        (b"a" * HEADER_LIMIT, "The header is longer than"),
        (b'"' + b"a\n" * HEADER_LIMIT, "The header is longer than"),
    ],
)
def test_unreadable_files(data, message):
    with pytest.raises(CsvError, match=message):
        list(read_csv(io.BytesIO(data)))


def test_a_lone_carriage_return_is_quoted_so_the_row_stays_one_row(model, telco_rows):
    rows = [{**row, "note": "a\rb"} for row in telco_rows[:3]]
    output = io.BytesIO()
    score_file(model, io.BytesIO(to_bytes(rows, csv.QUOTE_ALL)), output, io.BytesIO(), 0.5)
    assert b'"a\rb"' in output.getvalue()
    assert pd.read_csv(io.BytesIO(output.getvalue()), dtype=str)["note"].tolist() == ["a\rb"] * 3


def test_parquet_in_and_out_keeps_types_scores_and_says_which_model(model, telco_rows, tmp_path):
    frame = pd.DataFrame(telco_rows[:50]).astype({"tenure": int, "MonthlyCharges": float, "SeniorCitizen": int})
    frame.loc[7, "tenure"] = -1
    frame.to_parquet(tmp_path / "in.parquet", index=False)
    output, rejects = io.BytesIO(), io.BytesIO()
    formats = Formats("parquet", "parquet", "parquet")
    with (tmp_path / "in.parquet").open("rb") as source:
        summary = score_file(model, source, output, rejects, 0.4, formats, chunk_rows=16)
    assert (summary.scored, summary.rejected) == (49, 1)
    scored = pq.read_table(io.BytesIO(output.getvalue()))
    assert scored.schema.metadata[MODEL_KEY].decode() == model.metadata["model_sha256"]
    assert scored.schema.metadata[THRESHOLD_KEY] == b"0.4"
    assert str(scored.schema.field("tenure").type) == "int64"
    assert str(scored.schema.field("churn").type) == "bool"
    good = [row for index, row in enumerate(telco_rows[:50]) if index != 7]
    assert np.max(np.abs(scored["churn_probability"].to_numpy() - expected_scores(model, good))) < 1e-12
    rejected = pq.read_table(io.BytesIO(rejects.getvalue())).to_pylist()
    assert [(row["row"], row["errors"]) for row in rejected] == [(8, "tenure: must not be negative, got -1")]


def test_columns_named_like_the_model_columns_are_kept_under_their_own_names(model, telco_rows):
    rows = [{**row, "model_sha256": "abc", "Threshold": "0.9"} for row in telco_rows[:3]]
    summary, scored, _ = score_bytes(model, to_bytes(rows))
    assert summary.renamed == {
        "Churn": "churn_actual",
        "model_sha256": "model_sha256_input",
        "Threshold": "threshold_input",
    }
    assert scored["model_sha256_input"].tolist() == ["abc"] * 3
    assert scored["threshold_input"].tolist() == ["0.9"] * 3
    assert scored["threshold"].tolist() == ["0.5"] * 3
