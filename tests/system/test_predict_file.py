"""predict_file.py as users run it: a real process, real files, pipes and signals."""

import io
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pyarrow.parquet as pq
import pytest

from churn.settings import PROJECT_DIR
from churn.training import DATA_FILE

SCRIPT = str(PROJECT_DIR / "predict_file.py")


@pytest.fixture(scope="module")
def telco():
    return pd.read_csv(DATA_FILE, dtype=str, keep_default_na=False)


def run(*args, stdin=None, cwd=None):
    return subprocess.run(
        [sys.executable, SCRIPT, *map(str, args)],
        cwd=cwd or PROJECT_DIR,
        input=stdin,
        capture_output=True,
        timeout=120,
    )


def err(result):
    return result.stderr.decode()


def write(path, frame):
    frame.to_csv(path, index=False)
    return path


def names(folder):
    return sorted(path.name for path in folder.iterdir())


def test_some_rows_rejected_exits_3_with_complete_outputs_and_counted_words(tmp_path, telco):
    frame = telco.head(50).copy()
    frame.loc[10, "PaymentMethod"] = "Cash"
    frame.loc[20, "customerID"] = "=HYPERLINK(1)"
    source = write(tmp_path / "customers.csv", frame)
    result = run(source, "--chunk-rows", "16")
    assert result.returncode == 3
    assert "49 of 50 rows scored into" in err(result)
    assert f"1 row rejected: see {tmp_path / 'customers-rejects.csv'}" in err(result)
    assert "the input's Churn column is kept as churn_actual" in err(result)
    scored = pd.read_csv(tmp_path / "customers-scored.csv", dtype=str, keep_default_na=False)
    assert len(scored) == 49
    assert scored["churn_actual"].tolist() == frame["Churn"].drop(index=10).tolist()
    assert "'=HYPERLINK(1)" in scored["customerID"].tolist()
    assert pd.read_csv(tmp_path / "customers-rejects.csv")["line"].tolist() == [12]
    assert names(tmp_path) == ["customers-rejects.csv", "customers-scored.csv", "customers.csv"]


def test_all_good_exits_0_removes_an_earlier_rejects_file_and_can_keep_formulas(tmp_path, telco):
    frame = telco.head(20).assign(customerID="=1+1")
    source = write(tmp_path / "in.csv", frame)
    (tmp_path / "in-rejects.csv").write_text("line,errors\n5,from an earlier run\n")
    result = run(source, "-o", tmp_path / "out.csv", "--no-escape-formulas")
    assert result.returncode == 0, err(result)
    assert pd.read_csv(tmp_path / "out.csv")["customerID"].tolist() == ["=1+1"] * 20
    assert names(tmp_path) == ["in.csv", "out.csv"]


def test_every_row_rejected_exits_1_with_the_rejects_and_an_empty_output(tmp_path, telco):
    source = write(tmp_path / "in.csv", telco.head(3).assign(gender="x"))
    (tmp_path / "in-scored.csv").write_text("from an earlier run\n")
    result = run(source)
    assert result.returncode == 1
    assert "0 of 3 rows scored" in err(result)
    assert "3 rows rejected" in err(result)
    assert pd.read_csv(tmp_path / "in-scored.csv").empty
    assert len(pd.read_csv(tmp_path / "in-rejects.csv")) == 3


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda frame: frame.drop(columns="tenure"), "tenure: is required"),
        (lambda frame: frame.head(0), "The file has a header but no rows"),
    ],
)
def test_a_refused_file_exits_1_writes_nothing_and_names_earlier_outputs(tmp_path, telco, edit, message):
    source = write(tmp_path / "in.csv", edit(telco.head(5)))
    (tmp_path / "in-scored.csv").write_text("from an earlier run\n")
    result = run(source)
    assert result.returncode == 1
    lines = err(result).splitlines()
    assert len(lines) == 1
    assert message in lines[0]
    assert "nothing was written; " in lines[0]
    assert "in-scored.csv is from an earlier run" in lines[0]
    assert (tmp_path / "in-scored.csv").read_text() == "from an earlier run\n"
    assert names(tmp_path) == ["in-scored.csv", "in.csv"]


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (["in.csv", "--rejects", "in.csv"], "the input and the rejects are the same file"),
        (["in.csv", "-o", "./in.csv"], "the input and the output are the same file"),
        (["in.csv", "-o", "x.csv", "--rejects", "x.csv"], "the output and the rejects are the same file"),
        (["in.csv", "-o", "link.csv"], "the input and the output are the same file"),
        (["in.csv", "--rejects", "hard.csv"], "the input (in.csv) and the rejects (hard.csv) are the same file"),
        (["in.csv", "-o", "-", "--rejects", "-"], "cannot both be standard output"),
    ],
)
def test_one_file_in_two_roles_is_refused_and_nothing_is_touched(tmp_path, telco, arguments, message):
    source = write(tmp_path / "in.csv", telco.head(5))
    (tmp_path / "link.csv").symlink_to(source)
    os.link(source, tmp_path / "hard.csv")
    before = source.read_bytes()
    result = run(*arguments, cwd=tmp_path)
    assert result.returncode == 2
    assert message in err(result)
    assert source.read_bytes() == before
    assert names(tmp_path) == ["hard.csv", "in.csv", "link.csv"]


def test_standard_input_redirected_from_the_output_file_is_refused(tmp_path, telco):
    source = write(tmp_path / "in.csv", telco.head(5))
    with source.open("rb") as stdin:
        result = subprocess.run(
            [sys.executable, SCRIPT, "-", "-o", str(source)], stdin=stdin, capture_output=True, timeout=120
        )
    assert result.returncode == 2
    assert "the input (standard input) and the output" in err(result)


@pytest.mark.parametrize("threshold", ["2", "nan", "-1", "abc"])
def test_a_threshold_that_is_not_a_probability_is_refused_in_the_services_words(tmp_path, threshold):
    result = run("in.csv", "--threshold", threshold, cwd=tmp_path)
    assert result.returncode == 2
    expected = "could not convert" if threshold == "abc" else "must be between 0 and 1"
    assert f"argument --threshold: {threshold!r} is not valid: {expected}" in err(result)


def test_a_directory_is_refused_in_one_line(tmp_path):
    result = run(".", cwd=tmp_path)
    assert result.returncode == 2
    assert err(result).splitlines()[-1] == "predict_file.py: error: . is a directory: name a CSV or Parquet file"
    assert "Traceback" not in err(result)


def test_dash_reads_standard_input_and_writes_standard_output(tmp_path, telco):
    frame = telco.head(5).copy()
    frame.loc[2, "tenure"] = "-3"
    result = run("-", "-o", "-", "--rejects", tmp_path / "bad.csv", stdin=frame.to_csv(index=False).encode())
    assert result.returncode == 3, err(result)
    lines = result.stdout.decode().splitlines()
    assert lines[0].endswith('"churn_actual","churn_probability","churn","model_sha256","threshold"')
    assert len(lines) == 5
    assert "4 of 5 rows scored into standard output" in err(result)
    assert pd.read_csv(tmp_path / "bad.csv")["line"].tolist() == [4]
    assert not (PROJECT_DIR / "-").exists()


def test_help_is_plain_text_with_defaults_and_exit_codes():
    result = run("--help")
    assert result.returncode == 0
    text = result.stdout.decode()
    assert "130  interrupted by Ctrl-C" in text
    text = " ".join(text.split())
    assert "``" not in text
    assert "(default: 50000)" in text
    assert "(default: INPUT-scored.csv or .parquet beside the input" in text.replace("- ", "-")
    assert "CHURN_THRESHOLD, or 0.5" in text


@pytest.mark.parametrize(("signum", "status"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_stops_the_run_in_one_line_and_removes_partial_files(tmp_path, telco, signum, status):
    process = subprocess.Popen(
        [sys.executable, SCRIPT, "-", "-o", str(tmp_path / "out.csv"), "--rejects", str(tmp_path / "bad.csv")],
        stdin=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    # Half a file: the run waits for the rest with its partial outputs open.
    process.stdin.write(telco.head(100).to_csv(index=False).encode())
    process.stdin.flush()
    deadline = time.monotonic() + 60
    while len(list(tmp_path.iterdir())) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(list(tmp_path.iterdir())) == 2, "the run never started its outputs"
    process.send_signal(signum)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == status
    assert stderr.decode().splitlines() == [f"interrupted by {signal.Signals(signum).name}: no output file was written"]
    assert names(tmp_path) == []


def test_parquet_in_gives_parquet_out_that_names_the_model(tmp_path, telco):
    frame = telco.head(30).copy()
    frame.loc[4, "Contract"] = "Three year"
    frame.to_parquet(tmp_path / "in.parquet", index=False)
    result = run(tmp_path / "in.parquet", "--threshold", "0.3")
    assert result.returncode == 3, err(result)
    scored = pq.read_table(tmp_path / "in-scored.parquet")
    assert scored.num_rows == 29
    assert scored.schema.metadata[b"churn.threshold"] == b"0.3"
    assert len(scored.schema.metadata[b"churn.model_sha256"]) == 64
    assert pq.read_table(tmp_path / "in-rejects.parquet").column("row").to_pylist() == [5]


def test_parquet_from_standard_input_to_csv_on_standard_output(tmp_path, telco):
    buffer = io.BytesIO()
    telco.head(10).to_parquet(buffer, index=False)
    result = run("-", "--format", "parquet", "-o", "-", "--output-format", "csv", stdin=buffer.getvalue(), cwd=tmp_path)
    assert result.returncode == 0, err(result)
    scored = pd.read_csv(io.BytesIO(result.stdout), dtype=str)
    assert scored["customerID"].tolist() == telco["customerID"].head(10).tolist()
    assert names(tmp_path) == []


def test_explain_adds_the_reasons_and_best_action_to_parquet_and_csv(tmp_path, telco):
    frame = telco.head(30).copy()
    frame.loc[4, "Contract"] = "Three year"
    frame.to_parquet(tmp_path / "in.parquet", index=False)
    result = run(tmp_path / "in.parquet", "--explain")
    assert result.returncode == 3, err(result)
    scored = pq.read_table(tmp_path / "in-scored.parquet").to_pandas()
    assert scored.columns[-5:].tolist() == ["churn", "reason_1", "reason_2", "reason_3", "best_action"]
    # The first customer: one month in, month-to-month, paying by electronic check.
    first = scored.iloc[0]
    assert first["reason_1"].startswith("tenure=1 (+")
    assert first["best_action"].startswith("contract -> two_year: ")
    assert scored["reason_1"].str.match(r"^[a-z]+=\S.* \([+-]\d+\.\d\d\)$").all()
    assert "reason_1" not in pq.read_table(tmp_path / "in-rejects.parquet").column_names
    plain = run(tmp_path / "in.parquet", "-o", tmp_path / "plain.csv")
    assert "reason_1" not in pd.read_csv(tmp_path / "plain.csv").columns, err(plain)
    assert "--explain" in run("--help").stdout.decode()
