"""Slow clients against the service: whether normal requests are still answered and the slow ones closed.

For each server set-up compared, N connections send a request one byte every few seconds (half of them
trickling the head, half a declared body) for S seconds, while normal ``POST /predict`` requests arrive at
a fixed rate, each on a new connection. Reported: the share of normal requests answered (2xx within the
client timeout), their p50/p99 latency counted from when each was due (so a stalled server is not hidden
by a client that waits), and when the server closed the slow connections and whether it sent them anything.
Set-ups run one after another, in a different order each round. Everything is on 127.0.0.1.

    python -m benchmarks.slow_clients                      # every set-up, 200 slow clients for 60 s
    python -m benchmarks.slow_clients --setups churn gthread --slow 50 --hold 20
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.serving import APPS, BenchmarkError, GunicornOptions, free_port, running
from churn.arguments import integer_at_least
from churn.examples import SAMPLE_CUSTOMER

positive_int = integer_at_least(1)
GOAL_ANSWERED = 0.99
GOAL_P99_MS = 100.0
# The body a body-trickling client declares: more than it will send in any hold.
SLOW_BODY_BYTES = 100_000


@dataclass(frozen=True)
class Setup:
    """A way to serve the service: gunicorn's worker settings, optionally behind a buffering nginx."""

    name: str
    description: str
    options: GunicornOptions = field(default_factory=GunicornOptions)
    nginx: bool = False


SETUPS = {
    setup.name: setup
    for setup in (
        Setup("churn", "gunicorn.conf.py as it is", GunicornOptions()),
        Setup("gthread", "gthread, 2 threads a worker (the old setting)", GunicornOptions(None, "gthread", 2)),
        Setup("gthread-100", "gthread, 100 threads a worker", GunicornOptions(None, "gthread", 100)),
        Setup("gevent", "gunicorn's own gevent worker", GunicornOptions(None, "gevent")),
        Setup("nginx", "nginx buffering requests, in front of gthread x 2", GunicornOptions(None, "gthread", 2), True),
    )
}

NGINX_CONF = """\
daemon off;
worker_processes 1;
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;
{user}
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {folder}/body;
    proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi;
    uwsgi_temp_path {folder}/uwsgi;
    scgi_temp_path {folder}/scgi;
    # The whole request is read before gunicorn sees it, within these timeouts.
    client_header_timeout 15s;
    client_body_timeout 15s;
    keepalive_timeout 75s;
    upstream app {{ server 127.0.0.1:{upstream}; keepalive 16; }}
    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }}
    }}
}}
"""


@contextmanager
def nginx_in_front(upstream_port: int, folder: Path) -> Iterator[int]:
    """Start nginx on a free port, proxying to ``upstream_port``; its port."""
    if shutil.which("nginx") is None:
        raise BenchmarkError("nginx is not installed: `apt-get install nginx-light`, or leave out the nginx set-up")
    port = free_port()
    # As root, nginx's workers would otherwise run as nobody, who cannot write the temporary folders.
    user = "user root;" if os.getuid() == 0 else ""
    config = folder / "nginx.conf"
    config.write_text(NGINX_CONF.format(folder=folder, user=user, upstream=upstream_port, port=port))
    process = subprocess.Popen(["nginx", "-c", str(config), "-p", str(folder)], stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 10
        while asyncio.run(_answers(port)) is False:
            if process.poll() is not None or time.monotonic() > deadline:
                raise BenchmarkError(f"nginx did not start: {(folder / 'error.log').read_text()[-2000:]}")
            time.sleep(0.1)
        yield port
    finally:
        process.terminate()
        process.wait(timeout=10)


async def _answers(port: int) -> bool:
    try:
        status, _ = await normal_request(port, PREDICT_REQUEST, 2)
    except OSError:
        return False
    return status == 200


def predict_request() -> bytes:
    """A complete ``POST /predict`` of the course's customer, closing the connection after the answer."""
    body = json.dumps(SAMPLE_CUSTOMER).encode()
    head = (
        f"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


PREDICT_REQUEST = predict_request()


async def normal_request(port: int, request: bytes, timeout: float) -> tuple[int, float]:
    """Send ``request`` on a new connection; the status and the seconds until the whole answer was in."""
    started = time.monotonic()

    async def exchange() -> int:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(request)
            answer = await reader.read()
        finally:
            writer.close()
        return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else 0

    status = await asyncio.wait_for(exchange(), timeout)
    return status, time.monotonic() - started


@dataclass
class SlowResult:
    """What one slow connection saw."""

    mode: str
    closed_after_s: float | None = None  # None: still open at the end of the hold
    received: int = 0


async def slow_client(port: int, mode: str, interval: float, hold: float, result: SlowResult) -> None:
    """Open a connection and trickle a request one byte per ``interval`` until the server closes it or ``hold``."""
    if mode == "headers":
        prefix, trickle = b"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\n", b"X-Slow: " + b"a" * 10_000
    else:
        prefix = (
            f"POST /predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {SLOW_BODY_BYTES}\r\n\r\n"
        ).encode()
        trickle = b" " * SLOW_BODY_BYTES
    started = time.monotonic()
    reader, writer = await asyncio.open_connection("127.0.0.1", port)

    async def watch() -> None:
        # Whatever the server sends, until it closes the connection.
        while data := await reader.read(4096):
            result.received += len(data)

    watcher = asyncio.ensure_future(watch())
    try:
        writer.write(prefix)
        for byte in trickle:
            await asyncio.wait([watcher], timeout=interval)
            if watcher.done() or time.monotonic() - started >= hold:
                break
            writer.write(bytes([byte]))
        if watcher.done():
            result.closed_after_s = time.monotonic() - started
    except OSError:
        result.closed_after_s = time.monotonic() - started
    finally:
        watcher.cancel()
        writer.close()


@dataclass
class Run:
    """One set-up under slow clients."""

    setup: str
    latencies_ms: list[float]
    failures: dict[str, int]
    slow: list[SlowResult]

    @property
    def sent(self) -> int:
        """Normal requests sent."""
        return len(self.latencies_ms) + sum(self.failures.values())

    @property
    def answered(self) -> float:
        """The share of normal requests answered with 2xx in time."""
        return len(self.latencies_ms) / self.sent if self.sent else 0.0

    def percentile_ms(self, share: float) -> float:
        """A latency percentile of the answered requests, or infinity when none was."""
        if not self.latencies_ms:
            return float("inf")
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(share * len(ordered)))]

    def summary(self) -> dict[str, object]:
        """The figures the report prints, for ``--json``."""
        closed = [slow.closed_after_s for slow in self.slow if slow.closed_after_s is not None]
        return {
            "setup": self.setup,
            "normal_sent": self.sent,
            "answered": self.answered,
            "p50_ms": self.percentile_ms(0.5),
            "p99_ms": self.percentile_ms(0.99),
            "failures": self.failures,
            "slow_closed": len(closed),
            "slow_total": len(self.slow),
            "slow_closed_median_s": statistics.median(closed) if closed else None,
            "slow_closed_max_s": max(closed) if closed else None,
            "slow_bytes_received": sum(slow.received for slow in self.slow),
        }


@dataclass(frozen=True)
class Load:
    """The slow clients and the normal requests of one run."""

    slow: int = 200
    interval: float = 3.0
    hold: float = 60.0
    rate: float = 20.0
    timeout: float = 15.0


async def attack(port: int, load: Load, setup: str) -> Run:
    """Hold ``load.slow`` slow connections while sending normal requests at ``load.rate`` per second."""
    slow = [SlowResult("headers" if number % 2 else "body") for number in range(load.slow)]
    slow_tasks = []
    for result in slow:
        slow_tasks.append(asyncio.ensure_future(slow_client(port, result.mode, load.interval, load.hold, result)))
        # Opened over the first second, not in one burst past the listen backlog.
        await asyncio.sleep(1 / load.slow)
    latencies: list[float] = []
    failures: dict[str, int] = {}

    async def one(due: float) -> None:
        try:
            status, _ = await normal_request(port, PREDICT_REQUEST, load.timeout)
        except (OSError, TimeoutError) as error:
            failures[type(error).__name__] = failures.get(type(error).__name__, 0) + 1
            return
        if 200 <= status < 300:
            # From when the request was due, so time spent waiting to connect counts.
            latencies.append((time.monotonic() - due) * 1000)
        else:
            failures[f"status {status}"] = failures.get(f"status {status}", 0) + 1

    # Normal requests from 2 s in (the slow clients are all connected) to the end of the hold.
    start = time.monotonic() + 2
    count = int((load.hold - 3) * load.rate)
    normal_tasks = []
    for number in range(count):
        due = start + number / load.rate
        await asyncio.sleep(max(0.0, due - time.monotonic()))
        normal_tasks.append(asyncio.ensure_future(one(due)))
    await asyncio.gather(*normal_tasks, *slow_tasks)
    return Run(setup, latencies, failures, slow)


def measure(setup: Setup, load: Load, folder: Path) -> Run:
    """Start the set-up's servers, run the slow clients against it, stop them."""
    service = APPS[0]
    body = json.dumps(SAMPLE_CUSTOMER).encode()
    with running(service, setup.options, folder / f"{setup.name}.log", body) as (server, _):
        if not setup.nginx:
            return asyncio.run(attack(server.port, load, setup.name))
        with nginx_in_front(server.port, folder / "nginx") as port:
            return asyncio.run(attack(port, load, setup.name))


def run(setups: list[Setup], load: Load, rounds: int) -> list[Run]:
    """Every set-up ``rounds`` times, interleaved, each line printed as it ends."""
    runs = []
    with tempfile.TemporaryDirectory(prefix="slow-clients-") as folder:
        (Path(folder) / "nginx").mkdir()
        for number in range(rounds):
            shift = number % len(setups)
            for setup in setups[shift:] + setups[:shift]:
                result = measure(setup, load, Path(folder))
                runs.append(result)
                print(f"round {number + 1}/{rounds}  " + line(result.summary()), flush=True)
    return runs


def line(summary: dict[str, object]) -> str:
    """One run in one line."""
    closed = summary["slow_closed_median_s"]
    closed_text = "never" if closed is None else f"median {closed:.1f} s, max {summary['slow_closed_max_s']:.1f} s"
    failures = summary["failures"] or "none"
    return (
        f"{summary['setup']:<12} answered {summary['answered']:7.2%} of {summary['normal_sent']}"
        f"  p50 {summary['p50_ms']:8.1f} ms  p99 {summary['p99_ms']:8.1f} ms  failed: {failures}"
        f"  | slow closed {summary['slow_closed']}/{summary['slow_total']} ({closed_text}),"
        f" {summary['slow_bytes_received']} bytes sent to them"
    )


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.slow_clients", description=__doc__.split("\n\n")[0] if __doc__ else None
    )
    parser.add_argument("--setups", nargs="+", choices=SETUPS, default=list(SETUPS), help="set-ups to compare")
    parser.add_argument("--slow", type=positive_int, default=200, help="slow connections (200)")
    parser.add_argument("--interval", type=float, default=3.0, help="seconds between a slow client's bytes (3)")
    parser.add_argument("--hold", type=positive_int, default=60, help="seconds the slow clients are held (60)")
    parser.add_argument("--rate", type=float, default=20.0, help="normal requests per second (20)")
    parser.add_argument("--timeout", type=float, default=15.0, help="a normal request's client timeout, s (15)")
    parser.add_argument("--rounds", type=positive_int, default=1, help="interleaved rounds (1)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write every run's figures to FILE")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Run the comparison; exit status 1 when a server could not be run."""
    args = parse_arguments(argv)
    load = Load(args.slow, args.interval, float(args.hold), args.rate, args.timeout)
    print(
        f"{load.slow} slow connections (half trickling the head, half the body, a byte every {load.interval:g} s) "
        f"held {load.hold:g} s; POST /predict at {load.rate:g}/s on new connections, client timeout "
        f"{load.timeout:g} s. Goal: >= {GOAL_ANSWERED:.0%} answered, p99 < {GOAL_P99_MS:g} ms.",
        flush=True,
    )
    for name in args.setups:
        print(f"  {name:<12} {SETUPS[name].description}")
    try:
        runs = run([SETUPS[name] for name in args.setups], load, args.rounds)
    except BenchmarkError as error:
        print(f"benchmark failed: {error}", file=sys.stderr)
        return 1
    if args.json:
        args.json.write_text(json.dumps([result.summary() for result in runs], indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
