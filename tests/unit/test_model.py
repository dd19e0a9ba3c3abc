"""Loading refuses models it cannot serve correctly; a loaded model scores exactly as the course's."""

import csv
import json
import math
import os
import pickle
import random
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from sklearn.feature_extraction import DictVectorizer
from sklearn.linear_model import LogisticRegression

from churn import schema
from churn.metadata import file_sha256, metadata_path, runtime_versions, write_metadata
from churn.model import ModelLoadError, load_model
from churn.settings import Settings
from churn.training import DATA_FILE
from tests.helpers.data import COURSE_FEATURES


@pytest.fixture
def model_copy(tmp_path):
    source = Settings().model_path
    target = tmp_path / source.name
    shutil.copy(source, target)
    shutil.copy(metadata_path(source), metadata_path(target))
    return target


def edit_metadata(path, edit):
    meta_file = metadata_path(path)
    metadata = json.loads(meta_file.read_text())
    edit(metadata)
    meta_file.write_text(json.dumps(metadata))


def replace_pickle(path, obj):
    """A different pickle, with metadata that vouches for it, so only the content check can object."""
    path.write_bytes(pickle.dumps(obj))
    edit_metadata(path, lambda m: m.update(model_sha256=file_sha256(path)))


def test_committed_model_loads_with_its_metadata(model):
    assert model.metadata["model_file"] == "model_C=1.0.bin"
    assert model.identity["scikit-learn"] == model.metadata["versions"]["scikit-learn"]


def test_parity_with_predict_proba_on_every_row(model, course_frame):
    """The service path (schema cleaning, then the pair) against the course's own pipeline."""
    with Settings().model_path.open("rb") as stream:
        dv, lr = pickle.load(stream)
    expected = lr.predict_proba(dv.transform(course_frame[COURSE_FEATURES].to_dict(orient="records")))[:, 1]
    with DATA_FILE.open(newline="") as stream:
        # The rows exactly as the file spells them, as a client exporting it would send them.
        raw_rows = list(csv.DictReader(stream))
    served = model.predict_proba([schema.clean_customer(row) for row in raw_rows])
    assert len(served) == len(expected) == 7043
    assert np.max(np.abs(served - expected)) <= 1e-12


def test_missing_model_file(tmp_path):
    with pytest.raises(ModelLoadError, match=r"not found\. Train one with `python train.py`"):
        load_model(tmp_path / "model_C=1.0.bin")


def test_missing_metadata(model_copy):
    metadata_path(model_copy).unlink()
    with pytest.raises(ModelLoadError, match="Cannot read the metadata"):
        load_model(model_copy)


def test_changed_model_file(model_copy):
    with model_copy.open("ab") as stream:
        stream.write(b"\0")
    with pytest.raises(ModelLoadError, match="the file changed after training"):
        load_model(model_copy)


def test_other_scikit_learn_version_names_both_and_the_fix(model_copy):
    edit_metadata(model_copy, lambda m: m["versions"].update({"scikit-learn": "0.24.2"}))
    with pytest.raises(ModelLoadError) as caught:
        load_model(model_copy)
    message = str(caught.value)
    assert "was trained with scikit-learn 0.24.2, but scikit-learn 1.9.1 is installed" in message
    assert "pipenv install --deploy" in message
    assert "python train.py" in message


def test_pickle_of_something_else(model_copy):
    replace_pickle(model_copy, {"not": "a model"})
    with pytest.raises(ModelLoadError, match=r"does not hold a \(DictVectorizer, LogisticRegression\) pair"):
        load_model(model_copy)


def test_model_trained_on_other_features(model_copy):
    dv = DictVectorizer(sparse=False)
    features = dv.fit_transform([{"tenure": 1.0}, {"tenure": 2.0}])
    replace_pickle(model_copy, (dv, LogisticRegression().fit(features, [0, 1])))
    with pytest.raises(ModelLoadError, match=r"trained on features \['tenure'\]"):
        load_model(model_copy)


# A pickle runs what it names: the checksum proves the file unchanged, not who wrote it.


class Runs:
    """Pickles as a call to ``function(*args)``, as a crafted model file would."""

    def __init__(self, function, *args):
        self.function, self.args = function, args

    def __reduce__(self):
        return self.function, self.args


def attacks(marker):
    return {
        "os.system": Runs(os.system, f"touch {marker}"),
        "builtins.eval": Runs(eval, f"open({str(marker)!r}, 'w').close()"),
        "subprocess.Popen": Runs(subprocess.Popen, ["touch", str(marker)]),
    }


@pytest.mark.parametrize("attack", ["os.system", "builtins.eval", "subprocess.Popen"])
def test_a_pickle_that_would_run_code_is_refused_without_running_it(model_copy, tmp_path, attack):
    marker = tmp_path / "ran"
    payload = attacks(marker)[attack]
    replace_pickle(model_copy, (payload, payload))
    with pytest.raises(ModelLoadError) as caught:
        load_model(model_copy)
    qualified = f"{payload.function.__module__}.{payload.function.__qualname__}"
    assert str(caught.value).startswith(f"{model_copy} asks to load {qualified}, which a (DictVectorizer")
    assert "could run code" in str(caught.value)
    assert not marker.exists()


@pytest.mark.parametrize("attack", ["os.system", "builtins.eval", "subprocess.Popen"])
def test_the_crafted_pickles_do_run_code_under_plain_pickle(tmp_path, attack):
    marker = tmp_path / "ran"
    result = pickle.loads(pickle.dumps(attacks(marker)[attack]))
    if isinstance(result, subprocess.Popen):
        result.wait()
    assert marker.exists()


@pytest.mark.parametrize(
    ("corrupt", "error"),
    [
        (lambda data: data[: len(data) // 2], "UnpicklingError"),
        (lambda data: data[:-1], "UnpicklingError"),
        (lambda data: b"", "EOFError"),
        (lambda data: bytes(random.Random(1).randrange(256) for _ in range(len(data))), ""),
    ],
)
def test_corrupt_bytes_with_a_matching_checksum_are_one_clear_error(model_copy, corrupt, error):
    model_copy.write_bytes(corrupt(model_copy.read_bytes()))
    edit_metadata(model_copy, lambda m: m.update(model_sha256=file_sha256(model_copy)))
    with pytest.raises(ModelLoadError, match=rf"cannot be read as a model pickle: {error}") as caught:
        load_model(model_copy)
    assert "\n" not in str(caught.value)


def test_a_directory_at_the_model_path(tmp_path):
    (tmp_path / "model_C=1.0.bin").mkdir()
    with pytest.raises(ModelLoadError, match="is a directory"):
        load_model(tmp_path / "model_C=1.0.bin")


@pytest.mark.skipif(not Path("/proc/self/mem").exists(), reason="needs Linux's /proc")
def test_a_model_file_that_cannot_be_read(model_copy):
    # Tests run as root, whom chmod 000 does not stop; reading /proc/self/mem from its start fails for anyone.
    metadata = metadata_path(model_copy)
    model_copy.unlink()
    model_copy.symlink_to("/proc/self/mem")
    assert metadata.exists()
    with pytest.raises(ModelLoadError, match=r"^Cannot read the model file .*: Input/output error\.$"):
        load_model(model_copy)


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_metadata_with_non_json_numbers_is_refused(model_copy, constant):
    meta_file = metadata_path(model_copy)
    meta_file.write_text(meta_file.read_text().replace('"test_auc": 0.8583517501381259', f'"test_auc": {constant}'))
    assert constant in meta_file.read_text()
    with pytest.raises(ModelLoadError, match=rf"Cannot read the metadata .*{constant} is not valid JSON"):
        load_model(model_copy)


def test_metadata_is_written_without_non_json_numbers(model_copy):
    with pytest.raises(ValueError, match="Out of range float values are not JSON compliant"):
        write_metadata(model_copy, {"test_auc": math.nan})


def test_a_pickle_of_another_scikit_learn_inside_is_one_clear_error(model_copy):
    installed = runtime_versions()["scikit-learn"].encode()
    other = b"0" * len(installed)
    data = model_copy.read_bytes()
    assert installed in data
    model_copy.write_bytes(data.replace(installed, other))
    edit_metadata(model_copy, lambda m: m.update(model_sha256=file_sha256(model_copy)))
    with pytest.raises(ModelLoadError, match="holds estimators of another scikit-learn than its metadata says"):
        load_model(model_copy)


def fitted_pair():
    with Settings().model_path.open("rb") as stream:
        return pickle.load(stream)


@pytest.mark.parametrize(
    "damage",
    [
        lambda dv, lr: setattr(lr, "coef_", np.full_like(lr.coef_, np.nan)),
        lambda dv, lr: setattr(lr, "intercept_", np.array([np.inf])),
        lambda dv, lr: setattr(lr, "coef_", lr.coef_[:, :-1]),
        lambda dv, lr: delattr(lr, "coef_"),
    ],
)
def test_a_regression_the_scorer_cannot_use_is_refused(model_copy, damage):
    dv, lr = fitted_pair()
    damage(dv, lr)
    replace_pickle(model_copy, (dv, lr))
    with pytest.raises(ModelLoadError, match="does not hold a fitted binary regression with one finite weight"):
        load_model(model_copy)


def test_an_unfitted_vectorizer_is_refused(model_copy):
    replace_pickle(model_copy, (DictVectorizer(), fitted_pair()[1]))
    with pytest.raises(ModelLoadError, match="was trained on features None"):
        load_model(model_copy)
