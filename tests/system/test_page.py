"""The home page in a real (headless) Chromium against a real gunicorn: what a person sees and gets."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import Select, WebDriverWait

from churn.examples import SAMPLE_CUSTOMER
from churn.schema import CATEGORICAL, NUMERICAL
from tests.helpers.browser import CSP_VIOLATION, PHONE, WAIT_SECONDS, take_screenshot
from tests.helpers.gunicorn import Server, start_gunicorn, stop

FEATURES = {name: value for name, value in SAMPLE_CUSTOMER.items() if name in CATEGORICAL or name in NUMERICAL}
RISKY_CHANGES: dict[str, str | int] = {
    "contract": "month-to-month",
    "tenure": 1,
    "internetservice": "fiber_optic",
    "paymentmethod": "electronic_check",
}
API_KEY = "secret-key"
# Failed requests the tests cause on purpose, which Chromium logs as SEVERE "Failed to load resource" lines.
EXPECTED_STATUSES = re.compile(r"status of (401|422)\b")


def open_page(driver: WebDriver, server: Server) -> Iterator[WebDriver]:
    """``server``'s home page, freshly loaded; afterwards, no script errors or CSP violations may have been logged."""
    driver.get_log("browser")  # What earlier tests left.
    driver.get(f"{server.url}/")
    WebDriverWait(driver, WAIT_SECONDS).until(ec.element_to_be_clickable((By.ID, "score")))
    try:
        yield driver
    finally:
        # The module shares one browser tab: an API key one test typed must not reach the next.
        driver.execute_script("sessionStorage.clear(); localStorage.clear();")
    errors = [entry for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
    assert [entry for entry in errors if not EXPECTED_STATUSES.search(entry["message"])] == []


@pytest.fixture
def page(driver: WebDriver, live_server: Server) -> Iterator[WebDriver]:
    yield from open_page(driver, live_server)


@pytest.fixture(scope="module")
def keyed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A gunicorn told to require ``Authorization: Bearer secret-key`` on the data endpoints."""
    server = start_gunicorn(tmp_path_factory.mktemp("gunicorn-keyed") / "gunicorn.log", env={"CHURN_API_KEYS": API_KEY})
    yield server
    stop(server)


@pytest.fixture
def keyed_page(driver: WebDriver, keyed_server: Server) -> Iterator[WebDriver]:
    unauthorised = requests.post(f"{keyed_server.url}/predict", json=SAMPLE_CUSTOMER, timeout=10)
    if unauthorised.status_code != 401:
        pytest.skip(
            f"the service does not honour CHURN_API_KEYS yet: /predict without a key answered "
            f"{unauthorised.status_code}, not 401"
        )
    yield from open_page(driver, keyed_server)


def page_data(driver: WebDriver) -> dict[str, object]:
    """What the page's script reads: the JSON block the template writes."""
    return json.loads(driver.find_element(By.ID, "page-data").get_attribute("textContent"))


def record_requests(driver: WebDriver) -> None:
    """Wrap the page's fetch so the test can read what it sent (and to where)."""
    driver.execute_script(
        "const real = window.fetch; window.sent = [];"
        "window.fetch = (url, init) => { window.sent.push({url: String(url), init: init}); return real(url, init); };"
    )


def sent_requests(driver: WebDriver) -> list[dict[str, object]]:
    return driver.execute_script("return window.sent;")


def api_prediction(server: Server, customer: dict[str, object], key: str | None = None) -> dict[str, object]:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    response = requests.post(f"{server.url}/predict", json=customer, headers=headers, timeout=10)
    response.raise_for_status()
    return response.json()


def api_explanation(server: Server, customer: dict[str, object]) -> dict[str, Any]:
    """What ``POST /predict?explain=true`` answers for ``customer``: the page's source for reasons and changes."""
    response = requests.post(f"{server.url}/predict", params={"explain": "true"}, json=customer, timeout=10)
    response.raise_for_status()
    return response.json()


def as_shown(probability: float) -> str:
    return f"{probability * 100:.1f}%"


def score(driver: WebDriver) -> str:
    """Click Score and wait for a probability; its text."""
    driver.find_element(By.ID, "score").click()
    probability = WebDriverWait(driver, WAIT_SECONDS).until(ec.visibility_of_element_located((By.ID, "probability")))
    return probability.text


def score_expecting_error(driver: WebDriver) -> str:
    """Click Score and wait for the error box; its text."""
    driver.find_element(By.ID, "score").click()
    return WebDriverWait(driver, WAIT_SECONDS).until(ec.visibility_of_element_located((By.ID, "error"))).text


def set_field(driver: WebDriver, name: str, value: object) -> None:
    if name in CATEGORICAL:
        Select(driver.find_element(By.ID, name)).select_by_value(str(value))
    else:
        element = driver.find_element(By.ID, name)
        element.clear()
        element.send_keys(str(value))


def assert_verdict(driver: WebDriver, churn: bool) -> None:
    verdict = driver.find_element(By.ID, "verdict").text.lower()
    expected = "likely to churn" if churn else "not likely to churn"
    assert verdict.startswith(expected), verdict
    assert "50%" in verdict, f"the threshold is not mentioned: {verdict}"


def assert_no_result(driver: WebDriver) -> None:
    for element in ("result", "probability", "verdict"):
        assert not driver.find_element(By.ID, element).is_displayed(), f"#{element} is still shown"


def shown_reasons(driver: WebDriver, way: str) -> list[dict[str, object]]:
    """The chart's rows pushing ``way`` ("up" or "down"): feature, text and bar width in pixels."""
    return driver.execute_script(
        "return [...document.querySelectorAll('#reasons-' + arguments[0] + ' li[data-feature]')].map(li => ({"
        "  feature: li.dataset.feature, text: li.innerText.replace(/\\s+/g, ' ').trim(),"
        "  width: li.querySelector('.bar').getBoundingClientRect().width,"
        "  colour: getComputedStyle(li.querySelector('.bar')).backgroundColor}));",
        way,
    )


def expected_reasons(explained: dict[str, Any], way: str) -> list[dict[str, Any]]:
    """The API's four largest contributions pushing ``way``, in its order (largest first)."""
    contributions = explained["explanation"]["contributions"]
    return [c for c in contributions if (c["contribution"] > 0) == (way == "up") and c["contribution"] != 0][:4]


def shown_what_if(driver: WebDriver) -> list[dict[str, str]]:
    return driver.execute_script(
        "return [...document.querySelectorAll('#what-if-list li')].map(li => ({"
        "  field: li.dataset.field, to: li.dataset.to, text: li.innerText.replace(/\\s+/g, ' ').trim()}));"
    )


def shown_warnings(driver: WebDriver) -> list[str]:
    return [item.text for item in driver.find_elements(By.CSS_SELECTOR, "#warnings li")]


def test_page_shows_the_form_prefilled_and_scores_the_sample_customer(page: WebDriver, live_server: Server) -> None:
    assert page.title
    for name, allowed in CATEGORICAL.items():
        select = Select(page.find_element(By.CSS_SELECTOR, f"select#{name}[name={name}]"))
        assert [option.get_attribute("value") for option in select.options] == [str(value) for value in allowed]
        assert select.first_selected_option.get_attribute("value") == str(SAMPLE_CUSTOMER[name])
        assert page.find_element(By.CSS_SELECTOR, f"label[for={name}]").text.strip()
    for name in NUMERICAL:
        field = page.find_element(By.CSS_SELECTOR, f"input#{name}[name={name}]")
        # Text, so the page sees what was typed; a phone still shows a number pad.
        assert field.get_attribute("type") == "text"
        assert field.get_attribute("inputmode") == "decimal"
        assert float(field.get_attribute("value")) == SAMPLE_CUSTOMER[name]
        assert page.find_element(By.CSS_SELECTOR, f"label[for={name}]").text.strip()
    assert not page.find_element(By.ID, "probability").is_displayed()

    record_requests(page)
    expected = api_prediction(live_server, SAMPLE_CUSTOMER)
    assert score(page) == as_shown(expected["churn_probability"])
    assert_verdict(page, expected["churn"])
    assert not page.find_element(By.ID, "error").is_displayed()
    assert not page.find_element(By.ID, "stale").is_displayed()
    assert not page.find_element(By.ID, "warnings").is_displayed(), "the course's own customer is in range"

    [sent] = sent_requests(page)
    # Relative, so the page works behind a path prefix; JSON with numbers as numbers (the API would
    # also accept "41", so only the body itself shows the page sends the right types).
    assert sent["url"] == "predict?explain=true"
    assert sent["init"]["method"] == "POST"
    assert sent["init"]["headers"]["Content-Type"] == "application/json"
    assert "Authorization" not in sent["init"]["headers"], "no key was entered"
    assert json.loads(sent["init"]["body"]) == FEATURES


def test_links_are_relative_and_work(page: WebDriver, live_server: Server) -> None:
    for path in ("apidocs/", "model"):
        link = page.find_element(By.CSS_SELECTOR, f'a[href="{path}"]')
        assert link.text.strip()
        assert requests.get(link.get_attribute("href"), timeout=10).status_code == 200
    for selector, attribute, path, mimetype in (
        ("link[rel=stylesheet]", "href", "static/page.css", "text/css"),
        ("script[src]", "src", "static/page.js", "text/javascript"),
    ):
        element = page.find_element(By.CSS_SELECTOR, f'{selector}[{attribute}="{path}"]')
        response = requests.get(element.get_attribute(attribute), timeout=10)
        assert response.status_code == 200
        assert response.headers["Content-Type"].split(";")[0] == mimetype


def test_page_has_nothing_inline_for_the_csp_to_refuse(page: WebDriver, live_server: Server) -> None:
    # The policy the service sends (script-src 'self'; style-src 'self') refuses inline scripts, style
    # attributes and event handlers: the page has none, and its data is a JSON block that never runs.
    # The served HTML, parsed as the browser parses it (the live page has styles its script set, which is allowed).
    html = requests.get(f"{live_server.url}/", timeout=10).text
    inline = page.execute_script(
        "const doc = new DOMParser().parseFromString(arguments[0], 'text/html'); const found = [];"
        "for (const s of doc.scripts) if (!s.src && s.type !== 'application/json') found.push(s.outerHTML);"
        "for (const e of doc.querySelectorAll('[style], style')) found.push(e.outerHTML);"
        "for (const e of doc.querySelectorAll('*'))"
        "  for (const a of e.attributes) if (a.name.startsWith('on')) found.push(e.tagName + ' ' + a.name);"
        "for (const a of doc.querySelectorAll('a[href^=\"javascript:\"]')) found.push(a.outerHTML);"
        "return found;",
        html,
    )
    assert inline == []
    data = page_data(page)
    assert data["threshold"] == 0.5
    assert set(data["categorical"]) == set(CATEGORICAL)
    assert data["numerical"] == list(NUMERICAL)
    assert isinstance(data["training_ranges"], dict)

    # The policy is on: without it, nothing here would show that it lets the page work.
    policy = requests.get(f"{live_server.url}/", timeout=10).headers.get("Content-Security-Policy", "")
    assert "script-src 'self'" in policy
    assert "style-src 'self'" in policy

    score(page)
    page.find_element(By.ID, "tenure").send_keys("0")  # Marks the result stale: the script sets classes and styles.
    log = page.get_log("browser")
    refused = [entry["message"] for entry in log if CSP_VIOLATION.search(entry["message"])]
    assert refused == [], "the Content-Security-Policy blocked part of the page"
    assert [entry for entry in log if entry["level"] == "SEVERE"] == []


def test_changed_fields_change_the_prediction(page: WebDriver, live_server: Server) -> None:
    before = score(page)
    customer = {**FEATURES, **RISKY_CHANGES}
    expected = api_prediction(live_server, customer)
    assert expected["churn"], f"the changes were meant to make a churner: {expected}"
    for name, value in RISKY_CHANGES.items():
        set_field(page, name, value)

    shown = as_shown(expected["churn_probability"])
    page.find_element(By.ID, "score").click()
    WebDriverWait(page, WAIT_SECONDS).until(ec.text_to_be_present_in_element((By.ID, "probability"), shown))
    assert page.find_element(By.ID, "probability").text == shown != before
    assert_verdict(page, churn=True)


def test_editing_a_field_marks_the_result_stale(page: WebDriver) -> None:
    before = score(page)
    stale = page.find_element(By.ID, "stale")
    assert not stale.is_displayed()

    page.find_element(By.ID, "tenure").send_keys("0")  # 41 becomes 410, not yet scored.
    assert stale.is_displayed()
    assert "score again" in stale.text.lower()
    assert "stale" in page.find_element(By.ID, "result").get_attribute("class")
    for part in ("probability", "verdict", "reasons", "what-if"):
        opacity = page.execute_script(f"return getComputedStyle(document.getElementById('{part}')).opacity;")
        assert float(opacity) < 1, f"#{part} is not dimmed with the stale result"

    after = score(page)
    assert after != before
    assert not stale.is_displayed()
    assert "stale" not in page.find_element(By.ID, "result").get_attribute("class")

    # A choice in a list is an edit too; typing an API key is not.
    page.find_element(By.ID, "apikey").send_keys("anything")
    assert not stale.is_displayed()
    set_field(page, "contract", "two_year")
    assert stale.is_displayed()


def test_server_errors_are_shown_on_the_field(page: WebDriver) -> None:
    score(page)
    contract = page.find_element(By.ID, "contract")
    # A value the list does not offer, as a script or a stale copy of the page would send it: only the API refuses it.
    page.execute_script("arguments[0].selectedOptions[0].value = 'weekly';", contract)
    error = score_expecting_error(page)

    assert "contract" in error.lower() or "value" in error.lower(), error
    assert contract.get_attribute("aria-invalid") == "true"
    assert "'weekly' is not one of the allowed values" in page.find_element(By.ID, "contract-error").text
    assert_no_result(page)

    # Fixing the value clears the mark, and the next score replaces the error.
    page.execute_script("arguments[0].selectedOptions[0].value = 'one_year';", contract)
    set_field(page, "contract", "month-to-month")
    assert contract.get_attribute("aria-invalid") is None
    assert page.find_element(By.ID, "contract-error").text == ""
    score(page)
    assert not page.find_element(By.ID, "error").is_displayed()


def test_values_the_api_would_refuse_are_refused_on_the_field(page: WebDriver) -> None:
    record_requests(page)
    for name, typed, message in (
        ("tenure", "-5", "must not be negative"),
        ("tenure", "", "is required"),
        ("monthlycharges", "lots", "must be a number"),
    ):
        set_field(page, name, typed)
        score_expecting_error(page)
        field = page.find_element(By.ID, name)
        assert field.get_attribute("aria-invalid") == "true", (name, typed)
        assert message in page.find_element(By.ID, f"{name}-error").text, (name, typed)
        assert_no_result(page)
        set_field(page, name, FEATURES[name])
        assert field.get_attribute("aria-invalid") is None
    assert sent_requests(page) == [], "a refused value was sent anyway"


def test_a_comma_is_refused_with_the_dot_hint_not_scored_as_thousands(page: WebDriver) -> None:
    score(page)
    record_requests(page)
    set_field(page, "monthlycharges", "79,85")
    error = score_expecting_error(page)

    field = page.find_element(By.ID, "monthlycharges")
    note = page.find_element(By.ID, "monthlycharges-error").text
    assert field.get_attribute("aria-invalid") == "true"
    assert "use a dot for decimals" in note, note
    assert "fix the marked fields" in error.lower()
    assert_no_result(page)
    # Never 7985: nothing was sent, and the field still shows what was typed.
    assert sent_requests(page) == []
    assert field.get_attribute("value") == "79,85"
    assert "7985" not in page.find_element(By.TAG_NAME, "body").text

    set_field(page, "monthlycharges", "79.85")
    assert score(page) == as_shown(api_prediction_for_page(page, FEATURES)["churn_probability"])


def api_prediction_for_page(driver: WebDriver, customer: dict[str, object]) -> dict[str, object]:
    """What the API answers for ``customer``, asked at the page's own origin."""
    origin = driver.execute_script("return location.origin;")
    response = requests.post(f"{origin}/predict", json=customer, timeout=10)
    response.raise_for_status()
    return response.json()


def test_blank_total_charges_is_scored_as_a_new_customer(page: WebDriver, live_server: Server) -> None:
    total = page.find_element(By.ID, "totalcharges")
    assert total.get_attribute("required") is None
    hint = page.find_element(By.ID, "totalcharges-hint")
    assert "blank for a new customer" in hint.text.lower()
    assert "totalcharges-hint" in total.get_attribute("aria-describedby").split()
    record_requests(page)
    new_customer = {**FEATURES, "tenure": 0, "totalcharges": ""}
    set_field(page, "tenure", 0)
    page.find_element(By.ID, "totalcharges").clear()

    expected = api_prediction(live_server, new_customer)
    assert expected == api_prediction(live_server, {**new_customer, "totalcharges": 0}), "the API reads blank as 0"
    assert score(page) == as_shown(expected["churn_probability"])
    assert not page.find_element(By.ID, "error").is_displayed()
    [sent] = sent_requests(page)
    body = json.loads(sent["init"]["body"])
    assert body["totalcharges"] == "", "a blank must be sent as blank, as the API documents it"
    assert body == new_customer


def test_values_far_outside_the_training_data_warn_but_still_score(page: WebDriver, live_server: Server) -> None:
    ranges = page_data(page)["training_ranges"]
    if "monthlycharges" not in ranges:
        pytest.skip(
            "the page has no training range for monthlycharges: the served model's metadata has no "
            "reference['numerical'] (retrain to add it), or the app does not pass training_ranges"
        )
    # The Telco data's monthly charges stop at 118.75; the training split's cannot go beyond.
    assert ranges["monthlycharges"]["max"] <= 118.75
    warning = page.find_element(By.ID, "monthlycharges-warning")
    assert not warning.is_displayed(), "the sample customer is in range"

    set_field(page, "monthlycharges", 7985)
    assert warning.is_displayed(), "the warning shows while typing"
    assert "training data" in warning.text
    assert str(ranges["monthlycharges"]["max"]) in warning.text.replace(",", "")

    expected = api_explanation(live_server, {**FEATURES, "monthlycharges": 7985})
    assert score(page) == as_shown(expected["churn_probability"]), "a warning does not block scoring"
    summary = page.find_element(By.ID, "warnings")
    assert summary.is_displayed()
    assert "monthly charges" in summary.text.lower()
    assert page.find_element(By.ID, "monthlycharges").get_attribute("aria-invalid") is None

    # The API's warnings, each once: its out-of-range one replaces the page's own, which said the same.
    warnings = expected["warnings"]
    kinds = {(given["field"], given["kind"]) for given in warnings}
    assert ("monthlycharges", "out_of_range") in kinds, warnings
    shown = shown_warnings(page)
    assert len(shown) == len(warnings), shown
    for given in warnings:
        # The message as the API wrote it, after the field's name (which the page writes as its label).
        tail = given["message"].removeprefix(given["field"])
        assert [text for text in shown if text.endswith(tail)] != [], (tail, shown)
    about_charges = [text for text in shown if text.lower().startswith("monthly charges")]
    assert len(about_charges) == 1, shown
    assert "67.3x the largest value seen in training" in about_charges[0]
    assert "far outside the training data" not in summary.text, "the page's own warning is shown as well"

    set_field(page, "monthlycharges", FEATURES["monthlycharges"])
    assert not warning.is_displayed()


def test_an_answer_without_warnings_still_gets_the_pages_own(page: WebDriver) -> None:
    # A service from before explanations: the page's out-of-range warning stands, and the parts the
    # answer lacks stay hidden rather than empty.
    if "monthlycharges" not in page_data(page)["training_ranges"]:
        pytest.skip("the page has no training range for monthlycharges")
    page.execute_script(
        "window.fetch = () => Promise.resolve(new Response(JSON.stringify({churn_probability: 0.75, churn: true}),"
        " {status: 200, headers: {'Content-Type': 'application/json'}}));"
    )
    set_field(page, "monthlycharges", 7985)
    assert score(page) == "75.0%"
    [warning] = shown_warnings(page)
    assert warning.startswith("Monthly charges")
    assert "far outside the training data" in warning
    assert not page.find_element(By.ID, "reasons").is_displayed()
    assert not page.find_element(By.ID, "what-if").is_displayed()


def test_reasons_are_a_chart_of_the_apis_largest_contributions(page: WebDriver, live_server: Server) -> None:
    for customer in (FEATURES, {**FEATURES, **RISKY_CHANGES}):
        for name, value in customer.items():
            set_field(page, name, value)
        explained = api_explanation(live_server, customer)
        assert score(page) == as_shown(explained["churn_probability"])
        reasons = page.find_element(By.ID, "reasons")
        assert reasons.is_displayed()
        assert page.find_element(By.ID, "reasons-up").get_attribute("aria-labelledby") == "reasons-up-title"
        assert "towards churn" in page.find_element(By.ID, "reasons-up-title").text.lower()
        assert "away from churn" in page.find_element(By.ID, "reasons-down-title").text.lower()
        colours = set()
        for way in ("up", "down"):
            expected = expected_reasons(explained, way)
            shown = shown_reasons(page, way)
            assert expected, f"the customer has no reason pushing {way}: pick another"
            assert [row["feature"] for row in shown] == [c["feature"] for c in expected], way
            for row, contribution in zip(shown, expected, strict=True):
                # "Label = value", then the signed log-odds: the direction is in the text, not only the colour.
                label = page.find_element(By.CSS_SELECTOR, f"label[for={contribution['feature']}]").text
                assert row["text"].startswith(re.sub(r"\s*\(.*\)$", "", label) + " = "), row
                number = f"{contribution['contribution']:+.2f}".replace("-", "\u2212")
                assert number in row["text"], (number, row)
                assert "odds" in row["text"]
            widths = [row["width"] for row in shown]
            assert widths == sorted(widths, reverse=True), f"bars not largest first: {widths}"
            assert widths[0] > 0
            colours |= {row["colour"] for row in shown}
        assert len(colours) == 2, f"up and down bars should differ in colour: {colours}"
        # One scale for both ways: the largest reason overall has the widest bar.
        largest = max(
            expected_reasons(explained, "up") + expected_reasons(explained, "down"),
            key=lambda c: abs(c["contribution"]),
        )
        rows = shown_reasons(page, "up") + shown_reasons(page, "down")
        widest = max(rows, key=lambda row: row["width"])
        assert widest["feature"] == largest["feature"]


def test_what_if_lists_the_apis_changes_best_first(page: WebDriver, live_server: Server) -> None:
    customer = {**FEATURES, **RISKY_CHANGES}
    for name, value in RISKY_CHANGES.items():
        set_field(page, name, value)
    explained = api_explanation(live_server, customer)
    score(page)
    expected = explained["what_if"]
    assert len(expected) >= 3, expected
    shown = shown_what_if(page)
    offered = [(change["field"], change["to"]) for change in expected]
    assert [(row["field"], row["to"]) for row in shown] == offered
    now = f"{explained['churn_probability']:.3f}"
    after = []
    for row, change in zip(shown, expected, strict=True):
        target = Select(page.find_element(By.ID, change["field"]))
        target_text = next(o.text for o in target.options if o.get_attribute("value") == change["to"])
        assert f"\u2192 {target_text}" in row["text"], row
        assert f"{now} \u2192 {change['churn_probability']:.3f}" in row["text"], row
        after.append(float(re.search(r"\d\.\d{3} \u2192 (\d\.\d{3})", row["text"]).group(1)))
    assert after == sorted(after), f"not best first: {after}"
    assert not page.find_element(By.ID, "what-if-empty").is_displayed()
    assert page.find_element(By.CSS_SELECTOR, "ol#what-if-list").get_attribute("aria-labelledby") == "what-if-title"


def test_what_if_says_so_when_no_change_would_help(page: WebDriver, live_server: Server) -> None:
    best = {"contract": "two_year", "paymentmethod": "mailed_check", "paperlessbilling": "no"}
    customer = {**FEATURES, **best}
    assert customer["onlinesecurity"] == customer["techsupport"] == "yes"
    assert api_explanation(live_server, customer)["what_if"] == [], "the customer was meant to have no better option"
    for name, value in best.items():
        set_field(page, name, value)
    score(page)
    assert page.find_element(By.ID, "what-if").is_displayed()
    assert shown_what_if(page) == []
    assert page.find_element(By.ID, "what-if-empty").text == (
        "No change among contract, payment method, paperless billing, online security and tech support would lower it."
    )


def test_api_key_is_sent_as_a_bearer_token_and_kept_for_the_session_only(page: WebDriver, live_server: Server) -> None:
    key_field = page.find_element(By.ID, "apikey")
    assert key_field.get_attribute("type") == "password"
    assert key_field.get_attribute("autocomplete") == "off"
    assert not key_field.get_attribute("name"), "a named field would be submitted, so could end up in a URL"
    assert page.find_element(By.CSS_SELECTOR, "label[for=apikey]").text.strip()

    record_requests(page)
    key_field.send_keys(API_KEY)
    score(page)
    [sent] = sent_requests(page)
    assert sent["init"]["headers"]["Authorization"] == f"Bearer {API_KEY}"
    assert page.execute_script("return Object.values(sessionStorage);") == [API_KEY]
    assert page.execute_script("return localStorage.length;") == 0
    assert API_KEY not in page.current_url

    # Kept for the tab: a reload still has it; clearing the field forgets it.
    page.refresh()
    WebDriverWait(page, WAIT_SECONDS).until(ec.element_to_be_clickable((By.ID, "score")))
    key_field = page.find_element(By.ID, "apikey")
    assert key_field.get_attribute("value") == API_KEY
    key_field.send_keys(Keys.END, Keys.BACKSPACE * len(API_KEY))
    assert page.execute_script("return sessionStorage.length;") == 0


def test_a_401_is_shown_next_to_the_key_field(page: WebDriver) -> None:
    # The page on its own, whatever the server does: a 401 problem as the API sends it.
    page.execute_script(
        "window.fetch = () => Promise.resolve(new Response(JSON.stringify({type: 'about:blank',"
        " title: 'Unauthorized', status: 401, detail: 'Send an API key.', errors: []}),"
        " {status: 401, headers: {'Content-Type': 'application/problem+json', 'WWW-Authenticate': 'Bearer'}}));"
    )
    score_expecting_error(page)
    assert "This service needs an API key" in page.find_element(By.ID, "apikey-error").text
    assert page.find_element(By.ID, "apikey").get_attribute("aria-invalid") == "true"
    assert_no_result(page)


def test_a_service_that_needs_a_key_gets_it_from_the_key_field(keyed_page: WebDriver, keyed_server: Server) -> None:
    key_field = keyed_page.find_element(By.ID, "apikey")
    score_expecting_error(keyed_page)
    assert "This service needs an API key" in keyed_page.find_element(By.ID, "apikey-error").text
    assert key_field.get_attribute("aria-invalid") == "true"
    assert_no_result(keyed_page)

    key_field.send_keys("wrong-key")
    assert key_field.get_attribute("aria-invalid") is None, "typing a key clears the mark"
    score_expecting_error(keyed_page)
    assert "not accepted" in keyed_page.find_element(By.ID, "apikey-error").text

    key_field.clear()
    key_field.send_keys(API_KEY)
    expected = api_prediction(keyed_server, SAMPLE_CUSTOMER, key=API_KEY)
    assert score(keyed_page) == as_shown(expected["churn_probability"])
    assert not keyed_page.find_element(By.ID, "error").is_displayed()
    assert keyed_page.find_element(By.ID, "apikey-error").text == ""
    assert keyed_page.execute_script("return Object.values(sessionStorage);") == [API_KEY]
    assert keyed_page.execute_script("return localStorage.length;") == 0


def test_unreachable_service_is_explained(page: WebDriver) -> None:
    # Simulates a dropped connection: fetch rejects, as it does offline.
    page.execute_script("window.fetch = () => Promise.reject(new TypeError('Failed to fetch'));")
    error = score_expecting_error(page)
    assert "could not reach" in error.lower()
    assert page.find_element(By.ID, "score").is_enabled()


def test_screenshot(page: WebDriver, tmp_path: Path) -> None:
    for name, value in RISKY_CHANGES.items():
        set_field(page, name, value)
    score(page)
    width, height = take_screenshot(page, tmp_path / "page.png")
    assert width >= 800
    assert height >= 600
    # The chart and the changes, beside the form and no wider than the result card.
    page.find_element(By.ID, "what-if").location_once_scrolled_into_view  # noqa: B018 - scrolls
    take_screenshot(page, tmp_path / "page-details.png")
    aside = page.find_element(By.TAG_NAME, "aside").rect
    form = page.find_element(By.ID, "customer").rect
    assert aside["x"] >= form["x"] + form["width"], "the result is not beside the form"
    for part in ("reasons", "what-if"):
        box = page.find_element(By.ID, part).rect
        assert box["x"] >= aside["x"], part
        assert box["x"] + box["width"] <= aside["x"] + aside["width"], part


def test_screenshot_on_a_phone(page: WebDriver, tmp_path: Path) -> None:
    page.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {**PHONE, "deviceScaleFactor": 1, "mobile": True})
    try:
        page.refresh()
        WebDriverWait(page, WAIT_SECONDS).until(ec.element_to_be_clickable((By.ID, "score")))
        assert page.execute_script("return window.innerWidth;") == PHONE["width"]
        # One column, and nothing wider than the screen: no sideways scrolling.
        assert page.execute_script("return document.documentElement.scrollWidth;") <= PHONE["width"]
        form = page.find_element(By.ID, "customer").rect
        aside = page.find_element(By.TAG_NAME, "aside").rect
        assert aside["y"] >= form["y"] + form["height"], "the result is not below the form"
        score(page)
        # Scoring brings the result into view.
        assert page.execute_script(
            "const box = document.getElementById('probability').getBoundingClientRect();"
            "return box.top >= 0 && box.bottom <= window.innerHeight;"
        )
        assert take_screenshot(page, tmp_path / "page-phone.png") == (PHONE["width"], PHONE["height"])
        # The chart and the changes, scrolled to: still one column and no sideways scrolling.
        page.find_element(By.ID, "reasons").location_once_scrolled_into_view  # noqa: B018 - scrolls
        assert take_screenshot(page, tmp_path / "page-phone-details.png") == (PHONE["width"], PHONE["height"])
        assert page.execute_script("return document.documentElement.scrollWidth;") <= PHONE["width"]
        for row in shown_reasons(page, "up") + shown_reasons(page, "down"):
            assert row["width"] > 0, row
    finally:
        page.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
