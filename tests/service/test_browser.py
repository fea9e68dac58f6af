"""The web page in a real browser: Debian's Chromium driven by Playwright against a live server on loopback."""

import contextlib
import os
import shutil
import socket
import threading
import time

import pytest

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def _require_browser():
    try:
        import playwright  # noqa: F401
    except ImportError:
        playwright = None
    if CHROMIUM and playwright is not None:
        return
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail("Chromium and playwright must be installed on CI (.ci/run installs them)")
    pytest.skip("needs Debian's chromium and the playwright package")


@contextlib.contextmanager
def _serve(index_dir):
    """A live server of ``index_dir`` on a free loopback port; yields its URL."""
    import uvicorn

    from towersearch.service.app import create_app
    from towersearch.service.settings import Settings

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(Settings(index_dir=index_dir)), port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline:
            raise RuntimeError("server did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)


@contextlib.contextmanager
def _open_page(url):
    """A page of Debian's Chromium, driven by Playwright, opened on ``url``."""
    _require_browser()
    from playwright.sync_api import sync_playwright

    args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=args)
        try:
            page = browser.new_page()
            page.goto(url)
            yield page
        finally:
            browser.close()


@pytest.fixture
def live_server(tiny_index):
    with _serve(tiny_index) as url:
        yield url


@pytest.fixture
def page(live_server):
    """A page of Debian's Chromium, driven by Playwright, opened on the live server."""
    with _open_page(live_server) as page:
        yield page


@pytest.fixture
def insights_page(insights_index):
    """As ``page``, on an index with review insights."""
    _require_browser()
    with _serve(insights_index) as url, _open_page(url) as page:
        yield page


def test_typing_a_query_shows_results(page):
    page.fill("#q", "tortilla chips")
    page.select_option("#mode", "lexical")
    page.press("#q", "Enter")
    page.wait_for_selector("li.result")
    first = page.locator("li.result").first
    assert first.get_attribute("data-product-id") == "p4"
    assert "Sea Salt Tortilla Chips" in first.inner_text()
    assert "results in" in page.inner_text("#status") and "showing results for" not in page.inner_text("#status")
    page.fill("#q", "tortila chips")
    page.press("#q", "Enter")
    page.wait_for_function("document.querySelector('#status').innerText.includes('showing results for')")
    assert "showing results for “tortillas chips”" in page.inner_text("#status")
    page.fill("#q", "x" * 300)  # the box caps input at 256 characters, so the query stays valid
    assert len(page.input_value("#q")) == 256


def test_suggestions_as_you_type_with_keyboard(page):
    page.select_option("#mode", "lexical")
    page.type("#q", "tort", delay=30)
    page.wait_for_selector("#suggestions li")
    options = page.locator("#suggestions li")
    first = options.first.get_attribute("data-text")
    assert any(w.startswith("tort") for w in first.split())
    page.press("#q", "ArrowDown")
    assert options.first.get_attribute("aria-selected") == "true"
    page.press("#q", "Enter")
    assert page.input_value("#q") == first
    page.wait_for_selector("li.result")
    assert page.locator("#suggestions li").count() == 0


def test_clicks_and_add_to_cart_are_recorded(page, tiny_index):
    from towersearch.events import EventStore

    page.fill("#q", "tortilla chips")
    page.select_option("#mode", "lexical")
    page.press("#q", "Enter")
    page.wait_for_selector("li.result")
    first = page.locator("li.result").first
    first.locator(".name").click()
    first.locator("button").click()
    from playwright.sync_api import expect

    expect(first.locator("button")).to_have_text("In cart")  # waits for the page to update, as a shopper would
    wanted = {("tortilla chips", "p4", "click"), ("tortilla chips", "p4", "add_to_cart")}
    deadline = time.monotonic() + 10
    with EventStore(tiny_index / "events.db", create=False) as store:
        while True:  # the page sends events without waiting: poll until both are stored (impressions come too)
            recorded = {(e.query, e.product_id, e.event) for e in store.iter_log_events()}
            if wanted <= recorded or time.monotonic() > deadline:
                break
            time.sleep(0.05)
    assert wanted <= recorded


def test_clicking_a_result_shows_its_review_insights(insights_page):
    page = insights_page
    page.fill("#q", "organic milk")
    page.select_option("#mode", "lexical")
    page.press("#q", "Enter")
    page.wait_for_selector("li.result")
    milk = page.locator('li.result[data-product-id="p1"]')
    milk.locator(".name").click()
    page.wait_for_selector("li.result .insights")
    line = milk.locator(".insights").inner_text()
    assert line == "3 reviews · 67% highly useful · 33% passionate · 33% obnoxious · 33% balanced"
    review = milk.locator("blockquote.review").inner_text()
    assert "Lasts a week" in review and "4/5" in review and "beats the store brand" in review
    milk.locator(".name").click()  # a second click hides the details
    assert milk.locator(".details").count() == 0
    other = page.locator('li.result[data-product-id="p2"]')  # Whole Milk: no reviews, and the page says so
    other.locator(".name").click()
    page.wait_for_selector('li.result[data-product-id="p2"] .details')
    assert "No reviews yet" in other.locator(".details").inner_text()
