"""The churn model as the service uses it: loaded once, checked, then asked for probabilities."""

from __future__ import annotations

import hashlib
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.exceptions import InconsistentVersionWarning
from sklearn.feature_extraction import DictVectorizer
from sklearn.linear_model import LogisticRegression

from churn import safe_pickle, schema
from churn.metadata import metadata_path, read_metadata, runtime_versions
from churn.scorer import Scorer

FIX = (
    "Install the locked versions with `pipenv install --deploy` (or `pipenv sync`), or retrain with `python train.py`."
)


class ModelLoadError(RuntimeError):
    """The model file cannot be served as it is; the message says why and what to do."""


class ChurnModel:
    """A fitted ``(DictVectorizer, LogisticRegression)`` pair and the metadata it was saved with."""

    def __init__(
        self,
        vectorizer: DictVectorizer,
        regression: LogisticRegression,
        metadata: dict[str, Any],
    ) -> None:
        self.vectorizer = vectorizer
        self.regression = regression
        self.metadata = metadata
        self.scorer = Scorer.compile(vectorizer, regression)

    def predict_proba(self, customers: Sequence[schema.Customer]) -> list[float]:
        """The churn probability of each cleaned customer: the course's ``predict_proba``, compiled."""
        return self.scorer.score_many(customers)

    @property
    def identity(self) -> dict[str, object]:
        """What tells this model apart from another: file, hash, C, when and with what it was trained."""
        keys = ("model_file", "model_sha256", "C", "trained_at", "test_auc")
        identity = {key: self.metadata.get(key) for key in keys}
        identity["scikit-learn"] = self.metadata["versions"]["scikit-learn"]
        return identity


def load_model(path: Path) -> ChurnModel:
    """Load the model at ``path`` after checking it against its metadata.

    Raises :class:`ModelLoadError` when the file is missing or unreadable, was changed after
    training, was made by another scikit-learn, names anything beyond what the pair needs (which
    could run code), or does not hold the pair the schema expects.
    """
    if path.is_dir():
        raise ModelLoadError(f"Model file {path} is a directory, not the file `python train.py` writes.")
    if not path.is_file():
        raise ModelLoadError(f"Model file {path} not found. Train one with `python train.py`.")
    try:
        metadata = read_metadata(path)
        expected_sha256 = metadata["model_sha256"]
        trained_with = metadata["versions"]["scikit-learn"]
    except (OSError, ValueError, KeyError, TypeError, RecursionError) as error:
        raise ModelLoadError(
            f"Cannot read the metadata of {path} from {metadata_path(path)} ({error!r}). "
            "Retrain with `python train.py` to write the model and its metadata together."
        ) from error
    try:
        # Read once: the bytes checked are the bytes loaded, even if the file is replaced meanwhile.
        data = path.read_bytes()
    except OSError as error:
        raise ModelLoadError(f"Cannot read the model file {path}: {error.strerror or error}.") from error

    actual_sha256 = hashlib.sha256(data).hexdigest()
    if actual_sha256 != expected_sha256:
        raise ModelLoadError(
            f"{path} has sha256 {actual_sha256}, but its metadata says {expected_sha256}: "
            "the file changed after training. Retrain with `python train.py`, or restore the file."
        )
    installed = runtime_versions()["scikit-learn"]
    if installed != trained_with:
        raise ModelLoadError(
            f"{path} was trained with scikit-learn {trained_with}, but scikit-learn {installed} "
            f"is installed, and a pickle is only safe with the version that wrote it. {FIX}"
        )

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", InconsistentVersionWarning)
            loaded = safe_pickle.loads(data)
    except safe_pickle.RefusedGlobal as error:
        raise ModelLoadError(
            f"{path} asks to load {error.qualified_name}, which a (DictVectorizer, LogisticRegression) pair "
            "does not use and which could run code: the model is refused. Retrain with `python train.py`."
        ) from error
    except InconsistentVersionWarning as error:
        raise ModelLoadError(
            f"{path} holds estimators of another scikit-learn than its metadata says. {FIX}"
        ) from error
    except Exception as error:
        # Bytes that match their checksum can still be anything: truncated, random or hand-made pickles fail
        # with errors of every kind, and each must stop the start with this one line, not a traceback.
        raise ModelLoadError(
            f"{path} cannot be read as a model pickle: {type(error).__name__}: {error}. Retrain with `python train.py`."
        ) from error
    return ChurnModel(*_check_pair(loaded, path), metadata)


def _check_pair(loaded: object, path: Path) -> tuple[DictVectorizer, LogisticRegression]:
    if not (
        isinstance(loaded, tuple)
        and len(loaded) == 2
        and isinstance(loaded[0], DictVectorizer)
        and isinstance(loaded[1], LogisticRegression)
    ):
        raise ModelLoadError(f"{path} does not hold a (DictVectorizer, LogisticRegression) pair.")
    vectorizer, regression = loaded
    features = getattr(vectorizer, "feature_names_", None)
    if not isinstance(features, list) or features != schema.feature_names():
        raise ModelLoadError(
            f"{path} was trained on features {features}, "
            f"but the service's schema has {schema.feature_names()}. Retrain with `python train.py`."
        )
    coef, intercept = getattr(regression, "coef_", None), getattr(regression, "intercept_", None)
    if not (
        isinstance(coef, np.ndarray)
        and isinstance(intercept, np.ndarray)
        and coef.shape == (1, len(features))
        and intercept.shape == (1,)
        and np.isfinite(coef).all()
        and np.isfinite(intercept).all()
    ):
        # The scorer reads these tables; a mismatch would fail at start, and a NaN in every answer.
        raise ModelLoadError(
            f"{path} does not hold a fitted binary regression with one finite weight per feature. "
            "Retrain with `python train.py`."
        )
    return vectorizer, regression
