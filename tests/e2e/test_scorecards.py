"""Scorecards on a small run: a page per unit, the warehouse's numbers, a real browser."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import duckdb
import pytest

from pipelines.scorecard.render import slug
from tests.conftest import run_cli

pytestmark = pytest.mark.slow


class Fields(HTMLParser):
    """Collects data-field elements: (unit row or page, field) -> (data-value, text)."""

    def __init__(self):
        super().__init__()
        self.found: dict[tuple[str | None, str], tuple[str | None, str]] = {}
        self._unit: str | None = None
        self._open: list[tuple[str, str | None]] = []
        self._text: dict[int, str] = {}

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "tr":
            self._unit = a.get("data-unit")
        if "data-field" in a:
            self._open.append((a["data-field"], a.get("data-value")))
            self._text[len(self._open)] = ""

    def handle_data(self, data):
        for depth in self._text:
            self._text[depth] += data

    def handle_endtag(self, tag):
        if self._open and tag in ("td", "span", "strong", "p", "code", "h1"):
            depth = len(self._open)
            field, value = self._open.pop()
            self.found[(self._unit, field)] = (value, self._text.pop(depth).strip())
        if tag == "tr":
            self._unit = None


def parse(path: Path) -> dict:
    p = Fields()
    p.feed(path.read_text(encoding="utf-8"))
    return p.found


@pytest.fixture(scope="module")
def run(small_demo, tmp_path_factory):
    root = tmp_path_factory.mktemp("scorecards")
    assert run_cli(small_demo, root, "2026-11-01") == 0
    con = duckdb.connect(str(root / "warehouse.duckdb"), read_only=True)
    yield root / "scorecards", con
    con.close()


def _close(page_value: str, warehouse_value) -> bool:
    if warehouse_value is None:
        return page_value in ("None", "")
    return math.isclose(float(page_value), float(warehouse_value), rel_tol=1e-9, abs_tol=1e-12)


def test_a_page_for_every_unit_with_the_warehouse_numbers(run):
    out, con = run
    units = {r[0]: r[1:] for r in con.execute(
        "select business_unit, quadrant, link_effect_shrunk, execution_score, q_value, mde "
        "from analytics.unit_alignment").fetchall()}  # fmt: skip
    assert sorted(p.name for p in (out / "units").glob("*.html")) == sorted(
        f"{slug(u)}.html" for u in units
    )
    index = parse(out / "index.html")
    for unit, (quadrant, link, execution, q, mde) in units.items():
        assert index[(unit, "quadrant")][1] == quadrant
        assert _close(
            index[(unit, "link_hazard_ratio")][0], None if link is None else math.exp(link)
        )
        assert _close(index[(unit, "execution_score")][0], execution)
        page = parse(out / "units" / f"{slug(unit)}.html")
        assert page[(None, "quadrant")][1] == quadrant
        assert _close(page[(None, "q_value")][0], q)
        assert _close(page[(None, "mde")][0], mde)
        assert _close(page[(None, "execution_score")][0], execution)
    for unit, sci in con.execute(
        "select business_unit, arg_max(sci, month) from analytics.unit_month_sci group by 1"
    ).fetchall():
        assert _close(index[(unit, "sci")][0], sci)
    for unit, total, at_risk in con.execute(
        "select business_unit, total_residual_clv, clv_at_risk from analytics.unit_clv "
        "where segment = 'All segments'"
    ).fetchall():
        assert _close(index[(unit, "total_residual_clv")][0], total)
        assert _close(index[(unit, "clv_at_risk")][0], at_risk)
    assert index[(None, "as_of")][1] == "2026-11-01"
    md = (out / "scorecard.md").read_text()
    assert all(unit in md for unit in units)


def test_inconclusive_units_say_what_would_settle_it(run):
    out, con = run
    for unit, needed in con.execute(
        "select business_unit, accounts_needed from analytics.unit_alignment where quadrant = 'Inconclusive'"
    ).fetchall():
        verdict = parse(out / "units" / f"{slug(unit)}.html")[(None, "verdict")][1]
        assert "inconclusive" in verdict
        assert "smallest effect" in verdict or "too few to fit" in verdict
        if needed:
            assert f"{needed:,}" in verdict


def _chromium() -> tuple[str, str] | None:
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    driver = shutil.which("chromedriver")
    return (browser, driver) if browser and driver else None


def test_every_page_opens_offline_without_errors_in_headless_chromium(run, tmp_path):
    found = _chromium()
    if found is None:
        if os.environ.get("CI"):
            pytest.fail(
                "CI must have Debian's chromium and chromium-driver (.ci/run installs them)"
            )
        pytest.skip("chromium/chromedriver not installed (CI installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    out, _ = run
    opts = webdriver.ChromeOptions()
    opts.binary_location = found[0]
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}", "--window-size=1200,2000"):  # fmt: skip
        opts.add_argument(flag)
    opts.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    driver = webdriver.Chrome(options=opts, service=Service(found[1]))
    try:
        pages = [out / "index.html", *sorted((out / "units").glob("*.html"))]
        for page in pages:
            driver.get_log("performance")  # drop what the blank start page did
            driver.get_log("browser")
            driver.get(page.resolve().as_uri())
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
            shot = tmp_path / f"{page.stem}.png"
            assert driver.save_screenshot(str(shot)) and shot.stat().st_size > 10_000
    finally:
        driver.quit()


def test_pdf_first_page_is_not_blank(run, tmp_path):
    out, _ = run
    pdftoppm = shutil.which("pdftoppm")
    if pdftoppm is None:
        if os.environ.get("CI"):
            pytest.fail("CI must have poppler-utils (.ci/run installs it)")
        pytest.skip("pdftoppm not installed (CI installs poppler-utils)")
    subprocess.run([pdftoppm, "-png", "-r", "40", "-f", "1", "-l", "1", str(out / "scorecard.pdf"),
                    str(tmp_path / "page")], check=True)  # fmt: skip
    import matplotlib.image as mpimg

    image = mpimg.imread(next(tmp_path.glob("page*.png")))
    ink = (image[..., :3].mean(axis=2) < 0.9).mean()
    assert 0.005 < ink < 0.9  # some text and table, not an empty (or black) page
