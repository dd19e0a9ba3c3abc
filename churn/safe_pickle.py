"""Unpickling that cannot run code: only the globals a fitted ``(DictVectorizer, LogisticRegression)`` needs.

A pickle names the functions it calls while loading, and ``pickle.load`` imports and calls whatever it
names (``os.system`` as readily as ``numpy.dtype``). A checksum beside the file proves it is unchanged,
not who wrote it. This unpickler resolves only :data:`ALLOWED_GLOBALS`, found by tracing ``find_class``
over pickles ``train.py`` writes, and refuses the rest before anything is called.
"""

from __future__ import annotations

import io
import pickle

ALLOWED_GLOBALS = frozenset(
    {
        ("sklearn.feature_extraction._dict_vectorizer", "DictVectorizer"),
        ("sklearn.linear_model._logistic", "LogisticRegression"),
        # The fitted arrays (coef_, intercept_, classes_, n_iter_) and their dtypes.
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy._core.multiarray", "_reconstruct"),
        # DictVectorizer(dtype=np.float64) keeps the scalar type itself.
        ("numpy", "float64"),
    }
)


class RefusedGlobal(pickle.UnpicklingError):
    """The pickle names a global outside :data:`ALLOWED_GLOBALS`."""

    def __init__(self, module: str, name: str) -> None:
        super().__init__(f"{module}.{name} is not allowed")
        self.qualified_name = f"{module}.{name}"


class _Unpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> object:
        if (module, name) not in ALLOWED_GLOBALS:
            raise RefusedGlobal(module, name)
        return super().find_class(module, name)


def loads(data: bytes) -> object:
    """The object pickled in ``data``; :class:`RefusedGlobal` if it names any other global."""
    return _Unpickler(io.BytesIO(data)).load()
