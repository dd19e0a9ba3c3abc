"""Loading refuses models it cannot serve correctly; a loaded model scores exactly as the course's."""

import csv
import json
import pickle
import shutil

import numpy as np
import pytest
from sklearn.feature_extraction import DictVectorizer
from sklearn.linear_model import LogisticRegression

from churn import schema
from churn.metadata import file_sha256, metadata_path
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
