"""The client a marketing service runs: score a customer, and send a promo email to likely churners.

    python predict_test.py                                   # the course's customer, local service
    python predict_test.py --url http://<host>/predict       # Docker or the cloud
    python predict_test.py --customer customer.json          # another customer (or an array of them)

Where the service is: ``--url``, else the ``CHURN_URL`` variable, else localhost on ``PORT`` (9696). A service
with API keys gets the key from ``--api-key`` or the ``CHURN_API_KEY`` variable.

It needs only ``requests``, so it can be copied to any machine that calls the service.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import requests

DEFAULT_URL = "http://localhost:9696/predict"
DEFAULT_CUSTOMER_ID = "xyz-123"
TIMEOUT_SECONDS = 30

customer = {
    "customerid": "8879-zkjof",
    "gender": "female",
    "seniorcitizen": 0,
    "partner": "no",
    "dependents": "no",
    "tenure": 41,
    "phoneservice": "yes",
    "multiplelines": "no",
    "internetservice": "dsl",
    "onlinesecurity": "yes",
    "onlinebackup": "no",
    "deviceprotection": "yes",
    "techsupport": "yes",
    "streamingtv": "yes",
    "streamingmovies": "yes",
    "contract": "one_year",
    "paperlessbilling": "yes",
    "paymentmethod": "bank_transfer_(automatic)",
    "monthlycharges": 79.85,
    "totalcharges": 3320.75,
}


class ClientError(Exception):
    """Something a user can fix: the message says what."""


def predict_url(url: str) -> str:
    """``url`` with ``http://`` when it has no scheme and ``/predict`` when it has no path."""
    if "://" not in url:
        url = f"http://{url}"
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ClientError(f"{url!r} is not an http(s) URL such as {DEFAULT_URL}")
    path = parts.path if parts.path not in ("", "/") else "/predict"
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


def load_customers(path: Path) -> dict | list:
    """A customer object, or an array of them, from a JSON file."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except OSError as error:
        raise ClientError(f"cannot read {path}: {error.strerror}") from None
    except ValueError as error:
        raise ClientError(f"{path} is not valid JSON: {error}") from None
    if not isinstance(document, (dict, list)):
        raise ClientError(f"{path} must hold a customer object or an array of them")
    return document


def describe_error(response: requests.Response) -> str:
    """A readable account of an error response, from its problem document when it has one."""
    try:
        problem = response.json()
        lines = [f"{problem['status']} {problem['title']}: {problem['detail']}"]
        lines += [f"  - {e.get('field') or 'record'}: {e['message']}" for e in problem.get("errors", [])]
        return "\n".join(lines)
    except (ValueError, KeyError, TypeError, AttributeError):
        return f"{response.status_code} {response.reason}: {response.text[:500]}"


def default_url(environ: dict[str, str] | os._Environ[str] = os.environ) -> str:
    """``CHURN_URL`` when set, else the local service on ``PORT`` (9696 unless set), as gunicorn.conf.py binds it."""
    return environ.get("CHURN_URL", "").strip() or f"http://localhost:{environ.get('PORT', '').strip() or 9696}/predict"


def predict(url: str, payload: dict | list, api_key: str | None = None) -> dict | list:
    """POST ``payload`` to the service and return its JSON answer; :class:`ClientError` when it fails."""
    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    try:
        response = requests.post(url, json=payload, headers=headers, timeout=TIMEOUT_SECONDS)
    except requests.ConnectionError:
        raise ClientError(
            f"cannot connect to {url}: is the service running? Start it with `pipenv run gunicorn predict:app`."
        ) from None
    except requests.Timeout:
        raise ClientError(f"{url} did not answer within {TIMEOUT_SECONDS} s") from None
    if not response.ok:
        raise ClientError(f"the service refused the request:\n{describe_error(response)}")
    try:
        return response.json()
    except ValueError:
        raise ClientError(
            f"{url} answered {response.status_code} but not with JSON: is it the churn service?"
        ) from None


def report(result: dict[str, object], customer_id: str) -> None:
    """Print the answer and the decision, as the course does."""
    print(result)
    if result["churn"]:
        print(f"sending promo email to {customer_id}")
    else:
        print(f"not sending promo email to {customer_id}")


def main(argv: list[str] | None = None) -> int:
    """Score the customer(s) and print the decisions; exit status 1 with a message on failure."""
    parser = argparse.ArgumentParser(description="Score customers with the churn service.")
    parser.add_argument(
        "--url",
        default=default_url(),
        help=f"the service's predict URL (default: CHURN_URL, else {DEFAULT_URL} on PORT)",
    )
    parser.add_argument("--customer", type=Path, help="a JSON file with a customer object or an array of them")
    parser.add_argument(
        "--api-key", default=os.environ.get("CHURN_API_KEY") or None, help="the API key, if the service has keys"
    )
    args = parser.parse_args(argv)
    try:
        url = predict_url(args.url)
        payload = load_customers(args.customer) if args.customer else customer
        answer = predict(url, payload, args.api_key)
    except ClientError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    if isinstance(answer, dict):
        # The course's customer id for its sample; a file's own id when it has one.
        report(answer, str(answer.get("customerid", DEFAULT_CUSTOMER_ID)) if args.customer else DEFAULT_CUSTOMER_ID)
    else:
        for index, result in enumerate(answer):
            report(result, str(result.get("customerid", f"#{index}")))
    return 0


if __name__ == "__main__":
    sys.exit(main())
