"""Scorecards on a small run: a page per unit, the warehouse's numbers, a real browser."""

from __future__ import annotations

import math
import re
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import duckdb
import pytest

from pipelines.scorecard.render import slug
from tests.conftest import run_cli
from tests.e2e.viewers import open_offline, require

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


def test_every_page_opens_offline_without_errors_in_headless_chromium(run, tmp_path):
    out, _ = run
    open_offline([out / "index.html", *sorted((out / "units").glob("*.html"))], tmp_path)


def test_pdf_first_page_is_not_blank(run, tmp_path):
    out, _ = run
    pdftoppm = require("pdftoppm", "poppler-utils")
    subprocess.run([pdftoppm, "-png", "-r", "40", "-f", "1", "-l", "1", str(out / "scorecard.pdf"),
                    str(tmp_path / "page")], check=True)  # fmt: skip
    import matplotlib.image as mpimg

    image = mpimg.imread(next(tmp_path.glob("page*.png")))
    ink = (image[..., :3].mean(axis=2) < 0.9).mean()
    assert 0.005 < ink < 0.9  # some text and table, not an empty (or black) page


# The words a what-if must never use: it shows associations and within-account changes, not
# what causes what (docs/methods/whatif.md).
CAUSAL_WORDS = re.compile(r"\bcaus(e|es|ed|ing)\b", re.IGNORECASE)


def test_every_unit_page_says_what_it_could_be_worth_or_why_not(run):
    out, con = run
    units = con.execute(
        "select business_unit, link_verdict, outcome_tested from analytics.unit_alignment"
    ).fetchall()
    strong = [u for u, verdict, outcome in units if verdict == "strong" and outcome == "retention"]
    assert strong, "the small demo plants a strong unit"
    for unit, _verdict, outcome in units:
        page = parse(out / "units" / f"{slug(unit)}.html")
        assert (None, "whatif_backtest") in page
        if unit in strong:
            assert (None, "whatif_mislead") not in page
            assert "best-quartile" in page[(None, "whatif_lead")][1] or "could be nothing" in page[(None, "whatif_lead")][1]
            every = con.execute(
                "select mrr_retained_per_year, churn_avoided from analytics.unit_whatif "
                "where business_unit = ? and lever = 'all'", [unit]).fetchone()  # fmt: skip
            assert _close(page[(None, "whatif_mrr_all")][0], every[0])
            assert _close(page[(None, "whatif_churn_avoided_all")][0], every[1])
        else:
            assert "would mislead" in page[(None, "whatif_mislead")][1] or outcome != "retention"
            assert not any(f[1].startswith("whatif_mrr") for f in page)
    index = parse(out / "index.html")
    ranked = [u for (u, f) in index if f == "whatif_mrr"]
    assert sorted(ranked) == sorted(strong)
    for path in [out / "index.html", *(out / "units").glob("*.html"), out / "scorecard.md"]:
        text = path.read_text(encoding="utf-8")
        assert not CAUSAL_WORDS.search(text), (path.name, CAUSAL_WORDS.search(text))


def test_the_what_if_section_renders_in_headless_chromium(run, tmp_path):
    out, con = run
    pages = sorted((out / "units").glob("*.html"))
    shown = {p.name: ["What it could be worth"] for p in pages}
    shown["index.html"] = ["What CX could be worth, by unit"]
    strong = [u for (u,) in con.execute(
        "select business_unit from analytics.unit_alignment where link_verdict = 'strong'").fetchall()]  # fmt: skip
    for unit in strong:
        shown[f"{slug(unit)}.html"].append("Lever to the best quartile")
    open_offline([out / "index.html", *pages], tmp_path, shown)
