"""The rules for printing names (pipelines/scorecard/names.py) on the hostile-names corpus:
slugs, display text, Markdown, chart labels. tests/e2e/test_hostile_names.py runs a night with
these names and reads every output back."""

from __future__ import annotations

import html
import re
import unicodedata
from html.parser import HTMLParser
from pathlib import Path

import pytest
import yaml
from markdown_it import MarkdownIt

from pipelines.progress import UnitsProgress
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
    assert names.log_safe(shown) == shown  # nothing invisible, no control character
    assert names.display(shown) == shown  # printing a printed name changes nothing


def test_no_two_units_print_alike():
    # Payments / Payments<ZWSP>, Café composed / decomposed, 300 X / 299 X and a Y: each
    # label differs from every other, whole and as far as a chart label or PDF cell shows it
    extra = ["Payments ", "Payments\t", "a  b", "a b", "", " ", "\u200b\u200b", "\u2060"]
    label = names.labels(UNITS + extra)
    assert len(set(label.values())) == len(UNITS + extra)
    for limit in (24, 28, 32, 40):
        assert len({names.short(t, limit) for t in label.values()}) == len(label), limit
    cells = {charts.fit(t, 8, 0.3 * render.PDF_TEXT_POINTS * 0.8) for t in label.values()}
    assert len(cells) == len(label)
    # a name that reads like no other is printed as itself, with no hash
    assert label["Payments!"] == "Payments!" and label["日本"] == "日本"
    assert label["Payments"] == f"Payments #{names.slug('Payments')[-10:]}"  # vs "Payments "


def test_invisible_characters_are_shown_and_a_blank_name_is_a_placeholder():
    assert names.display("Payments\u200b") == "Payments⟨U+200B⟩"
    assert names.display("\u200b") == "⟨U+200B⟩"
    assert names.display("\ufeffSales\u00ad") == "⟨U+FEFF⟩Sales⟨U+00AD⟩"
    assert names.display("Nul\x00Unit") == "Nul⟨U+0000⟩Unit"  # not "NulUnit", another name
    assert names.display("   ") == f"(unnamed {names.slug('   ')})" != names.display("")
    # what belongs to a glyph stays: emoji sequences, a keycap, a subdivision flag, a
    # Persian zero-width non-joiner
    for glyph in ["👨\u200d👩\u200d👧", "1\ufe0f\u20e3", "❤\ufe0f",
                  "🏴\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f", "می\u200cخواهم"]:  # fmt: skip
        assert names.display(glyph) == glyph
    # but not beside an ASCII letter, where it is drawn as nothing
    assert names.display("Pay\u200dments\ufe0f") == "Pay⟨U+200D⟩ments⟨U+FE0F⟩"


def test_log_lines_hold_no_terminal_escape():
    name = "Esc\x1b[31mRed\x07\r"
    assert names.log_safe(name) == "Esc⟨U+001B⟩[31mRed⟨U+0007⟩⟨U+000D⟩"
    progress = UnitsProgress(None, "alignment", {name: 1.0, "B": 1.0})
    progress.unit_done(name)
    assert "\x1b" not in progress.line() and "Esc⟨U+001B⟩[31mRed" in progress.line()


def test_html_attributes_and_text_print_names_the_same_safe_way():
    label = names.labels(UNITS)
    env = render._env(label)
    page = env.from_string('<tr data-unit="{{ n | label }}"><td>{{ n | name }}</td></tr>')
    for name in UNITS:
        out = page.render(n=name)
        assert not any(unicodedata.category(c) in ("Cc", "Cf") for c in out if c != "\u200d")
        attribute, text = re.fullmatch(
            r'<tr data-unit="([^"<>]*)"><td><bdi>([^<>]*)</bdi></td></tr>', out
        ).groups()
        assert html.unescape(attribute) == html.unescape(text) == label[name]


@pytest.mark.parametrize("name", ["X" * 300, "日本語" * 100, "W" * 80, "Rocket 🚀" * 40])
def test_long_names_stay_inside_the_pdf(name):
    width = charts.text_width
    head = language.headline(
        [{"business_unit": n, "link_verdict": "inconclusive", "quadrant": "Inconclusive"}
         for n in (name, "Payments")], {}
    )  # fmt: skip
    for size, weight in ((10, "normal"), (15, "bold")):
        lines = render._lines(head, size, weight)
        assert len(lines) > 1
        assert all(width(line, size, weight) <= render.PDF_TEXT_POINTS for line in lines)
        assert "".join(line.removeprefix(names.LTR) for line in lines).replace(
            " ", ""
        ) == head.replace(" ", "")
    cell = 0.3 * render.PDF_TEXT_POINTS * 0.8
    shown = charts.fit(name, 8, cell)
    assert width(shown, 8) <= cell and shown.endswith("…")
    assert charts.fit("Payments", 8, cell) == "Payments"


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
    label = names.labels(UNITS)
    chart = charts.bar_chart("SCI", [label[n] for n in UNITS], values, values, values)
    parser = _SvgText()
    parser.feed(chart.svg)
    for name in UNITS:
        assert charts.fit(label[name], 9, charts.BAR_LABEL_POINTS) in parser.texts, name
        assert label[name] in chart.alt
