"""A night whose business units, segments and accounts carry the hostile names of
tests/fixtures/hostile/names/units.yml: it publishes; one page per unit, inside units/; the
index links every unit to its own page; HTML, Markdown, PDF and charts print each name as
text (issue 19, point 11)."""

from __future__ import annotations

import contextlib
import html
import io
import os
import re
import subprocess
import unicodedata
import warnings
from datetime import date
from html.parser import HTMLParser
from pathlib import Path

import duckdb
import polars as pl
import pytest
import yaml
from markdown_it import MarkdownIt

from pipelines import demo_data
from pipelines.scorecard import charts, names, render
from pipelines.scorecard import data as scorecard_data
from pipelines.scorecard.names import slug
from tests.conftest import FIXTURES, run_cli
from tests.e2e.viewers import open_offline, require

pytestmark = pytest.mark.slow

CORPUS = yaml.safe_load((FIXTURES / "hostile" / "names" / "units.yml").read_text(encoding="utf-8"))
UNITS = [u["name"] for u in CORPUS["units"]]
LABEL = names.labels(UNITS)  # each unit as the pages print it; no two alike
UNIT_OF = {shown: unit for unit, shown in LABEL.items()}
AS_OF = "2026-11-01"


@pytest.fixture(scope="module")
def night(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile_names")
    landing = root / "landing"
    # Every unit the same size; half above, half below the company, some with a link.
    units = tuple(
        demo_data.UnitSpec(name, 1.0, 0.45 if i % 2 else -0.45, -0.65 if i % 3 else 0.0, 0.35, 45, 6)
        for i, name in enumerate(UNITS)
    )  # fmt: skip
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(demo_data, "SEGMENTS", tuple(CORPUS["segments"]))
        demo_data.generate(landing, accounts=600, months=8, seed=11, units=units, bad_row_rate=0)
    accounts = landing / "accounts" / "accounts.csv"
    frame = pl.read_csv(accounts, infer_schema=False)
    hostile = CORPUS["accounts"]
    frame.with_columns(
        account_name=pl.Series([hostile[i % len(hostile)] for i in range(frame.height)])
    ).write_csv(accounts)
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed), contextlib.redirect_stderr(printed):
        assert run_cli(landing, root, AS_OF) == 0  # "Premium $$" failed every night
    # what `cxalign run` printed, beside the night (not in it: its files are listed below)
    root.with_name(f"{root.name}.log").write_text(printed.getvalue(), encoding="utf-8")
    con = duckdb.connect(str(root / "warehouse.duckdb"), read_only=True)
    yield root, con
    con.close()


class Page(HTMLParser):
    """What a page holds: its tags and attributes, the unit rows' links, the <h1> text and
    the text of SVG <text> elements."""

    def __init__(self, path: Path):
        super().__init__()
        self.tags: list[tuple[str, dict]] = []
        self.links: dict[str, str] = {}  # data-unit -> href of the row's link
        self.row_units: list[str] = []
        self.h1 = ""
        self.svg_text: list[str] = []
        self._row: str | None = None
        self._in: set[str] = set()
        self.feed(path.read_text(encoding="utf-8"))

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        self.tags.append((tag, a))
        if tag == "tr" and "data-unit" in a:
            self._row = a["data-unit"]
            self.row_units.append(self._row)
        if tag == "a" and self._row is not None:
            self.links[self._row] = a["href"]
        if tag == "text":
            self.svg_text.append("")
        self._in.add(tag)

    def handle_endtag(self, tag):
        self._in.discard(tag)
        if tag == "tr":
            self._row = None

    def handle_data(self, data):
        if "h1" in self._in:
            self.h1 += data
        if "text" in self._in:
            self.svg_text[-1] += data


def _units(con) -> list[str]:
    return [
        r[0] for r in con.execute("select business_unit from analytics.unit_alignment").fetchall()
    ]


def test_one_page_per_unit_inside_units_and_the_index_links_each_to_its_own(night):
    root, con = night
    out = root / "scorecards"
    assert sorted(_units(con)) == sorted(UNITS)
    pages = sorted(p.name for p in (out / "units").iterdir())
    assert pages == sorted(f"{slug(u)}.html" for u in UNITS)  # a page per name
    # nothing written beside the scorecards (../../etc, /srv/units, .hidden)
    assert sorted(p.name for p in root.iterdir()) == sorted(
        [".cxalign", "landing", "scorecards", "warehouse.duckdb"]
    )
    assert sorted(p.name for p in out.iterdir()) == sorted(
        ["index.html", "scorecard.md", "scorecard.pdf", "units"]
    )
    index = Page(out / "index.html")
    assert set(index.links) == set(LABEL.values())
    for shown, href in index.links.items():
        assert href == f"units/{slug(UNIT_OF[shown])}.html"
        # the page it opens is that unit's (Payments / Payments! / payments / Payments<ZWSP>;
        # 日本 / Ελλάδα)
        assert Page(out / href).h1.startswith(f"{shown}: "), shown


def test_html_holds_names_as_text_only(night):
    root, _ = night
    out = root / "scorecards"
    for path in [out / "index.html", *(out / "units").iterdir()]:
        page = Page(path)
        tags = {t for t, _ in page.tags}
        # <script>, <b> and <i> are only ever in names: escaped, they are text
        assert not tags & {"script", "b", "i", "img", "iframe"}, (path.name, tags)
        for tag, attrs in page.tags:
            assert not any(k.startswith("on") for k in attrs), (path.name, tag, attrs)
            href = attrs.get("href") or attrs.get("xlink:href") or ""
            assert re.fullmatch(r"|#.*|\.\./index\.html|units/[a-z0-9-]+\.html", href), href
        text = path.read_text(encoding="utf-8")
        assert "<bdi>" in text
        # no NUL, ESC or form feed from a name, in text or attributes
        assert not {c for c in text if unicodedata.category(c) == "Cc"} - set("\n\t"), path.name
    index = Page(out / "index.html")
    assert set(index.row_units) == set(LABEL.values())  # data-unit is the printed name


def test_run_output_holds_no_terminal_escape(night):
    root, _ = night
    printed = root.with_name(f"{root.name}.log").read_text(encoding="utf-8")
    assert "Esc⟨U+001B⟩[31mRed" in printed  # the alignment line names every unit
    assert not {c for c in printed if unicodedata.category(c) == "Cc"} - {"\n"}


def test_markdown_prints_every_name_as_text_in_its_own_cell(night):
    root, _ = night
    md = (root / "scorecards" / "scorecard.md").read_text(encoding="utf-8")
    viewer = MarkdownIt("commonmark", {"html": True}).enable("table")  # a permissive viewer
    tokens = viewer.parse(md)
    kinds = {t.type for t in tokens} | {c.type for t in tokens for c in t.children or []}
    assert not kinds & {"html_inline", "html_block", "link_open", "image"}, kinds
    rendered = viewer.render(md)
    body = rendered[rendered.index("<tbody>") : rendered.index("</tbody>")]
    rows = re.findall(r"<tr>(.*?)</tr>", body, re.S)
    assert len(rows) == len(UNITS)
    shown = set()
    for row in rows:
        cells = re.findall(r"<td>(.*?)</td>", row, re.S)
        assert len(cells) == 6, row  # "a | b" is one cell
        assert "<" not in cells[0], cells[0]  # no emphasis, code or link from a name
        shown.add(html.unescape(cells[0]))
    assert shown == set(LABEL.values())
    assert not {c for c in md if unicodedata.category(c) == "Cc"} - {"\n"}
    # and in the list of units below the table
    bold = {html.unescape(b) for b in re.findall(r"<li><strong>(.*?)</strong>:", rendered)}
    assert bold == set(LABEL.values())


def test_charts_draw_names_as_typed(night):
    root, _ = night
    index = Page(root / "scorecards" / "index.html")
    for unit in UNITS:  # the SCI chart labels every unit, each differently
        assert charts.fit(LABEL[unit], 9, charts.BAR_LABEL_POINTS) in index.svg_text, unit
    assert "Premium $$" in index.svg_text and "$x^2$ \\alpha" in index.svg_text


def _rtl(text: str) -> bool:
    return any(unicodedata.bidirectional(c) in ("R", "AL") for c in text)


def _emoji(text: str) -> list[str]:
    return [c for c in text if unicodedata.category(c) == "So" and ord(c) >= 0x1F000]


def test_pdf_prints_every_name(night, tmp_path):
    root, con = night
    pdftotext = require("pdftotext", "poppler-utils")
    pdf = root / "scorecards" / "scorecard.pdf"
    pages = subprocess.run(
        [pdftotext, "-enc", "UTF-8", str(pdf), "-"], check=True, capture_output=True, text=True
    ).stdout.split("\f")[:-1]
    # pdftotext marks right-to-left runs with embedding controls, and keeps the marks that
    # open each line left to right and isolate names: the words are what we check
    marks = dict.fromkeys([0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A)])
    # (and spaces, which it guesses from glyph gaps in the bold title)
    flat = ["".join(p.translate(marks).split()) for p in pages]
    unit_pages = flat[-len(UNITS) :]
    for unit, page in zip(con.execute(
        "select business_unit from analytics.unit_alignment order by business_unit"
    ).fetchall(), unit_pages, strict=True):  # fmt: skip
        shown = "".join(LABEL[unit[0]].split())
        if _rtl(shown):  # laid out right to left; pdftotext's order is its own
            assert all(word in page for word in LABEL[unit[0]].split()), page[:80]
        elif _emoji(shown):  # drawn as last-resort boxes (no emoji font), read back garbled
            assert page.startswith(shown[: min(map(shown.find, _emoji(shown)))]), page[:80]
        else:
            assert page.startswith(f"{shown}:"), (shown, page[:80])


def test_pdf_has_a_glyph_for_every_letter(night, tmp_path):
    """Latin, Greek, Hebrew, Arabic (DejaVu Sans) and CJK (Noto Sans CJK) names are drawn
    with real glyphs; only emoji fall back to matplotlib's last-resort boxes."""
    from matplotlib import font_manager

    if "Noto Sans CJK JP" not in {f.name for f in font_manager.fontManager.ttflist}:
        if os.environ.get("CI"):
            pytest.fail("CI must have fonts-noto-cjk (.ci/run installs it)")
        pytest.skip("Noto Sans CJK not installed (Debian: fonts-noto-cjk; CI installs it)")
    _, con = night
    data = scorecard_data.load(con, date.fromisoformat(AS_OF), "test", "{}")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        render.pdf(data, render.language.headline(data.units, data.company), tmp_path / "s.pdf")
    missing = {
        chr(int(m.group(1)))
        for w in caught
        if (m := re.match(r"Glyph (\d+) .*missing from font", str(w.message)))
    }
    assert missing == set(_emoji("".join(missing))), missing


def test_every_page_opens_offline_and_runs_no_script_from_a_name(night, tmp_path):
    root, _ = night
    out = root / "scorecards"
    open_offline([out / "index.html", *sorted((out / "units").glob("*.html"))], tmp_path)
