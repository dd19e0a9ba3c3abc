"""``python -m benchmarks``: the HTTP comparison, the in-process figures, then the others (README, "Benchmark")."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from pathlib import Path
from types import FrameType

from benchmarks import figures, serving
from churn.arguments import integer_at_least

positive_int = integer_at_least(1)
non_negative_int = integer_at_least(0)


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    """The command line; worker options left out keep gunicorn.conf.py's settings."""
    parser = argparse.ArgumentParser(
        prog="scripts/benchmark",
        description="Compare the service (metrics off, by default, and with the prediction log to SQLite and to "
        "PostgreSQL) with the course's predict.py and an empty Flask endpoint under the same gunicorn settings (wrk "
        "on 127.0.0.1), then report the in-process scoring figures and those of the other benchmark modules.",
    )
    http = parser.add_argument_group("HTTP load")
    http.add_argument("--rounds", type=positive_int, default=3, help="interleaved rounds; medians are reported (3)")
    http.add_argument("--duration", type=positive_int, default=10, help="seconds measured per server and round (10)")
    http.add_argument("--warmup", type=non_negative_int, default=2, help="seconds of unmeasured load first (2)")
    http.add_argument("--connections", type=positive_int, default=8, help="concurrent connections (8)")
    http.add_argument("--wrk-threads", type=positive_int, default=2, help="wrk threads (2)")
    http.add_argument(
        "--paced-rate", type=non_negative_int, default=1000,
        help="requests per second of the paced run, for latencies; 0 leaves it out (1000)",
    )  # fmt: skip
    http.add_argument("--paced-duration", type=positive_int, default=5, help="seconds of the paced run (5)")
    workers = parser.add_argument_group("gunicorn workers, the same for all the servers (default: gunicorn.conf.py)")
    workers.add_argument("--workers", type=positive_int, help="worker processes (sets WEB_CONCURRENCY)")
    workers.add_argument("--worker-class", help="gunicorn's -k, e.g. gthread or sync")
    workers.add_argument("--threads", type=positive_int, help="threads per worker (gthread)")
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the HTTP results to FILE")
    parser.add_argument("--skip-http", action="store_true", help="skip the HTTP comparison")
    parser.add_argument("--skip-inprocess", action="store_true", help="skip the in-process figures")
    for part in figures.PARTS:
        parser.add_argument(f"--skip-{part.name}", action="store_true", help=f"skip {part.description}")
    args = parser.parse_args(argv)
    if args.connections < args.wrk_threads:
        parser.error("--connections must be at least --wrk-threads (each wrk thread needs a connection)")
    if args.skip_http and args.json:
        parser.error("--json writes the HTTP results, which --skip-http leaves out")
    return args


def stop_on_sigterm(signum: int, frame: FrameType | None) -> None:
    """Turn SIGTERM into an exit that runs the clean-up, so no server is left running."""
    sys.exit(128 + signum)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark; exit status 1 when a server, a request or one of the other parts failed."""
    args = parse_arguments(argv)
    signal.signal(signal.SIGTERM, stop_on_sigterm)
    if not args.skip_http:
        options = serving.GunicornOptions(workers=args.workers, worker_class=args.worker_class, threads=args.threads)
        load = serving.LoadOptions(
            connections=args.connections,
            wrk_threads=args.wrk_threads,
            duration=args.duration,
            warmup=args.warmup,
            paced_rate=args.paced_rate,
            paced_duration=args.paced_duration,
        )
        try:
            results = serving.run(options, load, args.rounds)
        except serving.BenchmarkError as error:
            print(f"benchmark failed: {error}", file=sys.stderr)
            return 1
        serving.print_report(results)
        if args.json:
            args.json.write_text(json.dumps(results.as_json(), indent=2) + "\n")
            print(f"HTTP results written to {args.json}")
    if not args.skip_inprocess:
        # Imported here: only this part needs it.
        from benchmarks import inprocess

        inprocess.report()
    # Every part runs, whichever failed before it.
    ran = [figures.run(part) for part in figures.PARTS if not getattr(args, f"skip_{part.name.replace('-', '_')}")]
    return 0 if all(ran) else 1


if __name__ == "__main__":
    try:
        sys.exit(main())
    except KeyboardInterrupt:
        print("\ninterrupted; the servers are stopped", file=sys.stderr)
        sys.exit(130)
