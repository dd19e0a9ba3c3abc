"""Scoring files: the CLI and the library under it, chunk by chunk, with rejects by line."""

import csv
import io
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest

import predict_file
from churn import schema
from churn.csv_files import CsvError, read_csv, score_csv
from churn.errors import InvalidCustomer
from churn.settings import PROJECT_DIR
from churn.training import DATA_FILE


@pytest.fixture(scope="module")
def telco_rows():
    with DATA_FILE.open(newline="") as stream:
        return list(csv.DictReader(stream))


def expected_scores(model, rows):
    return np.array(model.predict_proba([schema.clean_customer(row) for row in rows]))


def write_csv(path, rows):
    pd.DataFrame(rows).to_csv(path, index=False)
    return path


def score_bytes(model, data, chunk_rows=1000):
    output, rejects = io.StringIO(), io.StringIO()
    summary = score_csv(model, io.BytesIO(data), output, rejects, 0.5, chunk_rows=chunk_rows)
    output.seek(0)
    rejects.seek(0)
    scored = pd.read_csv(output, dtype=str, keep_default_na=False) if output.getvalue() else None
    rejected = pd.read_csv(rejects, dtype=str, keep_default_na=False) if rejects.getvalue() else None
    return summary, scored, rejected


def test_whole_telco_file_in_chunks_keeps_columns_and_matches_the_api(model, telco_rows):
    summary, scored, rejected = score_bytes(model, DATA_FILE.read_bytes(), chunk_rows=1000)
    assert (summary.rows, summary.scored, summary.rejected) == (7043, 7043, 0)
    assert rejected is None
    assert list(scored.columns) == [*telco_rows[0], "churn_probability", "churn"]
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
    assert list(rejected.columns) == ["line", "errors", *rows[0]]
    assert scored["customerID"].tolist() == [row["customerID"] for i, row in enumerate(rows) if i not in (3, 7)]


def test_missing_column_refuses_the_file_before_writing(model, telco_rows):
    data = pd.DataFrame(telco_rows[:5]).drop(columns="TotalCharges").to_csv(index=False).encode()
    output = io.StringIO()
    with pytest.raises(InvalidCustomer, match="totalcharges: is required"):
        score_csv(model, io.BytesIO(data), output, io.StringIO(), 0.5)
    assert output.getvalue() == ""


def test_output_column_clash_is_refused(model, telco_rows):
    data = pd.DataFrame(telco_rows[:5]).assign(churn="x").to_csv(index=False).encode()
    with pytest.raises(InvalidCustomer, match="churn: is a column the output adds"):
        score_csv(model, io.BytesIO(data), io.StringIO(), io.StringIO(), 0.5)


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "The file is empty"),
        (b"a,b\n1,2\n3,4,5\n", "Expected 2 fields in line 3, saw 3"),
        ("gender\nfemale\n".encode("utf-16"), "not UTF-8"),
    ],
)
def test_unreadable_files(data, message):
    with pytest.raises(CsvError, match=message):
        list(read_csv(io.BytesIO(data)))


def test_cli_writes_complete_outputs_and_says_what_it_did(tmp_path, telco_rows, model):
    rows = [dict(row) for row in telco_rows[:50]]
    rows[10]["PaymentMethod"] = "Cash"
    source = write_csv(tmp_path / "customers.csv", rows)
    result = subprocess.run(
        [sys.executable, "predict_file.py", str(source), "--chunk-rows", "16"],
        cwd=PROJECT_DIR,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == predict_file.EXIT_REJECTS
    assert "49 of 50 rows scored into" in result.stderr
    assert f"1 rows rejected: see {tmp_path / 'customers-rejects.csv'}" in result.stderr
    scored = pd.read_csv(tmp_path / "customers-scored.csv")
    assert len(scored) == 49
    assert pd.read_csv(tmp_path / "customers-rejects.csv")["line"].tolist() == [12]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "customers-rejects.csv",
        "customers-scored.csv",
        "customers.csv",
    ]


def test_cli_all_good_exits_0_and_writes_no_rejects(tmp_path, telco_rows):
    source = write_csv(tmp_path / "in.csv", telco_rows[:20])
    (tmp_path / "in-rejects.csv").write_text("line,errors\n5,from an earlier run\n")
    assert predict_file.main([str(source), "-o", str(tmp_path / "out.csv")]) == 0
    assert len(pd.read_csv(tmp_path / "out.csv")) == 20
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.csv", "out.csv"]


def test_cli_refused_file_exits_1_and_leaves_nothing(tmp_path, telco_rows, capsys):
    source = write_csv(tmp_path / "in.csv", [{"gender": "Female"}])
    assert predict_file.main([str(source)]) == 1
    assert "error: cannot score" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["in.csv"]


def test_cli_shows_progress_on_a_terminal(tmp_path, telco_rows, monkeypatch, capsys):
    source = write_csv(tmp_path / "in.csv", telco_rows[:100])
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    monkeypatch.setattr(predict_file.Progress, "__init__", _eager_progress(predict_file.Progress.__init__))
    assert predict_file.main([str(source), "--chunk-rows", "30"]) == 0
    err = capsys.readouterr().err
    # Small files are read whole at once, so the share is 100% at once; the rows go up by chunk.
    assert "\rin.csv: 100%  30 rows" in err
    assert "\rin.csv: 100%  100 rows" in err


def _eager_progress(init):
    def eager(self, source, stream, every=0.2):
        init(self, source, stream, every=0.0)

    return eager
