"""The HTTP half of the benchmark: the service in four set-ups, the course's server and an empty endpoint.

Each server runs as ``gunicorn -c benchmarks/gunicorn.conf.py <app>`` (the project's settings, access log
off) on 127.0.0.1, and wrk POSTs the course's customer to its ``/predict``. The service runs with metrics
off, as configured by default (metrics on), and with metrics on and the prediction log writing to SQLite
and to PostgreSQL. Rounds interleave the servers, so a noisy moment on the machine hits all of them, and
the report gives medians over the rounds.

Each server is measured twice a round: at full load (each connection sends its next request as soon as
it has an answer), for requests per second, then paced well below every server's capacity, for latencies. At full load a
request's latency is mostly its wait behind the others, which says how busy the machine is rather than
what a request costs; the goal on the latency the log adds is measured paced.
"""

from __future__ import annotations

import json
import math
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path

from benchmarks.databases import DatabaseError, LogKind, log_databases, logged_rows
from churn.examples import SAMPLE_CUSTOMER
from churn.settings import PROJECT_DIR

GUNICORN = Path(sys.executable).with_name("gunicorn")
CONFIG_FILE = "benchmarks/gunicorn.conf.py"
# What CONFIG_FILE reads each time a server starts.
PROJECT_CONFIG_FILE = PROJECT_DIR / "gunicorn.conf.py"
WRK_SCRIPT = Path(__file__).with_name("predict.lua")
RESULT_MARKER = "BENCHMARK_RESULT "
START_TIMEOUT_SECONDS = 60
# gunicorn.conf.py's graceful_timeout is 10 s; past this the server is killed.
STOP_TIMEOUT_SECONDS = 20
# The probabilities the service and the course's server return must agree; this only catches a wrong model.
PROBABILITY_TOLERANCE = 1e-9

GOAL_SERVICE_OVER_EMPTY = 0.9
GOAL_SERVICE_OVER_COURSE = 1.5
# With metrics and the prediction log on: against the same service with both off, and the empty endpoint.
GOAL_LOGGED_OVER_OFF = 0.9
GOAL_LOGGED_OVER_EMPTY = 1.0
GOAL_LOGGED_ADDED_P99_MS = 1.0


class BenchmarkError(Exception):
    """The benchmark cannot give meaningful figures; the message says why."""


@dataclass(frozen=True)
class App:
    """One of the servers compared; for the service, its metrics setting and where it logs predictions."""

    name: str
    wsgi_app: str
    description: str
    metrics: bool = True
    prediction_log: LogKind | None = None

    def settings(self, log_url: str | None) -> dict[str, str]:
        """The service's variables for this server, all set: one in the caller's environment changes nothing."""
        return {"CHURN_METRICS": "on" if self.metrics else "off", "CHURN_PREDICTION_LOG": log_url or ""}


# The service as configured by default comes first: the slow-client benchmark serves APPS[0].
APPS = (
    App("service", "predict:app", "this service as configured by default: metrics on, no prediction log"),
    App("service-off", "predict:app", "metrics off, no prediction log", metrics=False),
    App("service-sqlite", "predict:app", "metrics on, prediction log to a SQLite file", prediction_log="sqlite"),
    App(
        "service-postgres",
        "predict:app",
        "metrics on, prediction log to PostgreSQL on 127.0.0.1",
        prediction_log="postgresql",
    ),
    App("course", "benchmarks.course_predict:app", "the course's predict.py"),
    App("empty", "benchmarks.empty_app:app", "an empty Flask endpoint"),
)
SERVICE_APPS = tuple(app.name for app in APPS if app.wsgi_app == "predict:app")
LOGGED_APPS = tuple(app.name for app in APPS if app.prediction_log is not None)


@dataclass(frozen=True)
class GunicornOptions:
    """Worker settings applied identically to all the servers; ``None`` keeps gunicorn.conf.py's."""

    workers: int | None = None
    worker_class: str | None = None
    threads: int | None = None

    def arguments(self, port: int) -> list[str]:
        """The command line up to the app: the config file, a loopback port and these settings."""
        arguments = [str(GUNICORN), "-c", CONFIG_FILE, "--bind", f"127.0.0.1:{port}"]
        if self.worker_class is not None:
            arguments += ["--worker-class", self.worker_class]
        if self.threads is not None:
            arguments += ["--threads", str(self.threads)]
        return arguments

    def environment(self, port: int) -> dict[str, str]:
        """The servers' environment: ours, with the port and, when chosen, the number of workers."""
        environment = {**os.environ, "PORT": str(port)}
        if self.workers is not None:
            environment["WEB_CONCURRENCY"] = str(self.workers)
        return environment

    def resolved(self) -> dict[str, object]:
        """The settings gunicorn will really use, as its ``--print-config`` reports them."""
        port = free_port()
        printed = subprocess.run(
            [*self.arguments(port), "--print-config", APPS[0].wsgi_app],
            cwd=PROJECT_DIR,
            env=self.environment(port),
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT_SECONDS,
            check=False,
        )
        if printed.returncode != 0:
            # stdout is the whole configuration; the reason is on stderr.
            raise BenchmarkError(f"gunicorn cannot start with these settings:\n{printed.stderr.strip()}")
        settings = {}
        for line in printed.stdout.splitlines():
            name, equals, value = line.partition("=")
            if equals:
                settings[name.strip()] = value.strip()
        wanted = (
            "workers",
            "worker_class",
            "threads",
            "worker_connections",
            "keepalive",
            "preload_app",
            "timeout",
            "accesslog",
        )
        return {name: settings.get(name) for name in wanted}


@dataclass(frozen=True)
class LoadOptions:
    """What wrk sends: how many connections, from how many threads, for how long."""

    connections: int = 8
    wrk_threads: int = 2
    duration: int = 10
    warmup: int = 2
    # wrk counts a request slower than this as a timeout, which fails the run.
    timeout: int = 10
    # The paced run: requests per second offered in all (0: none), and its seconds.
    paced_rate: int = 1000
    paced_duration: int = 5

    def paced_delay_ms(self) -> int:
        """What each connection waits after an answer, so that together they offer about ``paced_rate``."""
        return max(1, round(self.connections * 1000 / self.paced_rate))


@dataclass(frozen=True)
class Measurement:
    """One wrk run against one server."""

    requests_per_second: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    requests: int
    duration_s: float

    @classmethod
    def from_wrk(cls, result: dict) -> Measurement:
        """From the line the wrk script prints (microseconds)."""
        latency = result["latency_us"]
        duration = result["duration_us"] / 1e6
        return cls(
            requests_per_second=result["requests"] / duration,
            p50_ms=latency["p50"] / 1000,
            p90_ms=latency["p90"] / 1000,
            p99_ms=latency["p99"] / 1000,
            mean_ms=latency["mean"] / 1000,
            max_ms=latency["max"] / 1000,
            requests=int(result["requests"]),
            duration_s=duration,
        )


@dataclass
class Results:
    """Every round's measurements, and what they add up to."""

    gunicorn: dict[str, object]
    load: LoadOptions
    machine: dict[str, object]
    rounds: list[dict[str, Measurement]] = field(default_factory=list)
    # The paced runs, per round; none when the load has no paced rate.
    paced: list[dict[str, Measurement]] = field(default_factory=list)
    # Per round, the rows each logging server's prediction log held after it stopped.
    logged: list[dict[str, int]] = field(default_factory=list)

    def median(self, app: str) -> Measurement:
        """The median of each figure of ``app``'s full-load runs over the rounds (each figure on its own)."""
        return _median([round_[app] for round_ in self.rounds])

    def paced_median(self, app: str) -> Measurement:
        """The same for ``app``'s paced runs."""
        return _median([round_[app] for round_ in self.paced])

    def goals(self) -> list[dict[str, object]]:
        """The issues' serving goals, measured: ratios and differences of the medians."""
        service, course = self.median("service"), self.median("course")
        goals = [
            self._ratio_goal("service", "empty", GOAL_SERVICE_OVER_EMPTY),
            self._ratio_goal("service", "course", GOAL_SERVICE_OVER_COURSE),
            {
                "goal": "service p99 vs course p99",
                "measured": f"{service.p99_ms:.2f} vs {course.p99_ms:.2f} ms",
                "target": "<= course",
                "value": service.p99_ms / course.p99_ms,
                "met": service.p99_ms <= course.p99_ms,
            },
        ]
        for name in LOGGED_APPS:
            goals += [
                self._ratio_goal(name, "service-off", GOAL_LOGGED_OVER_OFF),
                self._ratio_goal(name, "empty", GOAL_LOGGED_OVER_EMPTY),
            ]
            if self.paced:
                added = self.paced_median(name).p99_ms - self.paced_median("service-off").p99_ms
                goals.append(
                    {
                        "goal": f"{name} p99 - service-off p99, paced",
                        "measured": f"{added:+.2f} ms",
                        "target": f"<= {GOAL_LOGGED_ADDED_P99_MS:.2f} ms",
                        "value": added,
                        "met": added <= GOAL_LOGGED_ADDED_P99_MS,
                    }
                )
        return goals

    def _ratio_goal(self, name: str, baseline: str, target: float) -> dict[str, object]:
        ratio = self.median(name).requests_per_second / self.median(baseline).requests_per_second
        return {
            "goal": f"{name} / {baseline} req/s",
            "measured": f"{ratio:.3f}x",
            "target": f">= {target:.2f}x",
            "value": ratio,
            "met": ratio >= target,
        }

    def as_json(self) -> dict[str, object]:
        """Everything, for ``--json``."""
        return {
            "gunicorn": self.gunicorn,
            "load": asdict(self.load),
            "machine": self.machine,
            "rounds": [{app: asdict(run) for app, run in round_.items()} for round_ in self.rounds],
            "paced_rounds": [{app: asdict(run) for app, run in round_.items()} for round_ in self.paced],
            "logged_rows": self.logged,
            "median": {app.name: asdict(self.median(app.name)) for app in APPS},
            "paced_median": {app.name: asdict(self.paced_median(app.name)) for app in APPS} if self.paced else {},
            "goals": self.goals(),
        }


def _median(runs: list[Measurement]) -> Measurement:
    return Measurement(
        requests_per_second=statistics.median(run.requests_per_second for run in runs),
        p50_ms=statistics.median(run.p50_ms for run in runs),
        p90_ms=statistics.median(run.p90_ms for run in runs),
        p99_ms=statistics.median(run.p99_ms for run in runs),
        mean_ms=statistics.median(run.mean_ms for run in runs),
        max_ms=statistics.median(run.max_ms for run in runs),
        requests=int(statistics.median(run.requests for run in runs)),
        duration_s=statistics.median(run.duration_s for run in runs),
    )


def free_port() -> int:
    """A port nobody listens on now, on the loopback interface."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def load_average() -> list[float]:
    """The machine's load average over 1, 5 and 15 minutes."""
    return [round(load, 2) for load in os.getloadavg()]


def machine() -> dict[str, object]:
    """What the figures depend on, for reading them later."""
    return {
        "cpus": len(os.sched_getaffinity(0)),
        "load_average_at_start": load_average(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def post_sample(url: str, body: bytes, timeout: float) -> dict:
    """POST the sample customer once; its JSON answer. HTTPError on a non-2xx answer."""
    request = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(request, timeout=timeout) as response:
        return json.load(response)


class Server:
    """A gunicorn serving one app on a free loopback port, its output kept in a file."""

    def __init__(self, app: App, options: GunicornOptions, log: Path, log_url: str | None = None) -> None:
        self.app = app
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/predict"
        self.log = log
        with log.open("w") as sink:
            # A session of its own: Ctrl-C reaches only this script, which then stops the server in order.
            self.process = subprocess.Popen(
                [*options.arguments(self.port), app.wsgi_app],
                cwd=PROJECT_DIR,
                env={**options.environment(self.port), **app.settings(log_url)},
                stdout=sink,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def output(self, last_lines: int = 30) -> str:
        """The end of gunicorn's output, for error messages."""
        lines = self.log.read_text(errors="replace").splitlines()
        return "\n".join(lines[-last_lines:])

    def wait_until_ready(self, body: bytes) -> dict:
        """Poll /predict until it answers; the answer."""
        deadline = time.monotonic() + START_TIMEOUT_SECONDS
        while True:
            if self.process.poll() is not None:
                raise BenchmarkError(
                    f"{self.app.wsgi_app}: gunicorn exited with {self.process.returncode}:\n{self.output()}"
                )
            try:
                return post_sample(self.url, body, timeout=5)
            except urllib.error.HTTPError as error:
                raise BenchmarkError(
                    f"{self.app.wsgi_app} answered the sample customer with {error.code}: "
                    f"{error.read()[:500]!r}\n{self.output()}"
                ) from None
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise BenchmarkError(
                    f"{self.app.wsgi_app} did not answer within {START_TIMEOUT_SECONDS} s:\n{self.output()}"
                )
            time.sleep(0.1)

    def stop(self) -> None:
        """SIGTERM and wait for the graceful stop; SIGKILL to the whole group if it hangs."""
        try:
            if self.process.poll() is None:
                self.process.terminate()
                self.process.wait(timeout=STOP_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            print(
                f"warning: {self.app.wsgi_app} did not stop within {STOP_TIMEOUT_SECONDS} s; killing it",
                file=sys.stderr,
            )
        finally:
            # Workers outlive an arbiter that was killed or crashed; they are in its process group.
            with suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()


@contextmanager
def running(
    app: App, options: GunicornOptions, log: Path, body: bytes, log_url: str | None = None
) -> Iterator[tuple[Server, dict]]:
    """A ready server and its answer to the sample customer; stopped on the way out, whatever happens.

    ``log_url``: where the service's prediction log writes, for an app that logs.
    """
    server = Server(app, options, log, log_url)
    try:
        answer = server.wait_until_ready(body)
        yield server, answer
    finally:
        server.stop()


def wrk(url: str, load: LoadOptions, duration: int, body_file: Path, delay_ms: int | None = None) -> Measurement:
    """One wrk run, paced when given ``delay_ms``; :class:`BenchmarkError` when any request failed or was not 2xx."""
    command = [
        "wrk",
        f"--threads={load.wrk_threads}",
        f"--connections={load.connections}",
        f"--duration={duration}s",
        f"--timeout={load.timeout}s",
        f"--script={WRK_SCRIPT}",
        url,
    ]
    try:
        completed = subprocess.run(
            command,
            env={
                **os.environ,
                "BENCHMARK_BODY_FILE": str(body_file),
                **({} if delay_ms is None else {"BENCHMARK_DELAY_MS": str(delay_ms)}),
            },
            capture_output=True,
            text=True,
            timeout=duration + load.timeout + 30,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise BenchmarkError(f"wrk did not finish a {duration} s run in time: {' '.join(command)}") from None
    lines = [line for line in completed.stdout.splitlines() if line.startswith(RESULT_MARKER)]
    if completed.returncode != 0 or not lines:
        raise BenchmarkError(
            f"wrk failed (exit status {completed.returncode}): {' '.join(command)}\n"
            f"{completed.stdout}{completed.stderr}"
        )
    result = json.loads(lines[-1].removeprefix(RESULT_MARKER))
    errors = {name: count for name, count in result["errors"].items() if count}
    if result["non_2xx"]:
        errors["non-2xx"] = result["non_2xx"]
    if errors:
        raise BenchmarkError(f"requests to {url} failed: {errors} of {result['requests']:.0f}\n{completed.stdout}")
    if not result["requests"]:
        raise BenchmarkError(f"wrk completed no request to {url}")
    return Measurement.from_wrk(result)


def check_answers(answers: dict[str, dict]) -> None:
    """Every set-up of the service and the course's server score the sample alike; the empty endpoint is constant."""
    course = answers["course"]["churn_probability"]
    for name in SERVICE_APPS:
        service = answers[name]["churn_probability"]
        if not math.isclose(service, course, rel_tol=0, abs_tol=PROBABILITY_TOLERANCE):
            raise BenchmarkError(f"{name} scores the sample {service}, the course's server {course}: not one model")
    if answers["empty"] != {"churn_probability": 0.5, "churn": False}:
        raise BenchmarkError(f"the empty endpoint answered {answers['empty']}")


def check_log(app: App, url: str, answered: int, unanswered: int) -> int:
    """The rows the stopped server's prediction log holds: one per customer answered, or :class:`BenchmarkError`.

    A log that lost records would flatter the figures. ``unanswered``: requests wrk may have sent but not
    counted when it stopped, which the server may still have answered and logged.
    """
    rows = logged_rows(url)
    if not answered <= rows <= answered + unanswered:
        raise BenchmarkError(
            f"{app.name}: its prediction log holds {rows:,} rows for {answered:,} customers answered "
            f"(and up to {unanswered} more in flight):\n{url}"
        )
    return rows


def measure(
    app: App, options: GunicornOptions, load: LoadOptions, folder: Path, body: bytes, log_url: str | None
) -> tuple[Measurement, Measurement | None, dict, int]:
    """Start ``app``, warm it up, measure it at full load then paced, stop it.

    The figures of both runs (``None`` for an unpaced load), its answer, and how many customers it answered.
    ``folder`` holds the server's output and the body wrk sends (``customer.json``).
    """
    body_file = folder / "customer.json"
    with running(app, options, folder / f"{app.name}.log", body, log_url) as (server, answer):
        # One customer a request, the readiness check's included.
        answered = 1
        if load.warmup:
            answered += wrk(server.url, load, load.warmup, body_file).requests
        measured = wrk(server.url, load, load.duration, body_file)
        answered += measured.requests
        paced = None
        if load.paced_rate:
            paced = wrk(server.url, load, load.paced_duration, body_file, load.paced_delay_ms())
            answered += paced.requests
    return measured, paced, answer, answered


def run(options: GunicornOptions, load: LoadOptions, rounds: int) -> Results:
    """Measure the servers ``rounds`` times, interleaved, printing each run as it ends."""
    if shutil.which("wrk") is None:
        raise BenchmarkError("wrk is not installed: `apt-get install wrk`, or run scripts/benchmark, which does")
    settings_text = PROJECT_CONFIG_FILE.read_bytes()
    results = Results(gunicorn=options.resolved(), load=load, machine=machine())
    print_header(results, rounds)
    try:
        with (
            tempfile.TemporaryDirectory(prefix="benchmark-") as name,
            log_databases(Path(name), free_port()) as databases,
        ):
            folder = Path(name)
            body = json.dumps(SAMPLE_CUSTOMER).encode()
            (folder / "customer.json").write_bytes(body)
            # At the end of each wrk run, up to one request per connection sent and not counted.
            unanswered = load.connections * (1 + bool(load.warmup) + bool(load.paced_rate))
            for number in range(rounds):
                # A different server goes first each round, so none always starts on a machine just left idle.
                order = APPS[number % len(APPS) :] + APPS[: number % len(APPS)]
                measurements, paced, answers, logged = {}, {}, {}, {}
                for app in order:
                    log_url = None
                    if app.prediction_log is not None:
                        log_url = databases.new(app.prediction_log, f"{app.name}-{number + 1}")
                    measured, paced_run, answers[app.name], answered = measure(
                        app, options, load, folder, body, log_url
                    )
                    measurements[app.name] = measured
                    if PROJECT_CONFIG_FILE.read_bytes() != settings_text:
                        raise BenchmarkError(
                            f"{PROJECT_CONFIG_FILE.name} changed during the run: the servers would not all have the "
                            "settings the header shows; run again"
                        )
                    label = f"round {number + 1}/{rounds}  {app.name:<16}"
                    line = _run_line(label, measured)
                    if log_url is not None:
                        logged[app.name] = check_log(app, log_url, answered, unanswered)
                        line += f"  logged {logged[app.name]:,} rows for {answered:,} customers answered"
                    if paced_run is not None:
                        paced[app.name] = paced_run
                        line += f"\n{_run_line(label, paced_run)}  paced"
                    print(line, flush=True)
                check_answers(answers)
                results.rounds.append({app.name: measurements[app.name] for app in APPS})
                if paced:
                    results.paced.append({app.name: paced[app.name] for app in APPS})
                results.logged.append(logged)
    except DatabaseError as error:
        raise BenchmarkError(str(error)) from None
    results.machine["load_average_at_end"] = load_average()
    return results


def _run_line(label: str, measured: Measurement) -> str:
    return (
        f"{label} {measured.requests_per_second:>9,.0f} req/s  p50 {measured.p50_ms:6.2f} ms"
        f"  p99 {measured.p99_ms:6.2f} ms"
    )


def print_header(results: Results, rounds: int) -> None:
    """What is about to be measured, and how."""
    settings, load, host = results.gunicorn, results.load, results.machine
    print("HTTP: POST /predict with the course's customer, on 127.0.0.1")
    print(
        f"  wrk:      {load.wrk_threads} threads, {load.connections} connections, {load.duration} s measured after "
        f"{load.warmup} s of warm-up; {rounds} round(s), the servers interleaved"
    )
    if load.paced_rate:
        print(
            f"  paced:    then {load.paced_duration} s at about {load.paced_rate:,} req/s in all (each connection "
            f"waits {load.paced_delay_ms()} ms after an answer), for latencies"
        )
    print(
        f"  gunicorn: {CONFIG_FILE} (gunicorn.conf.py, access log off): {settings['workers']} workers of "
        f"{settings['worker_class']}, {settings['threads']} thread(s) and up to {settings['worker_connections']} "
        f"connections each, keep-alive {settings['keepalive']} s"
    )
    print(
        f"  machine:  {host['cpus']} CPUs, load average {host['load_average_at_start'][0]} at start; "
        "wrk shares the CPUs with the servers"
    )
    for app in APPS:
        print(f"  {app.name:<17} {app.wsgi_app:<31} {app.description}")
    print(flush=True)


def print_report(results: Results) -> None:
    """The medians per server, then the goals and whether each is met."""
    _print_medians(f"Medians over {len(results.rounds)} round(s), full load", results.median)
    if results.paced:
        _print_medians(f"Paced, medians over {len(results.paced)} round(s)", results.paced_median)
    print(f"\n{'goal':<40}{'measured':>22}{'target':>14}   met")
    for goal in results.goals():
        print(f"{goal['goal']:<40}{goal['measured']:>22}{goal['target']:>14}   {'yes' if goal['met'] else 'NO'}")
    start, end = results.machine["load_average_at_start"], results.machine["load_average_at_end"]
    print(f"\nload average (1, 5, 15 min): {start} at the start, {end} at the end", flush=True)


def _print_medians(title: str, median_of: Callable[[str], Measurement]) -> None:
    print(f"\n{title}:\n")
    print(f"{'server':<18}{'req/s':>10}{'p50 ms':>10}{'p90 ms':>10}{'p99 ms':>10}{'requests':>11}")
    for app in APPS:
        median = median_of(app.name)
        print(
            f"{app.name:<18}{median.requests_per_second:>10,.0f}{median.p50_ms:>10.2f}{median.p90_ms:>10.2f}"
            f"{median.p99_ms:>10.2f}{median.requests:>11,}"
        )
