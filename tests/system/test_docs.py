"""Every ``bash`` example in the README and docs/ runs against a real ``gunicorn predict:app`` and prints what it shows.

The commands run as written, in a folder with the project's scripts and a ``customers.csv`` of Telco
rows, with two changes: the address, ``localhost:9696``, becomes the test server's, and ``pipenv run``
goes, as the commands already run in the project's environment (first on the ``PATH``). Blocks
written as ``sh`` are commands for places this machine is not (AWS, a cluster) and are not run.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from churn.settings import PROJECT_DIR
from churn.training import DATA_FILE
from tests.helpers.docs import DOCUMENTS, Example, examples
from tests.helpers.gunicorn import Server, start_gunicorn, stop

EXAMPLES = [example for document in DOCUMENTS for example in examples(document)]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = start_gunicorn(tmp_path_factory.mktemp("docs-gunicorn") / "gunicorn.log")
    yield running
    stop(running)


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    for script in ("predict_test.py", "predict_file.py"):
        (tmp_path / script).symlink_to(PROJECT_DIR / script)
    pd.read_csv(DATA_FILE, dtype=str, keep_default_na=False).head(20).to_csv(tmp_path / "customers.csv", index=False)
    return tmp_path


def test_the_documents_have_examples_to_run():
    assert len(EXAMPLES) >= 5
    assert {example.document.name for example in EXAMPLES} >= {"api.md", "explanations.md", "files.md"}


@pytest.mark.parametrize("example", EXAMPLES, ids=[example.name for example in EXAMPLES])
def test_example_runs_and_prints_what_the_document_shows(example: Example, server: Server, workdir: Path):
    address = server.url.removeprefix("http://")
    commands = example.commands.replace("localhost:9696", address).replace("pipenv run ", "")
    python = Path(sys.executable).parent
    environ = {**os.environ, "PATH": f"{python}{os.pathsep}{os.environ['PATH']}", "PYTHONPATH": str(PROJECT_DIR)}
    assert shutil.which("curl"), "curl is needed to run the documents' examples"
    result = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", commands], cwd=workdir, env=environ, capture_output=True, text=True,
        timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, f"{example.name} failed:\n{result.stdout}\n{result.stderr}"
    if example.output is None:
        return
    if example.output_language == "json":
        assert json.loads(result.stdout) == json.loads(example.output), example.name
    else:
        assert result.stdout.rstrip() == example.output.rstrip(), example.name
