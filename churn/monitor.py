"""``python -m churn.monitor report --since 7d -o report.html``: the monitoring page as one standalone file.

The file holds the figures, the script, the styles and the charting library: it opens anywhere, offline,
and makes no request. The prediction log and the model come from the service's settings (``CHURN_*``),
or from ``--log`` and ``--model``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from churn.errors import MalformedInput
from churn.log_sinks import with_password_file
from churn.metadata import read_metadata
from churn.monitoring import Monitor, service_monitor, unavailable
from churn.monitoring_endpoints import page_data, templates
from churn.settings import Settings, SettingsError

STATIC = Path(__file__).parent / "static"
INLINED = {
    "css": "monitoring.css",
    "key": "api-key.js",
    "js": "monitoring.js",
    "chart": "vendor/chartjs/chart.umd.min.js",
}


def render_report(monitor: Monitor, last: str | None, since: str | None, until: str | None) -> str:
    """The standalone page with the figures of the window given as on the JSON endpoints."""
    window = monitor.window(last, since, until)
    data = {**page_data(monitor, None), "drift": monitor.drift(window), "performance": monitor.performance(window)}
    # In an inline script, "</" could end the element early; "<\/" means the same to JavaScript.
    files = {name: (STATIC / path).read_text(encoding="utf-8").replace("</", "<\\/") for name, path in INLINED.items()}
    files["css"] = (STATIC / INLINED["css"]).read_text(encoding="utf-8")
    return templates().get_template("monitoring.html").render(data=data, files=files, standalone=True)


def parse_arguments(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(prog="python -m churn.monitor", description="Watch the served model.")
    commands = parser.add_subparsers(dest="command", required=True)
    report = commands.add_parser("report", help="write the monitoring page, with its figures, as one HTML file")
    window = report.add_mutually_exclusive_group()
    window.add_argument("--last", help="the last N predictions (default: CHURN_MONITORING_WINDOW, 10000)")
    window.add_argument("--since", help="from a duration ago (30m, 24h, 7d, 2w) or an ISO 8601 time")
    report.add_argument("--until", help="up to a duration ago or an ISO 8601 time (default: now); needs --since")
    report.add_argument("-o", "--output", type=Path, required=True, help="the HTML file to write")
    report.add_argument("--log", help="the prediction log's URL (default: CHURN_PREDICTION_LOG)")
    report.add_argument(
        "--model", type=Path, help="the model file whose metadata holds the reference (default: CHURN_MODEL_PATH)"
    )
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    """Write the report; exit status 2 with one line saying why when it cannot."""
    args = parse_arguments(argv)
    try:
        settings = with_password_file(Settings.from_env())
        log = args.log or settings.prediction_log
        metadata = read_metadata(args.model or settings.model_path)
        monitor = service_monitor(log, metadata, settings)
        if monitor is None:
            raise SettingsError(unavailable(log, metadata) or "monitoring is not available")
        html = render_report(monitor, args.last, args.since, args.until)
    except (SettingsError, MalformedInput, OSError, ValueError) as error:
        print(f"churn.monitor: {error}", file=sys.stderr)
        return 2
    args.output.write_text(html, encoding="utf-8")
    print(f"churn.monitor: wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
