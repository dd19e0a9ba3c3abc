"""A real Spark standalone cluster: a master and two workers, processes of the pyspark package, on free ports."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import requests

from tests.helpers.gunicorn import free_port

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

# Small on purpose: the machine is shared, and the tests' data fit in this.
DAEMON_MEMORY = "256m"
WORKER_MEMORY = "1g"
EXECUTOR_MEMORY = "512m"
DRIVER_MEMORY = "512m"
APP_CORES = 2


def require_spark() -> None:
    """Skip the calling test when Java, pyspark or pyarrow is missing; fail instead when ``CI`` is set."""
    missing = [name for name in ("pyspark", "pyarrow") if importlib.util.find_spec(name) is None]
    if shutil.which("java") is None:
        missing.append("java")
    if not missing:
        return
    reason = f"{', '.join(missing)} not installed: `pipenv install --categories spark` and a Java 17+ runtime"
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


def spark_home() -> Path:
    """The Spark distribution the pyspark package carries: its ``bin/spark-class`` and jars."""
    import pyspark

    return Path(pyspark.__file__).parent


@dataclass
class Cluster:
    """A running standalone master and its workers, with their logs in ``directory``."""

    url: str
    web_url: str
    directory: Path
    processes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def logs(self) -> str:
        """The end of every daemon's log, for a failure message."""
        return "\n".join(f"== {log.name}\n{log.read_text()[-3000:]}" for log in sorted(self.directory.glob("*.log")))

    def alive_workers(self) -> int:
        """How many workers the master counts as alive (0 until its web UI answers)."""
        try:
            return int(requests.get(f"{self.web_url}/json/", timeout=2).json()["aliveworkers"])
        except (requests.ConnectionError, requests.Timeout, ValueError):
            return 0

    def stop(self) -> None:
        """SIGTERM the workers, then the master; kill whichever does not exit in time."""
        for process in reversed(self.processes):
            process.terminate()
        for process in reversed(self.processes):
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def start_cluster(directory: Path, workers: int = 2, cores: int = 2, timeout: float = 180) -> Cluster:
    """Start a master and ``workers`` workers of ``cores`` cores each on 127.0.0.1; return once all are registered."""
    home = spark_home()
    environ = {
        **os.environ,
        "SPARK_HOME": str(home),
        "SPARK_LOCAL_IP": "127.0.0.1",
        "SPARK_DAEMON_MEMORY": DAEMON_MEMORY,
        # The daemons only route work: the quick compiler and one GC thread start them with less CPU.
        "SPARK_DAEMON_JAVA_OPTS": "-XX:TieredStopAtLevel=1 -XX:+UseSerialGC",
        "SPARK_LOCAL_DIRS": str(directory / "local"),
        "PYSPARK_PYTHON": sys.executable,
    }
    port, web_port = free_port(), free_port()
    cluster = Cluster(f"spark://127.0.0.1:{port}", f"http://127.0.0.1:{web_port}", directory)
    master = ["org.apache.spark.deploy.master.Master", "--host", "127.0.0.1", "--port", str(port)]
    cluster.processes.append(_daemon(home, directory / "master.log", environ, [*master, "--webui-port", str(web_port)]))
    for number in range(workers):
        work = directory / f"worker-{number}"
        worker = ["org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1", "--port", str(free_port())]
        options = ["--webui-port", str(free_port()), "--cores", str(cores), "--memory", WORKER_MEMORY]
        command = [*worker, *options, "--work-dir", str(work), cluster.url]
        cluster.processes.append(_daemon(home, directory / f"worker-{number}.log", environ, command))
    deadline = time.monotonic() + timeout
    while cluster.alive_workers() < workers:
        exited = [process.args for process in cluster.processes if process.poll() is not None]
        if exited or time.monotonic() > deadline:
            cluster.stop()
            why = f"{exited} exited" if exited else f"not all {workers} workers registered within {timeout:.0f} s"
            pytest.fail(f"the Spark cluster did not start: {why}\n{cluster.logs()}")
        time.sleep(0.5)
    return cluster


def _daemon(home: Path, log: Path, environ: dict[str, str], arguments: list[str]) -> subprocess.Popen[bytes]:
    # spark-class execs java, so the process is the daemon itself and SIGTERM reaches it.
    with log.open("wb") as sink:
        return subprocess.Popen(
            [str(home / "bin" / "spark-class"), *arguments],
            cwd=log.parent,
            env=environ,
            stdout=sink,
            stderr=subprocess.STDOUT,
        )


def session_options(cluster: Cluster) -> dict[str, str]:
    """Spark settings for a driver in this process (or a child) talking to ``cluster`` over 127.0.0.1."""
    return {
        "spark.master": cluster.url,
        "spark.driver.host": "127.0.0.1",
        "spark.driver.bindAddress": "127.0.0.1",
        "spark.driver.memory": DRIVER_MEMORY,
        "spark.executor.memory": EXECUTOR_MEMORY,
        # Half the cluster's cores: a standalone master gives an application all it can otherwise,
        # and a second one, such as the command a test runs, would wait for the first to end.
        "spark.cores.max": str(APP_CORES),
        "spark.local.dir": str(cluster.directory / "local"),
        "spark.pyspark.python": sys.executable,
        "spark.ui.enabled": "false",
    }


def submit_arguments(cluster: Cluster) -> str:
    """:func:`session_options` as ``PYSPARK_SUBMIT_ARGS``, for a command that builds its own session."""
    options = session_options(cluster)
    del options["spark.master"]
    return " ".join(f"--conf {name}={value}" for name, value in options.items()) + " pyspark-shell"


def start_session(cluster: Cluster, name: str) -> SparkSession:
    """A driver in this process for ``cluster``, quiet but for errors."""
    from pyspark.sql import SparkSession

    spark = SparkSession.builder.appName(name).config(map=session_options(cluster)).getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark
