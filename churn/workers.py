"""The gunicorn worker: gevent's, so a slow client costs a greenlet, with a time limit on reading each request.

gthread gives each connection that has sent a byte one of a few threads until its request is in, however
long that takes, so a few dozen clients trickling bytes stall the service (docs/slow-clients.md). Here an
idle or slow connection is a greenlet, and once a request's first byte has arrived its head and body
must be in within :data:`REQUEST_READ_TIMEOUT_S`, or the connection is closed with nothing answered.
Between requests a connection may stay idle for gunicorn's ``keepalive``.

Threads are left unpatched: the prediction log's writer stays an OS thread with native locks, so its
blocking database calls (psycopg, SQLite: C code gevent cannot make cooperative) never hold up requests.
"""

from __future__ import annotations

import signal
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import gevent
from gevent import monkey, socket
from greenlet import greenlet
from gunicorn.workers.ggevent import GeventWorker

# From a request's first byte to its last: 1 MiB (the largest body) at about 0.6 Mbit/s.
REQUEST_READ_TIMEOUT_S = 15.0
# A stopping worker lets requests already arriving on its connections come in for this long, then closes
# the connections still waiting for a client: `docker stop` gives 10 s before it kills.
STOP_LINGER_S = 2.0


class ReadTimeout(BaseException):
    """The client did not send its request in time, or the worker is stopping: close, answer nothing.

    A BaseException, like gevent's Timeout, so that no application's ``except Exception`` answers it.
    """


class TimedConnection:
    """A client socket whose reads, once a request has begun, must end by that request's deadline."""

    def __init__(self, sock: socket.socket, read_timeout: float) -> None:
        self._sock = sock
        self._read_timeout = read_timeout
        # None between requests: the keep-alive timeout applies then (GeventWorker.timeout_ctx).
        self.deadline: float | None = None
        # The greenlet blocked in recv, for a stopping worker to wake.
        self.reader: greenlet | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)

    def recv(self, size: int) -> bytes:
        """Bytes from the client, or :class:`ReadTimeout` past the current request's deadline."""
        if self.deadline is None:
            timeout = None
        else:
            timeout = self.deadline - time.monotonic()
            if timeout <= 0:
                raise ReadTimeout(f"its request was not in within {self._read_timeout:g} s")
        self._sock.settimeout(timeout)
        self.reader = gevent.getcurrent()
        try:
            data = self._sock.recv(size)
        except TimeoutError:
            raise ReadTimeout(f"its request was not in within {self._read_timeout:g} s") from None
        finally:
            self.reader = None
            self._sock.settimeout(self._read_timeout)
        if data and self.deadline is None:
            self.deadline = time.monotonic() + self._read_timeout
        return data


class ChurnWorker(GeventWorker):
    """gunicorn's gevent worker with a request read timeout, threads unpatched, and a prompt graceful stop."""

    read_timeout = REQUEST_READ_TIMEOUT_S

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.connections: set[TimedConnection] = set()

    def init_process(self) -> None:
        """Catch SIGTERM from the start: gunicorn installs its handlers after patching, which takes a while."""
        # Until then the master's handler, inherited, would swallow a `docker stop` sent just after boot, and
        # the worker would run on until the master kills it at the graceful timeout.
        signal.signal(signal.SIGTERM, lambda number, frame: setattr(self, "alive", False))
        super().init_process()

    def patch(self) -> None:
        """Patch as gunicorn's gevent worker does, except threads and the queues between them."""
        with warnings.catch_warnings():
            # "ssl imported before patching": the app is preloaded first. What it names, redis.asyncio, is
            # unused; the sinks look ssl up when they connect, so they get the patched module.
            warnings.simplefilter("ignore", monkey.MonkeyPatchWarning)
            monkey.patch_all(thread=False, queue=False)
        # gunicorn sets it before this runs, in code mypy cannot see into.
        listeners: list[Any] = self.sockets  # type: ignore[has-type]
        self.sockets = [socket.socket(s.FAMILY, socket.SOCK_STREAM, fileno=s.sock.detach()) for s in listeners]

    def handle(self, listener: Any, client: socket.socket, addr: Any) -> None:
        """Serve one connection through a :class:`TimedConnection`."""
        connection = TimedConnection(client, self.read_timeout)
        self.connections.add(connection)
        try:
            super().handle(listener, connection, addr)
        finally:
            self.connections.discard(connection)

    @contextmanager
    def timeout_ctx(self) -> Iterator[None]:
        """Around reading a request's head: an idle connection is closed after ``keepalive``, a slow one quietly."""
        try:
            with gevent.Timeout(self.cfg.keepalive, False):
                yield
        except ReadTimeout as error:
            # No request comes out, and gunicorn closes the connection.
            self.log.info("Closed a connection: %s", error)

    def handle_request(self, listener_name: Any, req: Any, sock: TimedConnection, addr: Any) -> None:
        """Answer one request; a body not in by the deadline closes the connection unanswered.

        Returning means the connection is kept alive (gunicorn raises StopIteration to close it).
        """
        try:
            super().handle_request(listener_name, req, sock, addr)
            # A body the app left unread is drained now, within the deadline, not within keepalive.
            while req.body.read(65536):
                pass
        except ReadTimeout as error:
            self.log.info("Closed a connection: %s", error)
            raise StopIteration from None
        sock.deadline = None

    def handle_exit(self, sig: int, frame: Any) -> None:
        """SIGTERM: stop as gunicorn does, and close the connections still waiting for a client after a linger."""
        super().handle_exit(sig, frame)
        gevent.spawn_later(STOP_LINGER_S, self._close_waiting)

    def _close_waiting(self) -> None:
        for connection in list(self.connections):
            if connection.reader is not None:
                gevent.kill(connection.reader, ReadTimeout("the worker is stopping"), block=False)
