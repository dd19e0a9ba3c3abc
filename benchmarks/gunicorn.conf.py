"""The project's gunicorn.conf.py with the access log off: all three benchmarked servers run with this.

An access log line costs gunicorn some 20 µs per request, which would flatter a slower server's ratio to a
faster one; gunicorn's command line can redirect the log but not switch it off.
"""

import runpy
from pathlib import Path

globals().update(
    (name, value)
    for name, value in runpy.run_path(str(Path(__file__).resolve().parent.parent / "gunicorn.conf.py")).items()
    if not name.startswith("__")
)
accesslog = None
