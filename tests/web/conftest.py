"""Browser fixtures: Debian's Chromium driven by Playwright, headless, one per test session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, sync_playwright

CHROMIUM = Path("/usr/bin/chromium")
ARTEFACTS = Path(__file__).resolve().parents[2] / "test-artefacts"


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """One Chromium per test module: Playwright's sync API holds an event loop in this
    thread while it runs, which asyncio tests of other modules must not find there."""
    if not CHROMIUM.exists():
        pytest.fail("Debian's chromium is missing: `./deploy.sh test` installs it with apt-get")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM),
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
            ],
        )
        yield browser
        browser.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    """A fresh browser profile (no cookies) with a phone-sized or desktop window."""
    context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="ru-RU")
    context.set_default_timeout(20_000)
    yield context
    context.close()


def screenshot(page_or_context: object, name: str) -> None:
    """Keep a picture of a page for people to look at (test-artefacts/, not committed)."""
    ARTEFACTS.mkdir(exist_ok=True)
    page_or_context.screenshot(path=str(ARTEFACTS / f"{name}.png"), full_page=True)  # type: ignore[attr-defined]
