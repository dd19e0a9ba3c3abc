"""gunicorn settings, read automatically by ``gunicorn predict:app`` run from this folder.

``PORT`` and ``WEB_CONCURRENCY`` override the port and the number of worker processes.
"""

import os

wsgi_app = "predict:app"
# All interfaces: inside a container 127.0.0.1 would be unreachable from outside.
bind = f"0.0.0.0:{os.environ.get('PORT', '9696')}"
# The CPUs this process may use (a container's cpuset), not the host's count.
workers = int(os.environ.get("WEB_CONCURRENCY") or 2 * len(os.sched_getaffinity(0)) + 1)
# Threads give each worker keep-alive connections; sync workers close after every response.
worker_class = "gthread"
threads = 4
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
