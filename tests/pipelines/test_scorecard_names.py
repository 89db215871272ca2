"""The rules for printing names (pipelines/scorecard/names.py) on the hostile-names corpus:
slugs, display text, Markdown, chart labels. tests/e2e/test_hostile_names.py runs a night with
these names and reads every output back."""

from __future__ import annotations

import html
import re
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml
from markdown_it import MarkdownIt

from pipelines.scorecard import charts, language, names, render

CORPUS = yaml.safe_load(
    (Path(__file__).parents[1] / "fixtures" / "hostile" / "names" / "units.yml").read_text(
        encoding="utf-8"
    )
)
UNITS = [u["name"] for u in CORPUS["units"]]
SHOWN = {u["name"]: u.get("shown", u["name"]) for u in CORPUS["units"]}
SLUG = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*-[0-9a-f]{10}")


def test_every_name_has_its_own_safe_slug():
    slugs = [names.slug(n) for n in UNITS]
    for name, s in zip(UNITS, slugs, strict=True):
        assert SLUG.fullmatch(s), (name, s)  # no separator, dot, upper case or space
        assert len(s) <= names.SLUG_READABLE_CHARS + 1 + names.SLUG_HASH_CHARS
    # distinct, also on a case-insensitive file system (Payments / payments / Payments!,
    # 日本 / Ελλάδα, Café composed / decomposed)
    assert len({s.casefold() for s in slugs}) == len(UNITS)


def test_slugs_are_stable():
    # Pinned: a page's address must not move from one night (or release) to the next.
    assert names.slug("Payments") == "payments-632e1c5839"
    assert names.slug("日本") == "unit-cf2abf0c5b"
    assert names.slug("../../etc") == "etc-74ccf3c5b4"


def test_two_units_on_one_slug_are_refused(monkeypatch, tmp_path):
    monkeypatch.setattr(render, "slug", lambda name: "same")
    with pytest.raises(ValueError, match="share the page slug same.html"):
        render._page_files([{"business_unit": "A"}, {"business_unit": "B"}], tmp_path)


@pytest.mark.parametrize("name", UNITS)
def test_display_is_one_visible_line(name):
    shown = names.display(name)
    assert shown == SHOWN[name]
    assert "\n" not in shown and "\u202e" not in shown


def test_right_to_left_names_are_isolated_in_sentences():
    assert names.in_text("Payments") == "Payments"
    assert names.in_text("עברית") == "\u2068עברית\u2069"
    units = [
        {"business_unit": n, "link_verdict": "inconclusive", "quadrant": "Inconclusive"}
        for n in ("עברית", "العربية")
    ]
    # not "العربية ,עברית": each name keeps its own direction, the list stays in order
    assert "\u2068עברית\u2069, \u2068العربية\u2069" in language.headline(units, {})


def test_short_cuts_long_names_without_splitting_a_glyph():
    assert names.short("Payments", 40) == "Payments"
    long = next(n for n in UNITS if len(n) > 100)
    assert len(names.short(long, 40)) <= 40 and names.short(long, 40).endswith("…")
    family = "Rocket 🚀 👨\u200d👩\u200d👧"
    for limit in range(3, len(family)):
        cut = names.short(family, limit).removesuffix("…").rstrip()
        assert family.startswith(cut)
        assert not cut.endswith("\u200d") and not family[len(cut) :].startswith("\u200d")


# CommonMark with GFM tables and raw HTML on, as a permissive viewer renders scorecard.md
MARKDOWN = MarkdownIt("commonmark", {"html": True}).enable("table")


@pytest.mark.parametrize("name", UNITS)
def test_a_name_in_markdown_is_text_in_one_cell(name):
    row = f"| {names.markdown(names.display(name))} | x |"
    table = f"| h | h |\n|---|---|\n{row}\n"
    tokens = MARKDOWN.parse(table)
    kinds = {t.type for t in tokens} | {c.type for t in tokens for c in t.children or []}
    assert not kinds & {"html_inline", "html_block", "link_open", "image"}, kinds
    cells = re.findall(r"<td>(.*?)</td>", MARKDOWN.render(table), re.S)
    assert len(cells) == 2 and cells[1] == "x"
    assert "<" not in cells[0]  # no element, not even <em> or <code>: only text
    assert html.unescape(cells[0]) == SHOWN[name]


class _SvgText(HTMLParser):
    def __init__(self):
        super().__init__()
        self.texts: list[str] = []
        self._in = False

    def handle_starttag(self, tag, attrs):
        self._in = tag == "text"
        if self._in:
            self.texts.append("")

    def handle_endtag(self, tag):
        self._in = False

    def handle_data(self, data):
        if self._in:
            self.texts[-1] += data


def test_chart_labels_are_the_names_as_typed():
    # "Premium $$" stopped the night (math text); "$x^2$ \alpha" was typeset as a formula.
    values = [1.0] * len(UNITS)
    chart = charts.bar_chart("SCI", UNITS, values, values, values)
    parser = _SvgText()
    parser.feed(chart.svg)
    for name in UNITS:
        assert names.short(name, 32) in parser.texts, name
        assert names.display(name) in chart.alt
