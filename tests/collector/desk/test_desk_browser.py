"""The service desk in a real headless Chromium (Selenium 4 + Debian's chromedriver).

The fault is injected as the collector records it (findings into the ticket service, the
snapshot into the screen directory); the real API server serves the desk; the browser
logs in, works the ticket and looks at the screen. Screenshots of every page are kept in
pytest's tmp dir; with DESK_SCREENSHOTS=<dir> set (docs/desk.md), the four page
screenshots are also written there as docs/desk-*.png.
"""

from __future__ import annotations

import base64
import os
import re
import time
from pathlib import Path
from typing import Any

import pytest
from desk_helpers import ENGINEER, Desk

pytestmark = pytest.mark.timeout(120)


def _by(kind: str) -> Any:
    from selenium.webdriver.common.by import By

    return {"css": By.CSS_SELECTOR, "id": By.ID, "name": By.NAME}[kind]


def _wait(driver: Any, css: str, timeout_s: float = 10.0) -> Any:
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, timeout_s).until(
        ec.presence_of_element_located((_by("css"), css))
    )


def _shot(driver: Any, tmp_path: Path, name: str) -> None:
    """Keep the page as a test artefact (and in the docs folder when asked to)."""
    driver.save_screenshot(str(tmp_path / f"desk-{name}.png"))
    docs = os.environ.get("DESK_SCREENSHOTS")
    if docs:
        # The whole page, not just the window (Chromium's DevTools protocol can do that).
        height = driver.execute_script("return document.documentElement.scrollHeight")
        clip = {"x": 0, "y": 0, "width": 1280, "height": min(int(height), 2400), "scale": 1}
        shot = driver.execute_cdp_cmd(
            "Page.captureScreenshot",
            {"format": "png", "captureBeyondViewport": True, "clip": clip},
        )
        (Path(docs) / f"desk-{name}.png").write_bytes(base64.b64decode(shot["data"]))


def _step(driver: Any, step: str, **fields: str) -> None:
    form = driver.find_element(_by("css"), f'form[data-step="{step}"]')
    for name, value in fields.items():
        form.find_element(_by("name"), name).send_keys(value)
    form.find_element(_by("css"), 'button[type="submit"]').click()
    # The page before may say "Done" too: wait for this step's answer page.
    from selenium.common.exceptions import StaleElementReferenceException
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, 10, ignored_exceptions=[StaleElementReferenceException]).until(
        lambda d: d.find_element(_by("id"), "step-done").text == f"Done: {step}."
    )


def test_desk_in_chromium(browser: Any, desk: Desk, tmp_path: Path) -> None:
    ticket_id = desk.ids["dark"]  # card_offline on acme/lobby card/p0c2

    # 1. Not logged in: the desk sends the browser to its login form.
    browser.get(desk.url + "/")
    _wait(browser, 'form[action="/desk/login"]')
    assert "/desk/login" in browser.current_url
    browser.find_element(_by("name"), "token").send_keys(ENGINEER)
    browser.find_element(_by("name"), "name").send_keys("Dana")
    browser.find_element(_by("css"), '.login button[type="submit"]').click()

    # 2. The queue shows the injected fault with a live countdown.
    row = _wait(browser, f"#ticket-{ticket_id}")
    assert browser.current_url.rstrip("/").endswith("/desk")
    assert "card_offline" in row.text and "acme/lobby" in row.text
    assert row.get_attribute("data-state") == "open"
    countdown = row.find_element(_by("css"), ".countdown")
    first = countdown.text
    assert first.startswith("in ") and "min" in first, first
    time.sleep(2.2)
    assert countdown.text != first, "the countdown does not tick (desk.js)"
    assert re.fullmatch(r"in \d+ min \d\d s", countdown.text), countdown.text  # as views'
    psu_row = browser.find_element(_by("css"), f"#ticket-{desk.ids['psu']}")
    assert "1 (1 active)" in psu_row.text  # the dark cabinet recorded as its effect
    psu_row.find_element(_by("css"), "details summary").click()
    assert "card/p1c3" in psu_row.text
    _shot(browser, tmp_path, "queue")

    # 3. The ticket page: evidence and history, then acknowledge and dispatch.
    row.find_element(_by("css"), f'a[href="/desk/tickets/{ticket_id}"]').click()
    state = _wait(browser, "#ticket-state")
    assert state.get_attribute("data-state") == "open"
    assert "port" in browser.find_element(_by("css"), "table.evidence").text
    _step(browser, "acknowledge", note="looking at it")
    assert browser.find_element(_by("id"), "ticket-state").get_attribute("data-state") == (
        "acknowledged"
    )
    history = browser.find_element(_by("id"), "history").text
    assert "acknowledge" in history and "Dana (engineer)" in history
    _step(browser, "dispatch", engineer="Sam Field")
    assert browser.find_element(_by("id"), "ticket-state").get_attribute("data-state") == (
        "dispatched"
    )
    assert browser.find_element(_by("id"), "ticket-engineer").text == "Sam Field"
    assert "dispatched Sam Field" in browser.find_element(_by("id"), "history").text
    clocks = browser.find_element(_by("id"), "clocks")
    response = clocks.find_element(_by("css"), 'tr[data-clock="response"]').text
    assert "met" in response
    # Next: the on-site clock (48 h: the countdown shows hours and minutes).
    onsite = clocks.find_element(_by("css"), 'tr[data-clock="on site"] .countdown')
    assert onsite.text.startswith("in 47 h") or onsite.text.startswith("in 48 h"), onsite.text
    # Only the steps the new state allows are offered.
    forms = browser.find_elements(_by("css"), "form[data-step]")
    offered = {f.get_attribute("data-step") for f in forms}
    assert offered == {"arrive", "pause"}
    _shot(browser, tmp_path, "ticket")

    # The service agrees: the browser's steps went through TicketService with the actor.
    ticket = desk.tickets.get(ticket_id)
    assert ticket.state == "dispatched" and ticket.engineer == "Sam Field"
    assert [e.actor for e in ticket.history[-2:]] == ["Dana (engineer)"] * 2

    # 4. Back in the queue the state changed; the response clock is met, so the next
    # deadline is the P2 resolve one (24 h, before on site at 48 h).
    browser.find_element(_by("css"), "header nav a[href='/desk']").click()
    row = _wait(browser, f"#ticket-{ticket_id}")
    assert row.get_attribute("data-state") == "dispatched"
    assert "resolve" in row.find_element(_by("css"), "td").text

    # 5. The screen page draws the wall: the faulty cabinet is dark, a click shows it.
    row.find_element(_by("css"), 'a[href="/desk/screens/acme/lobby"]').click()
    cabinet = _wait(browser, 'a.cab[data-card="p0c2"]')
    assert cabinet.get_attribute("data-state") == "dark"
    assert "cab-dark" in (cabinet.get_attribute("class") or "")
    states = {
        c.get_attribute("data-card"): c.get_attribute("data-state")
        for c in browser.find_elements(_by("css"), "a.cab")
    }
    assert states["p2c1"] == "fault" and states["p1c1"] == "warning"
    assert states["p2c0"] == "unknown" and states["p0c0"] == "ok"
    panel = browser.find_element(_by("css"), 'section.cabinet-detail[data-card="p0c2"]')
    assert not panel.is_displayed()
    cabinet.click()
    assert panel.is_displayed()
    assert f"#{ticket_id}" in panel.text and "online" in panel.text
    _shot(browser, tmp_path, "screen")

    # 6. The month's KPIs, then log out.
    browser.find_element(_by("css"), "header nav a[href='/desk/kpis']").click()
    table = _wait(browser, "#kpis")
    assert "Response breaches" in table.text and "On-site breaches" in table.text
    _shot(browser, tmp_path, "kpis")
    browser.find_element(_by("css"), ".logout button").click()
    _wait(browser, 'form[action="/desk/login"]')
    browser.get(desk.url + f"/desk/tickets/{ticket_id}")
    _wait(browser, 'form[action="/desk/login"]')  # the session really ended

    for name in ("queue", "ticket", "screen", "kpis"):
        assert (tmp_path / f"desk-{name}.png").stat().st_size > 10_000
