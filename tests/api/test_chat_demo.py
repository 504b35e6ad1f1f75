"""The chat demo page at ``/`` in a real headless Chromium (Debian's ``chromium`` driven by
Playwright's Python package) against the real service on 127.0.0.1 with the real SmolLM2 engine.
Two messages, the second needing a fact from the first: the reply arrives and the memory panel
lists that fact. The screenshot is kept in ``test-artifacts/chat_demo.png``."""
from __future__ import annotations

import shutil

import httpx
import pytest

from tests.api.chat_support import engine, make_tenants  # noqa: F401
from tests.api.served_support import serve
from tests.helpers import ROOT

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
WAIT_MS = 240_000  # two generations on a busy 2-core machine


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright  # installed by `make install` (pyproject [test])

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        yield b
        b.close()


def test_two_messages_the_second_recalls_the_first(tmp_path, embedder, engine, browser) -> None:  # noqa: F811
    with serve(tmp_path, embedder, engine, job_workers=1) as base:
        with httpx.Client(base_url=base) as client:
            key = make_tenants(client)["acme"]
        page = browser.new_page(viewport={"width": 1280, "height": 800})
        errors: list[str] = []
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.goto(f"{base}/#key={key}")
        assert "key=" not in page.url, "the key leaves the address bar"
        page.fill("#user", "browser-ann")

        say(page, "My dog is called Biscuit and he is a beagle.")
        say(page, "What is my dog called?")

        replies = page.locator(".msg.assistant")
        assert replies.count() == 2 and replies.nth(1).inner_text().strip()
        assert page.locator(".msg.error").count() == 0
        panel = page.locator("#memories").inner_text()
        assert "Biscuit" in panel, panel
        assert page.locator("#memories .bar").count() >= 1  # retention bars
        assert int(page.locator('[data-stat="chunk tokens computed"]').inner_text()) >= 0
        assert page.locator("#stats").inner_text().count("ms") >= 2  # TTFT and total

        page.fill("#search-q", "dog")
        page.click("#search-form button")
        page.wait_for_selector("#search-results .mem", timeout=60_000)
        assert "Biscuit" in page.locator("#search-results").inner_text()
        assert page.locator("#graph > *").count() >= 1  # the graph picture (or its "no facts yet")

        out = ROOT / "test-artifacts" / "chat_demo.png"
        out.parent.mkdir(exist_ok=True)
        page.screenshot(path=str(out), full_page=True)
        assert out.stat().st_size > 10_000
        assert not errors, errors


def say(page, text: str) -> None:
    before = page.locator(".msg.assistant").count()
    page.fill("#message", text)
    page.click("#send-button")
    page.wait_for_function(  # the reply is complete when the send button is enabled again
        f"document.querySelectorAll('.msg.assistant').length > {before}"
        " && !document.getElementById('send-button').disabled", timeout=WAIT_MS)
