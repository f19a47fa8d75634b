"""The pages in a real browser: Debian's headless chromium, driven by Playwright.

Each test logs in through the form, walks the pages, and fails on a console
error or on any request that leaves 127.0.0.1. Screenshots of every page, at
laptop and phone size, go to var/screenshots/.
"""

from __future__ import annotations

import os
import re
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from django.contrib.auth import get_user_model

from tests.factories import ProjectFactory
from tests.pages_data import XSS_NAME, populate

CHROMIUM = "/usr/bin/chromium"
ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).resolve().parents[2] / "var" / "screenshots"
SIZES = {
    "laptop": {"width": 1366, "height": 900},
    "phone": {"width": 390, "height": 844},
}
PASSWORD = "a-long-browser-password"

sync_api = pytest.importorskip("playwright.sync_api")


@pytest.fixture
def site(live_server, transactional_db):
    """A populated project and a user, served by the live server."""
    project = ProjectFactory(slug="payments", name="Payments")
    ids = populate(project, 12)
    get_user_model().objects.create_user("lead", password=PASSWORD)
    return live_server.url, ids


@pytest.fixture
def browser():
    assert Path(CHROMIUM).exists(), (
        "install Debian's chromium: apt-get install chromium"
    )
    # Playwright's sync API runs an event loop in this thread; the ORM calls
    # of the fixtures' teardown are still synchronous.
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield browser
        browser.close()
    del os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"]


class Watched:
    """A page whose console errors and outside requests are recorded."""

    def __init__(self, browser, base: str, size: str) -> None:
        self.context = browser.new_context(viewport=SIZES[size])
        self.page = self.context.new_page()
        self.size = size
        self.base = base
        self.errors: list[str] = []
        self.outside: list[str] = []
        self.page.on("console", self._console)
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.page.on("request", self._request)

    def _console(self, message) -> None:
        if message.type == "error":
            self.errors.append(message.text)

    def _request(self, request) -> None:
        host = urlsplit(request.url).hostname
        if request.url.startswith(("data:", "blob:")):
            return
        if host not in ("127.0.0.1", "localhost"):
            self.outside.append(request.url)

    def open(self, path: str) -> None:
        response = self.page.goto(self.base + path)
        assert response is not None and response.status == 200, path
        self.page.wait_for_load_state("networkidle")

    def shoot(self, name: str) -> None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        self.page.screenshot(
            path=SCREENSHOTS / f"{name}-{self.size}.png", full_page=True
        )

    def log_in(self) -> None:
        self.open("/")
        assert "/accounts/login/" in self.page.url
        self.shoot("login")
        self.page.fill("#id_username", "lead")
        self.page.fill("#id_password", PASSWORD)
        self.page.click("button[type=submit]")
        self.page.wait_for_load_state("networkidle")


@pytest.mark.parametrize("size", sorted(SIZES))
def test_a_lead_logs_in_and_follows_a_flaky_test(site, browser, size):
    base, ids = site
    watched = Watched(browser, base, size)
    page = watched.page
    watched.log_in()
    assert page.url == base + "/"
    assert page.locator('[data-kpi="flaky"]').inner_text() == "3"
    page.wait_for_selector("#chart-trend svg.main-svg")  # plotly drew it
    assert page.locator("#chart-lost svg.main-svg").count() >= 1
    watched.shoot("overview")

    page.click('a[href="/p/payments/teams/checkout/"]')
    page.wait_for_load_state("networkidle")
    page.wait_for_selector("#chart-trend svg.main-svg")
    assert page.locator(".flaky-table tbody tr").count() == 3
    watched.shoot("team")

    # The flaky test named like markup shows as its name, as text.
    link = page.locator(".flaky-table").get_by_role("link", name=XSS_NAME)
    assert link.inner_text() == XSS_NAME
    assert page.locator("img[src=x]").count() == 0
    link.click()
    page.wait_for_load_state("networkidle")
    assert page.url == f"{base}/p/payments/tests/{ids['flaky']}/"
    assert page.locator("h1").inner_text() == XSS_NAME
    page.wait_for_selector("#chart-heatmap svg.main-svg")
    page.wait_for_selector("#chart-durations svg.main-svg")
    assert page.locator("img[src=x]").count() == 0
    # The heatmap's hover text holds the escaped markup, drawn as text.
    assert "flaky" in page.locator(".badge").first.inner_text()
    watched.shoot("test")

    for name, path in [
        ("suite", f"/p/payments/suites/{ids['suite']}/"),
        ("ownership", "/p/payments/ownership/"),
        ("search", "/p/payments/tests/?q=case&status=flaky"),
    ]:
        watched.open(path)
        watched.shoot(name)
    assert page.locator("img[src=x]").count() == 0
    assert watched.errors == []
    assert watched.outside == []
    watched.context.close()


def test_the_keyboard_reaches_the_search_and_filters(site, browser):
    base, _ = site
    watched = Watched(browser, base, "laptop")
    watched.log_in()
    page = watched.page
    page.keyboard.press("Tab")  # the skip link comes first
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    page.focus("#top-q")
    page.keyboard.type("case_1")
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert re.search(r"/p/payments/tests/\?q=case_1$", page.url)
    names = page.locator(".test-name").all_inner_texts()
    assert names and all("case_1" in n for n in names)
    assert watched.errors == [] and watched.outside == []
    watched.context.close()
