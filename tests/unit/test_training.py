"""Training reproduces the course, and refuses data it cannot trust."""

import json
import pickle

import numpy as np
import pytest

import train
from churn import schema
from churn.metadata import file_sha256, metadata_path, runtime_versions
from churn.settings import Settings
from churn.training import DATA_FILE, load_dataset
from tests.helpers.data import COURSE_FEATURES


def test_dataset_cleans_like_the_course(course_frame):
    dataset = load_dataset(DATA_FILE)
    assert len(dataset.customers) == 7043
    assert dataset.churn.sum() == 1869
    assert dataset.customers == course_frame[COURSE_FEATURES].to_dict(orient="records")
    np.testing.assert_array_equal(dataset.churn, course_frame["churn"].to_numpy())


@pytest.fixture(scope="module")
def retrained(tmp_path_factory):
    output = tmp_path_factory.mktemp("model") / "model_C=1.0.bin"
    lines: list[str] = []
    result = train.train(DATA_FILE, output, report=lines.append)
    return output, lines, result


def test_training_prints_the_courses_figures(retrained):
    _, lines, _ = retrained
    assert sum(line.startswith("auc on fold ") for line in lines) == 5
    assert "C=1.0 0.842 +- 0.007" in lines
    assert "auc=0.858" in lines


def test_retraining_gives_the_committed_model(retrained, model, course_frame):
    output, _, result = retrained
    with output.open("rb") as stream:
        vectorizer, regression = pickle.load(stream)
    customers = course_frame[COURSE_FEATURES].to_dict(orient="records")
    expected = model.regression.predict_proba(model.vectorizer.transform(customers))[:, 1]
    np.testing.assert_array_equal(regression.predict_proba(vectorizer.transform(customers))[:, 1], expected)
    assert result.fold_aucs == model.metadata["cv_auc"]["folds"]
    assert result.test_auc == model.metadata["test_auc"]


def test_metadata_records_what_serving_checks(retrained):
    output, _, result = retrained
    metadata = json.loads(metadata_path(output).read_text())
    assert metadata["model_sha256"] == file_sha256(output)
    assert metadata["data"]["sha256"] == file_sha256(DATA_FILE)
    assert metadata["versions"] == runtime_versions()
    assert metadata["rows"] == {"total": 7043, "full_train": 5634, "test": 1409}
    assert metadata["cv_auc"]["mean"] == pytest.approx(np.mean(result.fold_aucs))
    assert metadata["cv_auc"]["std"] == pytest.approx(np.std(result.fold_aucs))
    assert metadata["schema"] == schema.schema_document()
    assert metadata["solver_iterations"]["max_iter"] == 1000
    assert set(metadata["reference"]["numerical"]) == set(schema.NUMERICAL)
    assert metadata["reference"]["rows"] == 5634


def test_retraining_rewrites_the_committed_metadata_byte_for_byte(retrained):
    output, _, _ = retrained
    # No time of day nor duration in it: a retrained model leaves `git status` clean.
    assert metadata_path(output).read_text() == metadata_path(Settings().model_path).read_text()


def test_default_output_is_named_after_c():
    assert str(train.parse_args(["--C", "0.5"]).output) == "model_C=0.5.bin"
    assert str(train.parse_args([]).output) == "model_C=1.0.bin"


@pytest.mark.parametrize("argv", [["--C", "0"], ["--C", "-1"], ["--n-splits", "1"]])
def test_bad_options_are_refused(argv, capsys):
    with pytest.raises(SystemExit) as caught:
        train.parse_args(argv)
    assert caught.value.code == 2


def run_cli(tmp_path, data, capsys) -> tuple[int, str]:
    code = train.main(["--data", str(data), "--output", str(tmp_path / "m.bin")])
    return code, capsys.readouterr().err


def test_missing_data_file(tmp_path, capsys):
    code, err = run_cli(tmp_path, tmp_path / "nope.csv", capsys)
    assert code == 1
    assert "nope.csv not found" in err
    assert not (tmp_path / "m.bin").exists()


def test_file_that_is_not_the_telco_data(tmp_path, capsys):
    other = tmp_path / "other.csv"
    other.write_text("a,b\n1,2\n")
    code, err = run_cli(tmp_path, other, capsys)
    assert code == 1
    assert "lacks the columns ['gender'" in err


def test_empty_file(tmp_path, capsys):
    empty = tmp_path / "empty.csv"
    empty.write_text("")
    code, err = run_cli(tmp_path, empty, capsys)
    assert code == 1
    assert "is not the Telco churn data: it cannot be read as a CSV file" in err


def test_a_document_that_is_not_csv_at_all(tmp_path, capsys):
    code, err = run_cli(tmp_path, Settings().model_path.parent / "README.md", capsys)
    assert code == 1
    assert err.startswith("error: ")
    assert "is not the Telco churn data" in err
    assert "tokenizing" not in err


def test_bad_values_are_reported_with_line_numbers(tmp_path, capsys):
    lines = DATA_FILE.read_text().splitlines()
    lines[3] = lines[3].replace("Month-to-month", "Monthly")
    lines[5] = lines[5].rsplit(",", 1)[0] + ",Maybe"
    broken = tmp_path / "broken.csv"
    broken.write_text("\n".join(lines) + "\n")
    code, err = run_cli(tmp_path, broken, capsys)
    assert code == 1
    assert "has 2 invalid values" in err
    assert "line 4: contract: 'Monthly' is not one of the allowed values" in err
    assert "line 6: churn: must be 'yes' or 'no', not 'Maybe'" in err
