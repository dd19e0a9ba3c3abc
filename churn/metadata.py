"""The JSON file beside a model: how it was trained, how well it scores, what it needs to load."""

from __future__ import annotations

import hashlib
import json
import platform
from importlib.metadata import version
from pathlib import Path
from typing import Any

# The libraries whose versions decide whether a pickle loads and predicts as it did.
RECORDED_PACKAGES = ("scikit-learn", "numpy", "pandas")


def metadata_path(model_path: Path) -> Path:
    """Where the metadata of ``model_path`` lives: the same name with ``.json`` added."""
    return model_path.with_name(model_path.name + ".json")


def file_sha256(path: Path) -> str:
    """The hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def runtime_versions() -> dict[str, str]:
    """The Python and library versions of this process."""
    return {"python": platform.python_version()} | {name: version(name) for name in RECORDED_PACKAGES}


def write_metadata(model_path: Path, metadata: dict[str, object]) -> Path:
    """Write ``metadata`` beside ``model_path``, with the model file's sha256, and return its path."""
    path = metadata_path(model_path)
    document = {"model_file": model_path.name, "model_sha256": file_sha256(model_path), **metadata}
    # NaN is not JSON: a file holding it would be refused at start, and sent by /health as invalid JSON.
    path.write_text(json.dumps(document, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    return path


def _reject_constant(name: str) -> object:
    raise ValueError(f"{name} is not valid JSON")


def read_metadata(model_path: Path) -> dict[str, Any]:
    """The metadata of ``model_path``; ``OSError`` or ``ValueError`` when it cannot be read.

    ``NaN`` and ``Infinity``, which Python's parser takes, are refused: the API serves this document as JSON.
    """
    document = json.loads(metadata_path(model_path).read_text(encoding="utf-8"), parse_constant=_reject_constant)
    if not isinstance(document, dict):
        raise ValueError("the metadata is not a JSON object")
    return document
