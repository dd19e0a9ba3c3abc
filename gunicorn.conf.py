"""gunicorn settings, read automatically by ``gunicorn predict:app`` run from this folder.

``PORT`` and ``WEB_CONCURRENCY`` override the port and the number of worker processes.
"""

import os
import shutil
import tempfile
from pathlib import Path

wsgi_app = "predict:app"
# All interfaces: inside a container 127.0.0.1 would be unreachable from outside.
bind = f"0.0.0.0:{os.environ.get('PORT', '9696')}"


def _workers() -> int:
    text = os.environ.get("WEB_CONCURRENCY", "").strip()
    if not text:
        # Scoring is CPU-bound: one worker per CPU this process may use (a container's cpuset, not the host's
        # count), plus one, measured faster with a lower p99 than the usual 2 x CPUs + 1 (benchmarks/README.md).
        return len(os.sched_getaffinity(0)) + 1
    if not text.isdigit() or int(text) < 1:
        # Zero workers would be a master that never answers; say so instead of starting.
        raise SystemExit(f"churn service cannot start: WEB_CONCURRENCY={text!r} is not valid: must be at least 1")
    return int(text)


workers = _workers()
# gevent's worker with a time limit on reading each request (churn/workers.py): a connection costs a
# greenlet, not one of a few threads, so slow clients cannot hold up the others (docs/slow-clients.md).
# It keeps connections alive between requests, up to this many a worker.
worker_class = "churn.workers.ChurnWorker"
worker_connections = 1000
# Load and check the model once, before forking, so a bad model stops the service at start.
preload_app = True
# Longer than load balancers' 60 s idle timeout, so they never reuse a connection gunicorn closed (502s).
keepalive = 75
timeout = 30
graceful_timeout = 10
# Text logs carry each request's id and duration; in JSON the service writes its own line per request.
accesslog = None if os.environ.get("CHURN_LOG_FORMAT", "").strip().lower() == "json" else "-"
access_log_format = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" %(M)sms id=%({x-request-id}o)s'
errorlog = "-"
# Heartbeat files on a container's overlay filesystem can stall workers; /dev/shm is memory.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
# One fixed socket path per user would clash between instances (tests, several services).
control_socket_disable = True

# Metrics from every worker, in files (prometheus_client's multiprocess mode). Set before the app is
# loaded, which preload does before any hook runs: a directory of this server's own, emptied at start,
# so counts of an earlier run are never added in. A SIGHUP reads this file again in the same master:
# then the directory and its counts stay as they are.
_PREPARED_BY = "CHURN_METRICS_DIR_PREPARED_BY"
if os.environ.get(_PREPARED_BY) != str(os.getpid()):
    _given = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if _given:
        Path(_given).mkdir(parents=True, exist_ok=True)
        for _stale in Path(_given).glob("*.db"):
            _stale.unlink()
    else:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="churn-metrics-")
    os.environ[_PREPARED_BY] = str(os.getpid())
    # A directory made here goes when the server stops; one given stays, as its owner made it.
    os.environ["CHURN_METRICS_DIR_OWN"] = "0" if _given else "1"
metrics_dir = Path(os.environ["PROMETHEUS_MULTIPROC_DIR"])


def child_exit(server, worker):
    """A worker is gone: keep its counts in the archive, drop its files (so restarts pile nothing up)."""
    from churn.metrics import retire_worker

    retire_worker(metrics_dir, worker.pid)


def post_worker_init(worker):
    """A worker is ready: start its prediction log's writer (so /ready knows soon) and freeze what is loaded."""
    from churn.app import warm_up

    warm_up(worker.wsgi)


def worker_exit(server, worker):
    """A worker is stopping: write out the predictions it still holds, within the graceful timeout, and its counts."""
    from churn.app import shut_down

    shut_down(worker.wsgi, timeout=graceful_timeout - 2)


def on_exit(server):
    """The server is stopping: a directory it made for itself goes with it."""
    if os.environ.get("CHURN_METRICS_DIR_OWN") == "1":
        shutil.rmtree(metrics_dir, ignore_errors=True)
