"""The live board in a real headless Chromium (Debian's, driven by its chromedriver through selenium):
webhooks posted to the running server change the page without a reload, it fits a phone screen, and
outbound webhook endpoints that fail or are disabled show up in their panel."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from selenium import webdriver
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.chrome.webdriver import WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.command import Command
from selenium.webdriver.support.wait import WebDriverWait

from service.api.drivers import mint_token
from service.simulate.edrv import Connector, Station, location_created
from tests.conftest import Db, empty_the_log
from tests.e2e.server import Server, free_port

CHROMIUM, CHROMEDRIVER = shutil.which("chromium"), shutil.which("chromedriver")
pytestmark = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER), reason="no chromium/chromedriver (`make browser` installs them as root)"
)
JWT = "e2e-board-jwt-secret-0123456789abcdef"
ADMIN = {"Authorization": "Bearer e2e"}
SCREENSHOT_ENV = "CHARGELINE_BOARD_SCREENSHOT"
"""Set to a path (e.g. docs/board.png) to keep the screenshot the test takes."""


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    options = Options()
    options.binary_location = str(CHROMIUM)
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1280,860"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # the console, for uncaught errors
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    yield driver
    driver.quit()


def until(browser: WebDriver, condition: Callable[[WebDriver], object], what: str) -> None:
    WebDriverWait(browser, 10, poll_frequency=0.05).until(condition, f"the board never showed {what}")


def text_of(browser: WebDriver, selector: str, attribute: str = "textContent") -> str | None:
    """Read in one step in the page: the board redraws often, and an element found first may be gone."""
    value = browser.execute_script(
        "const node = document.querySelector(arguments[0]); if (!node) return null;"
        " return arguments[1] === 'textContent' ? node.textContent : node.dataset[arguments[1]];",
        selector,
        attribute,
    )
    return None if value is None else str(value)


def kind_of(browser: WebDriver, connector: str) -> str | None:
    return text_of(browser, f'.connector[data-connector="{connector}"]', "kind")


def overflow_on_a_phone(browser: WebDriver) -> int:
    """How many pixels wider than a phone's screen the board is, drawn at a phone's width."""
    browser.set_window_size(390, 844)
    return int(browser.execute_script("return document.documentElement.scrollWidth - window.innerWidth"))


def uncaught_errors(browser: WebDriver) -> list[str]:
    entries = browser.execute(Command.GET_LOG, {"type": "browser"})["value"]
    return [str(entry["message"]) for entry in entries if "Uncaught" in entry["message"]]


async def test_the_board_follows_webhooks_live_and_fits_a_phone(
    database_url: str, db: Db, tmp_path: Path, browser: WebDriver
) -> None:
    await empty_the_log(db)
    server = Server(tmp_path / "data", database_url=database_url, jwt_secret=JWT)
    server.start()
    fast = Station(
        "hafen-fast",
        "hafen",
        [Connector("ccs", "CCS2", 150), Connector("chademo", "CHADEMO", 50, "Charging")],
    )
    ac = Station("hafen-ac", "hafen", [Connector("t2", "Type2", 22, "Charging")])
    try:
        async with httpx.AsyncClient(base_url=server.url) as http:

            async def webhook(body: bytes) -> None:
                assert (await http.post("/webhooks/edrv", content=body)).status_code == 200

            await webhook(location_created("hafen", "Hafen Laden"))
            await webhook(fast.online_body())
            await webhook(ac.online_body())
            browser.get(f"{server.url}/board/#token=e2e")
            until(browser, lambda b: kind_of(b, "ccs") == "offerable", "the free CCS2 connector")
            assert "token" not in browser.current_url  # the token left the address bar
            browser.execute_script("window.sameDocument = true")

            await webhook(fast.status("ccs", "Faulted"))
            until(browser, lambda b: kind_of(b, "ccs") == "faulted", "the fault")
            await webhook(ac.offline_body())
            until(browser, lambda b: kind_of(b, "t2") == "offline", "the station going offline")

            token = mint_token(JWT, "alice", edrv_user_id="edrv-alice")
            joined = await http.post(
                "/v1/locations/hafen/tickets", json={}, headers={"Authorization": f"Bearer {token}"}
            )
            assert joined.status_code == 201, joined.text
            until(browser, lambda b: text_of(b, 'li[data-status="waiting"]'), "the ticket")
            await webhook(fast.status("chademo", "Available"))
            until(browser, lambda b: text_of(b, 'li[data-status="offered"]'), "the offer")
            until(browser, lambda b: kind_of(b, "chademo") == "offered", "the connector held for the offer")
            countdown = 'li[data-status="offered"] .countdown'
            until(browser, lambda b: (text_of(b, countdown) or "").endswith(" left"), "the offer's countdown")
            assert browser.execute_script("return window.sameDocument") is True  # no reload happened

            events = text_of(browser, "#events") or ""
            assert "chargestation.connector_status.updated" in events
            assert "ticket.offered" in events
            until(browser, lambda b: "tickets" in (text_of(b, "#projections") or ""), "projection lag")
            browser.save_screenshot(str(tmp_path / "board.png"))
            if os.environ.get(SCREENSHOT_ENV):
                browser.save_screenshot(os.environ[SCREENSHOT_ENV])

            overflow = overflow_on_a_phone(browser)
            assert overflow <= 0, f"the board is {overflow}px wider than a phone screen"
    finally:
        server.stop()


def test_the_board_asks_for_the_admin_token_and_refuses_a_wrong_one(
    tmp_path: Path, browser: WebDriver
) -> None:
    server = Server(tmp_path / "data")
    server.start()
    try:
        browser.get(f"{server.url}/board/")
        until(browser, lambda b: b.find_element(By.ID, "login").is_displayed(), "the sign-in form")
        browser.find_element(By.ID, "token").send_keys("wrong")
        browser.find_element(By.CSS_SELECTOR, "#login button").click()
        until(browser, lambda b: "refused" in b.find_element(By.ID, "connection").text, "the refusal")
        assert browser.find_element(By.ID, "login").is_displayed()
    finally:
        server.stop()


async def test_the_board_shows_an_unhealthy_webhook_endpoint_and_its_error_until_it_is_disabled(
    database_url: str, db: Db, tmp_path: Path, browser: WebDriver
) -> None:
    await empty_the_log(db)
    server = Server(
        tmp_path / "data", database_url=database_url, jwt_secret=JWT, allow_private_webhook_targets="true"
    )
    server.start()
    station = Station("kai-ac", "kai", [Connector("kai-t2", "Type2", 22, "Charging")])  # nothing to offer
    try:
        async with httpx.AsyncClient(base_url=server.url) as http:
            for body in (location_created("kai", "Kai"), station.online_body()):
                assert (await http.post("/webhooks/edrv", content=body)).status_code == 200
            browser.get(f"{server.url}/board/#token=e2e")
            summary = "#endpoints-summary"
            until(browser, lambda b: text_of(b, summary) == "No endpoints", "that there are no endpoints")

            closed = f"http://127.0.0.1:{free_port()}/hooks"  # nothing listens there
            created = await http.post("/v1/admin/subscriptions", json={"url": closed}, headers=ADMIN)
            assert created.status_code == 201, created.text
            endpoint = f'.endpoint[data-subscription="{created.json()["id"]}"]'
            token = mint_token(JWT, "bo", edrv_user_id="edrv-bo")
            joined = await http.post(
                "/v1/locations/kai/tickets", json={}, headers={"Authorization": f"Bearer {token}"}
            )
            assert joined.status_code == 201, joined.text  # a ticket event: a delivery to the endpoint

            until(browser, lambda b: text_of(b, endpoint, "health") == "failing", "the failing endpoint")
            [failing] = (await http.get("/v1/admin/subscriptions", headers=ADMIN)).json()
            assert failing["health"] == "failing"
            # e.g. "ConnectError: 127.0.0.1:<port>: no address accepted the connection (...)"
            assert failing["last_error"].startswith("ConnectError: 127.0.0.1:"), failing
            assert failing["pending_deliveries"] == 1, failing  # retried later: still pending
            assert text_of(browser, summary) == "1 of 1 endpoint needs attention"
            assert text_of(browser, f"{endpoint} .url") == closed
            assert text_of(browser, f"{endpoint} .badge") == "failing"
            assert (text_of(browser, f"{endpoint} .since") or "").startswith("for ")
            assert text_of(browser, f"{endpoint} .last-error") == failing["last_error"]
            title = browser.execute_script(
                "return document.querySelector(arguments[0]).title", f"{endpoint} .last-error"
            )
            assert title == failing["last_error"]  # the whole error, however the panel cuts it short
            assert text_of(browser, f"{endpoint} .pending") == "1"
            overflow = overflow_on_a_phone(browser)
            assert overflow <= 0, f"the board is {overflow}px wider than a phone screen"

            disabled = await http.patch(
                f"/v1/admin/subscriptions/{created.json()['id']}", json={"enabled": False}, headers=ADMIN
            )
            assert disabled.status_code == 200, disabled.text
            until(browser, lambda b: text_of(b, endpoint, "health") == "disabled", "the disabled endpoint")
            assert text_of(browser, f"{endpoint} .badge") == "disabled"
            assert text_of(browser, f"{endpoint} .reason") == "disabled by an operator"
            assert text_of(browser, f"{endpoint} .pending") == "0"  # what was pending is cancelled
            assert uncaught_errors(browser) == []
    finally:
        server.stop()
