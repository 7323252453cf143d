"""A live Homeward server and Debian's Chromium driven by Playwright (issue 12 item 9).

Chromium is never downloaded: Playwright starts `/usr/bin/chromium` (`.ci/run` installs it with
apt-get). Without it the browser tests skip, except where HOMEWARD_REQUIRE_BROWSER=1 (CI) makes
that a failure. Screenshots go to `test-artifacts/screenshots/` for a person to look at.
"""

import os
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import Engine

from app.config import Settings
from app.db import make_engine, session_factory_for
from tests.conftest import _migrated_database
from tests.helpers import Api
from tests.server import running_server

CHROMIUM = Path("/usr/bin/chromium")
SCREENSHOTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "screenshots"
DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}


def _playwright():
    if not CHROMIUM.exists():
        if os.environ.get("HOMEWARD_REQUIRE_BROWSER") == "1":
            pytest.fail(f"{CHROMIUM} is missing; .ci/run installs Debian's chromium")
        pytest.skip(f"needs Debian's chromium at {CHROMIUM}")
    from playwright.sync_api import sync_playwright

    return sync_playwright()


@pytest.fixture(scope="module")
def live_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    """One database with real commits per test module: the browser sees what the set-up wrote."""
    with _migrated_database(tmp_path_factory.mktemp("browser")) as url:
        engine = make_engine(url)
        try:
            yield engine
        finally:
            engine.dispose()


@pytest.fixture(scope="module")
def live(live_engine: Engine, settings: Settings) -> Iterator[tuple[str, Api]]:
    """(base URL of a running server, an Api on it for setting up through the JSON API)."""
    with (
        session_factory_for(live_engine)() as session,
        running_server(live_engine, settings) as base_url,
        httpx.Client(base_url=base_url, timeout=20) as http,
    ):
        yield base_url, Api(http, session, settings)  # type: ignore[arg-type]  # as TestClient


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with _playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), headless=True)
        try:
            yield launched
        finally:
            launched.close()


def watched_page(context):
    """A new page of a browser context whose CSP violations and script errors are collected
    in `page.problems`, so a test can assert there are none."""
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(str(e)))
    page.problems = problems
    return page


@pytest.fixture
def page(browser, request: pytest.FixtureRequest):
    """A fresh browser context (no cookies) with a desktop viewport (`watched_page`)."""
    context = browser.new_context(viewport=DESKTOP)
    yield watched_page(context)
    context.close()


def screenshot(page, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
