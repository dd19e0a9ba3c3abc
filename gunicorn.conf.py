"""gunicorn settings, read automatically by ``gunicorn predict:app`` run from this folder.

``PORT`` and ``WEB_CONCURRENCY`` override the port and the number of worker processes.
"""

import os

wsgi_app = "predict:app"
# All interfaces: inside a container 127.0.0.1 would be unreachable from outside.
bind = f"0.0.0.0:{os.environ.get('PORT', '9696')}"
# Scoring is CPU-bound: one worker per CPU this process may use (a container's cpuset, not the host's
# count), plus one, measured faster with a lower p99 than the usual 2 x CPUs + 1 (README, "Benchmark").
workers = int(os.environ.get("WEB_CONCURRENCY") or len(os.sched_getaffinity(0)) + 1)
# gthread keeps connections alive between requests (sync workers close after every response);
# two threads let a worker answer while another request of its waits on the network.
worker_class = "gthread"
threads = 2
# Load and check the model once, before forking, so a bad model stops the service at start.
preload_app = True
# Longer than load balancers' 60 s idle timeout, so they never reuse a connection gunicorn closed (502s).
keepalive = 75
timeout = 30
graceful_timeout = 10
accesslog = "-"
errorlog = "-"
# Heartbeat files on a container's overlay filesystem can stall workers; /dev/shm is memory.
worker_tmp_dir = "/dev/shm" if os.path.isdir("/dev/shm") else None
# One fixed socket path per user would clash between instances (tests, several services).
control_socket_disable = True
