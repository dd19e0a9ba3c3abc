"""The other figures under benchmarks/, each module's report printed by a Python process of its own.

A part runs only when its module is there and what it needs is installed; otherwise the report says why it
was left out. A process of its own keeps each part's memory, imports and failures apart. Sizes are cut to
keep the whole benchmark within minutes: ``python -m benchmarks.NAME`` gives a module's full-size figures.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass

from churn.settings import PROJECT_DIR

MONITORING_ROWS = 100_000
SPARK_ROWS = 200_000
# The file figures' largest file, which shows memory staying flat, at a tenth of the module's own size.
FILES_BIG_ROWS = 1_000_000
# Longer than the service's 15 s limit on reading a request, so the slow connections are seen closed.
SLOW_CLIENTS_HOLD_S = 20
# Far above any part's time at these sizes: only a part that hangs reaches it.
TIME_LIMIT_S = 600
STOP_TIMEOUT_S = 30


@dataclass(frozen=True)
class Part:
    """One module's figures: ``--skip-NAME``, the Python command line, and the packages and programs it needs."""

    name: str
    description: str
    module: str
    command: tuple[str, ...]
    packages: tuple[str, ...] = ()
    programs: tuple[str, ...] = ()

    def missing(self) -> str | None:
        """Why this part cannot run here, or ``None`` when it can."""
        if importlib.util.find_spec(self.module) is None:
            return f"{self.module.replace('.', '/')}.py is not there"
        absent = [name for name in self.packages if importlib.util.find_spec(name) is None]
        absent += [name for name in self.programs if shutil.which(name) is None]
        return f"{', '.join(absent)} not installed" if absent else None


PARTS = (
    Part(
        "explain",
        "the CPU time of an explanation per customer",
        "benchmarks.explain",
        ("-m", "benchmarks.explain"),
    ),
    Part(
        "bodies",
        "the CPU time of the costliest /predict bodies within the size limit",
        "benchmarks.bodies",
        ("-m", "benchmarks.bodies"),
    ),
    Part(
        "files",
        f"predict_file.py on CSV and Parquet files against pyarrow alone (largest {FILES_BIG_ROWS:,} rows)",
        "benchmarks.files",
        ("-c", f"from benchmarks.files import file_figures; print(file_figures(big_rows={FILES_BIG_ROWS}))"),
    ),
    Part(
        "monitoring",
        f"monitoring's queries over {MONITORING_ROWS:,} logged predictions (SQLite)",
        "benchmarks.monitoring",
        ("-m", "benchmarks.monitoring", "--rows", str(MONITORING_ROWS)),
    ),
    Part(
        "slow-clients",
        f"the service as configured under slow clients for {SLOW_CLIENTS_HOLD_S} s",
        "benchmarks.slow_clients",
        ("-m", "benchmarks.slow_clients", "--setups", "churn", "--hold", str(SLOW_CLIENTS_HOLD_S)),
    ),
    Part(
        "spark",
        f"Spark scoring of {SPARK_ROWS:,} rows on this machine's CPUs (local mode)",
        "benchmarks.spark",
        ("-m", "benchmarks.spark", "--master", "local[*]", "--rows", str(SPARK_ROWS)),
        packages=("pyspark",),
        programs=("java",),
    ),
)


def run(part: Part) -> bool:
    """Run ``part``, its figures printed as they come; whether it succeeded (or was left out)."""
    print(flush=True)
    reason = part.missing()
    if reason is not None:
        print(f"{part.description}: left out, {reason}", flush=True)
        return True
    # Error output only on failure: Spark's progress bars and warnings are not figures.
    with tempfile.TemporaryFile() as errors:
        # Spark's Python workers would otherwise be whichever python3 is first on PATH, without our packages.
        environment = {**os.environ, "PYSPARK_PYTHON": sys.executable}
        process = subprocess.Popen([sys.executable, *part.command], cwd=PROJECT_DIR, env=environment, stderr=errors)
        try:
            status = process.wait(timeout=TIME_LIMIT_S)
        except subprocess.TimeoutExpired:
            status = None
        finally:
            stop(process)
        if status == 0:
            return True
        errors.seek(0)
        output = errors.read().decode(errors="replace")[-3000:]
    ending = f"did not finish within {TIME_LIMIT_S} s" if status is None else f"failed (exit status {status})"
    print(f"{part.description}: {ending}\n{output}", file=sys.stderr, flush=True)
    return False


def stop(process: subprocess.Popen[bytes]) -> None:
    """Interrupt a part still running, as Ctrl-C would: it stops the servers it started; killed if it hangs."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGINT)
    try:
        process.wait(timeout=STOP_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
