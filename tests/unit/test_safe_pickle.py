"""The model unpickler admits exactly what a fitted pair needs, and refuses every other global unrun."""

import io
import pickle
import re

import numpy as np
import pytest

from churn import safe_pickle
from churn.settings import Settings
from churn.training import DATA_FILE, fit, load_dataset


class Tracing(pickle.Unpickler):
    """Plain unpickling that records every global the pickle names."""

    def __init__(self, data):
        super().__init__(io.BytesIO(data))
        self.named = set()

    def find_class(self, module, name):
        self.named.add((module, name))
        return super().find_class(module, name)


@pytest.fixture(scope="module")
def fresh_pickle():
    """A pair fitted now, pickled as ``train.py`` pickles it."""
    dataset = load_dataset(DATA_FILE)
    stream = io.BytesIO()
    pickle.dump(fit(dataset.customers[:100], dataset.churn[:100], C=1.0), stream)
    return stream.getvalue()


@pytest.fixture(scope="module")
def committed_pickle():
    return Settings().model_path.read_bytes()


def test_the_allowed_globals_are_exactly_those_the_pickles_name(committed_pickle, fresh_pickle):
    for data in (committed_pickle, fresh_pickle):
        tracing = Tracing(data)
        tracing.load()
        assert tracing.named == safe_pickle.ALLOWED_GLOBALS


def test_the_committed_model_loads_as_plain_pickle_loads_it(committed_pickle):
    dv, lr = safe_pickle.loads(committed_pickle)
    course_dv, course_lr = pickle.loads(committed_pickle)
    assert dv.feature_names_ == course_dv.feature_names_
    assert dv.dtype is np.float64
    np.testing.assert_array_equal(lr.coef_, course_lr.coef_)
    np.testing.assert_array_equal(lr.intercept_, course_lr.intercept_)


def test_a_freshly_trained_pair_loads(fresh_pickle):
    dv, lr = safe_pickle.loads(fresh_pickle)
    assert lr.coef_.shape == (1, len(dv.feature_names_))


def test_plain_data_needs_no_globals():
    assert safe_pickle.loads(pickle.dumps({"a": [1, 2.5, (None, True)], "b": {3}})) == {
        "a": [1, 2.5, (None, True)],
        "b": {3},
    }


@pytest.mark.parametrize(
    ("data", "refused"),
    [
        (b"cos\nsystem\n(S'true'\ntR.", "os.system"),
        (b"cbuiltins\ngetattr\n.", "builtins.getattr"),
        # Protocol 4 resolves dotted names to attributes: an allowed class is no door to its attributes.
        (b"cnumpy\nndarray.__reduce_ex__\n.", "numpy.ndarray.__reduce_ex__"),
        # A numpy scalar: numpy, but nothing the pair holds.
        (pickle.dumps(np.float64(1.5)), "numpy._core.multiarray.scalar"),
    ],
)
def test_other_globals_are_refused_by_name(data, refused):
    with pytest.raises(safe_pickle.RefusedGlobal, match=rf"^{re.escape(refused)} is not allowed$") as caught:
        safe_pickle.loads(data)
    assert caught.value.qualified_name == refused


def test_persistent_ids_are_refused():
    with pytest.raises(pickle.UnpicklingError, match="persistent"):
        safe_pickle.loads(b"P0\n.")
