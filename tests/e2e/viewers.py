"""The viewers the scorecard tests read the outputs with: headless chromium (every page
opens offline, without errors, network requests or a script of its own running) and
poppler (the PDF as an image, and as text)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest


def require(tool: str, package: str) -> str:
    """The path of a system tool a test needs; skip without it (fail in CI, which installs
    it: .ci/run)."""
    found = shutil.which(tool)
    if found:
        return found
    if os.environ.get("CI"):
        pytest.fail(f"CI must have {tool} (Debian's {package}; .ci/run installs it)")
    pytest.skip(f"{tool} not installed (Debian's {package}; CI installs it)")


def open_offline(pages: list[Path], tmp_path: Path, shown: dict[str, list[str]] | None = None) -> None:
    """Open each page; assert no console error, no request beyond the file itself, no alert
    (a name's markup would have to run a script to raise one), an SVG chart, a screenshot
    with something on it. shown: per page file name, texts the browser must display (a
    section rendered and visible, not only present in the file)."""
    from selenium import webdriver
    from selenium.common.exceptions import NoAlertPresentException
    from selenium.webdriver.chrome.service import Service

    browser = shutil.which("chromium-browser") or require("chromium", "chromium")
    driver_path = require("chromedriver", "chromium-driver")
    opts = webdriver.ChromeOptions()
    opts.binary_location = browser
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,2000"):  # fmt: skip
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    # an alert stays open for the test to see, instead of being dismissed
    opts.set_capability("unhandledPromptBehavior", "ignore")
    driver = webdriver.Chrome(options=opts, service=Service(driver_path))
    try:
        for page in pages:
            driver.get_log("performance")  # drop what the blank start page did
            driver.get_log("browser")
            driver.get(page.resolve().as_uri())
            try:
                text = driver.switch_to.alert.text
                pytest.fail(f"{page.name} ran a script: alert {text!r}")
            except NoAlertPresentException:
                pass
            errors = [e for e in driver.get_log("browser") if e["level"] in ("SEVERE", "ERROR")]
            assert errors == [], (page.name, errors)
            requests = []
            for entry in driver.get_log("performance"):
                msg = json.loads(entry["message"])["message"]
                if msg["method"] == "Network.requestWillBeSent":
                    url = msg["params"]["request"]["url"]
                    # The page itself is a file; anything else would reach a network.
                    if not url.startswith(("file://", "data:", "about:", "chrome://")):
                        requests.append(url)
            assert requests == [], (page.name, requests)
            assert driver.find_elements("css selector", "svg"), page.name
            visible = driver.find_element("css selector", "body").text
            for text in (shown or {}).get(page.name, []):
                assert text in visible, (page.name, text)
            shot = tmp_path / f"{page.stem}.png"
            assert driver.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    finally:
        driver.quit()
