"""Write the scorecards: index.html, units/<unit>.html, scorecard.md, scorecard.pdf."""

from __future__ import annotations

import math
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup, escape

from models.alignment import METHOD_VERSION as ALIGNMENT_VERSION
from models.sci import SCI_VERSION
from pipelines.freshness import stale_sentence
from pipelines.scorecard import charts, language, names
from pipelines.scorecard.data import ScorecardData
from pipelines.scorecard.names import slug

TEMPLATES = Path(__file__).parent / "templates"


def _labels(data: ScorecardData) -> dict[str, str]:
    """Every unit's printed name (names.labels: look-alikes told apart by their hash)."""
    return names.labels([u["business_unit"] for u in data.units] + [*data.sci_latest, *data.clv])


def _labelled(units: list[dict], label: dict[str, str]) -> list[dict]:
    """The units with their printed names, for the sentences and charts that name them."""
    return [{**u, "business_unit": label[u["business_unit"]]} for u in units]


def _num(x, digits=2) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{x:,.{digits}f}"


def _p(x) -> str:
    if x is None:
        return "n/a"
    return "< 0.0001" if x < 0.0001 else f"{x:.4f}"


def _hr(log_hr) -> float | None:
    return None if log_hr is None else math.exp(log_hr)


def _or(x, default):
    """x, or `default` where x is None (an interval end not computed)."""
    return default if x is None else x


def _signed(x) -> str:
    """+0.12 / -0.34; "n/a" for a figure not measured (an execution with no CX data)."""
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:+.2f}"


def _fmt_hr(log_hr) -> str:
    return "n/a" if log_hr is None else f"{math.exp(log_hr):.2f}"


def _env(label: dict[str, str]) -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
    )

    def printed(name: str) -> str:
        return label.get(name) or names.display(name)

    # Text and attributes alike print a name as labels() does: escaped by autoescape, no
    # control character (NUL, ESC) in the file, and two units never read the same.
    env.filters["label"] = printed
    # In text, its direction isolated from the sentence around it.
    env.filters["name"] = lambda name: Markup("<bdi>") + escape(printed(name)) + Markup("</bdi>")
    env.globals.update(
        slug=slug,
        num=_num,
        pval=_p,
        pct=language.pct,
        money=language.money,
        hr=_hr,
        fmt_hr=_fmt_hr,
        signed=_signed,
        lever_words=language.LEVER_WORDS,
        lever_level=language.lever_level,
        methods=f"{ALIGNMENT_VERSION}, {SCI_VERSION}",
        stale_sentence=stale_sentence,
    )
    return env


def _trends(cx: list[dict], revenue: list[dict], draw, ttm: bool = True) -> list[charts.Chart]:
    """NPS, CSAT, CES, GRR and NRR monthly, and (ttm) NRR over the trailing 12 months."""
    months = [r["month"] for r in cx]
    rev_months = [r["month"] for r in revenue]
    out = [
        draw(charts.trend_chart, "NPS", months, [r["nps"] for r in cx],
             [r["nps_ci_low"] for r in cx], [r["nps_ci_high"] for r in cx]),
        draw(charts.trend_chart, "Mean CSAT (1-5)", months, [r["csat_mean"] for r in cx],
             [r["csat_mean_ci_low"] for r in cx], [r["csat_mean_ci_high"] for r in cx]),
        draw(charts.trend_chart, "Mean CES (1-7)", months, [r["ces_mean"] for r in cx],
             [r["ces_mean_ci_low"] for r in cx], [r["ces_mean_ci_high"] for r in cx]),
        draw(charts.trend_chart, "Gross revenue retention, monthly (%)", rev_months,
             [r["grr_monthly"] for r in revenue], as_percent=True, unit="%"),
        draw(charts.trend_chart, "Net revenue retention, monthly (%)", rev_months,
             [r["nrr_monthly"] for r in revenue], as_percent=True, unit="%"),
    ]  # fmt: skip
    if ttm:
        out.append(
            draw(charts.trend_chart, "Net revenue retention, trailing 12 months (%)", rev_months,
                 [r["nrr_ttm"] for r in revenue], as_percent=True, unit="%")
        )  # fmt: skip
    return out


def write(data: ScorecardData, out: Path, cache: charts.ChartCache | None = None) -> list[Path]:
    """Write every file into `out` (which must exist); returns the files written. Charts come
    from `cache` when it holds them."""
    draw = (cache or charts.ChartCache()).draw
    label = _labels(data)
    env = _env(label)
    written = []
    units_dir = out / "units"
    units_dir.mkdir(parents=True, exist_ok=True)
    sci_units = list(data.sci_latest)
    sci_chart = draw(
        charts.bar_chart,
        "SCI (0-100)", [label[u] for u in sci_units],
        [data.sci_latest[u]["sci"] or 0 for u in sci_units],
        [data.sci_latest[u]["sci_ci_low"] or 0 for u in sci_units],
        [data.sci_latest[u]["sci_ci_high"] or 0 for u in sci_units],
    )  # fmt: skip
    head = language.headline(_labelled(data.units, label), data.company)
    ranked, not_valued = language.whatif_ranking(data.units, data.whatif)
    index = env.get_template("index.html").render(
        whatif_ranked=ranked, whatif_others=not_valued,
        title="cxalign scorecard", d=data, headline=head,
        # (without the as-of stamp, which changes nightly and is not drawn)
        quadrant=draw(charts.quadrant_chart,
                      [{k: v for k, v in u.items() if k != "as_of"}
                       for u in _labelled(data.units, label)]),
        trends=_trends(data.company_trends["cx"], data.company_trends["revenue"], draw),
        sci_chart=sci_chart,
    )  # fmt: skip
    (out / "index.html").write_text(index, encoding="utf-8")
    written.append(out / "index.html")

    pages = _page_files(data.units, units_dir)
    for u, shown in zip(data.units, _labelled(data.units, label), strict=True):
        unit = u["business_unit"]
        drivers = data.drivers.get(unit, [])
        # Distinguishable drivers (their own test passed) in a colour of their own.
        distinct = [d["driver"] for d in drivers if d["distinguishable"]]
        drivers_chart = (
            draw(
                charts.bar_chart,
                "Key drivers: share of what CX explains",
                [d["driver"] for d in drivers],
                [d["importance_share"] or 0 for d in drivers],
                [d["share_ci_low"] or 0 for d in drivers],
                [d["share_ci_high"] or 0 for d in drivers],
                colours=[
                    charts.OKABE_ITO[5] if d["distinguishable"] else charts.OKABE_ITO[4]
                    for d in drivers
                ],
            )  # fmt: skip
            if drivers
            else None
        )
        trends = data.unit_trends[unit]
        sci_rows = data.sci_trend.get(unit, [])
        # The unit page: NPS, the SCI, CSAT, CES, GRR and NRR monthly (not the TTM).
        nps, *rest = _trends(trends["cx"], trends["revenue"], draw, ttm=False)
        unit_charts = [nps, draw(charts.trend_chart, "Support Contribution Index",
                                 [r["month"] for r in sci_rows], [r["sci"] for r in sci_rows],
                                 [r["sci_ci_low"] for r in sci_rows],
                                 [r["sci_ci_high"] for r in sci_rows]), *rest]  # fmt: skip
        worth = language.whatif_summary(u, data.whatif.get(unit, []))
        worth_chart = (
            draw(
                charts.bar_chart,
                f"MRR kept over {worth['rows'][0]['months']} months, each lever to the best quartile",
                [language.LEVER_WORDS[r["lever"]] for r in worth["rows"]],
                [r["mrr_retained_per_year"] for r in worth["rows"]],
                [_or(r["mrr_retained_per_year_ci_low"], r["mrr_retained_per_year"]) for r in worth["rows"]],
                [_or(r["mrr_retained_per_year_ci_high"], r["mrr_retained_per_year"]) for r in worth["rows"]],
                colours=[
                    charts.OKABE_ITO[5] if (r["mrr_retained_per_year_ci_low"] or 0) > 0
                    else charts.OKABE_ITO[4]
                    for r in worth["rows"]
                ],
            )  # fmt: skip
            if worth["rows"]
            else None
        )
        page = env.get_template("unit.html").render(
            worth=worth, worth_chart=worth_chart,
            title=f"{label[unit]}: cxalign scorecard", d=data, u=u,
            verdict=language.verdict_sentence(shown), link=language.link_sentence(shown),
            contrast=language.nps_contrast(data.churn_by_nps.get(unit)),
            change=language.change_sentence(shown, data.previous.get(unit)),
            drivers_chart=drivers_chart, drivers_distinct=distinct, sci=data.sci_latest.get(unit),
            benefits=data.benefits.get(unit, []), clv=data.clv.get(unit), trends=unit_charts,
        )  # fmt: skip
        path = pages[unit]
        path.write_text(page, encoding="utf-8")
        written.append(path)

    md = markdown(data, head, label)
    (out / "scorecard.md").write_text(md, encoding="utf-8")
    written.append(out / "scorecard.md")
    pdf(data, head, out / "scorecard.pdf", label)
    written.append(out / "scorecard.pdf")
    return written


def _page_files(units: list[dict], units_dir: Path) -> dict[str, Path]:
    """units/<slug>.html for every unit; refuses two units on one file rather than let one
    page overwrite another and the index link to the wrong unit."""
    pages: dict[str, Path] = {}
    taken: dict[str, str] = {}
    for u in units:
        unit = u["business_unit"]
        file = f"{slug(unit)}.html"
        if file in taken and taken[file] != unit:
            raise ValueError(
                f"business units {taken[file]!r} and {unit!r} share the page slug {file}: "
                "rename one of them in the accounts export (see docs/methods/scorecard.md#names-and-page-slugs)"
            )
        taken[file] = unit
        pages[unit] = units_dir / file
    return pages


def _stale_banner(data: ScorecardData) -> str:
    """'Data not arriving: support_tickets last arrived 9 days ago (expected daily).'"""
    return "Data not arriving: " + "; ".join(
        f"{stale_sentence(s['source'], s['days_since_arrival'])} (expected {s['cadence']})"
        for s in data.stale_sources
    ) + "."


def markdown(data: ScorecardData, head: str, label: dict[str, str] | None = None) -> str:
    """scorecard.md: every text from the data (names, and sentences holding them) escaped by
    names.markdown, so a name is never a link, raw HTML or a new table cell; names as
    `label` prints them (names.labels of the units when not given)."""
    md = names.markdown
    units = _labelled(data.units, label or _labels(data))
    lines = [
        f"# CX alignment scorecard, as of {data.as_of}",
        "",
        *([f"> **{_stale_banner(data)}**", ""] if data.stale_sources else []),
        f"**{md(head)}**",
        "",
        "| Business unit | CX type | Confidence | Link (HR per SD, 95% CI) | Execution | Action |",
        "|---|---|---|---|---|---|",
    ]
    for u in units:
        lines.append(
            f"| {md(u['business_unit'])} | {u['quadrant']} | {u['confidence']} | "
            f"{_fmt_hr(u['link_effect_shrunk'])} ({_fmt_hr(u['link_shrunk_ci_low'])}–"
            f"{_fmt_hr(u['link_shrunk_ci_high'])}) | {_signed(u['execution_score'])} ({u['execution_level']}) | "
            f"{md(u['recommended_action'])} |"
        )
    lines += ["", "## Per unit", ""]
    for u in units:
        lines += [
            f"- **{md(u['business_unit'])}**: "
            f"{md(language.verdict_sentence(u))} {md(language.link_sentence(u))}"
        ]
    lines += ["", "## What it could be worth", ""]
    for u, shown in zip(data.units, units, strict=True):
        lines.append(f"- **{md(shown['business_unit'])}**: {md(_worth_words(data, u))}")
    lines += ["", f"Maturity (indicative): level {data.maturity['level']} of 5, {data.maturity['name']}.",
              "", f"_Lineage fingerprint {data.fingerprint[:16]}; run {data.run_id}._", ""]  # fmt: skip
    return "\n".join(lines)


def _worth_words(data: ScorecardData, u: dict) -> str:
    """A unit's "What it could be worth" in words (Markdown and PDF): why a figure would
    mislead, or the lever worth most and the grade of its evidence, and the backtest."""
    worth = language.whatif_summary(u, data.whatif.get(u["business_unit"], []))
    if worth["mislead"]:
        return worth["mislead"]
    return " ".join(t for t in (worth["lead"], worth["evidence"], worth["backtest"]) if t)


# The width of the PDF's text, in points: the A4 page less 6% margins on each side.
PDF_TEXT_POINTS = 0.88 * 8.27 * 72
# The widths of the PDF table's columns, as fractions of the text width.
PDF_COLUMNS = (0.3, 0.14, 0.14, 0.24, 0.18)


def _lines(text: str, size: float, weight: str = "normal") -> list[str]:
    """A paragraph wrapped to the PDF's text width as drawn (a name without spaces, in Latin
    capitals or CJK, breaks at the edge), each line opened left to right (names.LTR)."""
    return [names.LTR + line for line in charts.wrap(text, size, PDF_TEXT_POINTS, weight)]


class _Pages:
    """Text and tables flowing down A4 pages: a new page when the next block does not fit,
    so many units or long names never draw over one another."""

    A4 = (8.27, 11.69)
    LINE = 1.25 / (11.69 * 72)  # page height per point of font size, one line
    ROW = 0.018  # a table row at 8 pt
    TOP, BOTTOM = 0.96, 0.06

    def __init__(self, doc, plt, footer: str):
        self.doc, self.plt, self.footer = doc, plt, footer
        self.fig = None
        self.new_page()

    def new_page(self) -> None:
        self.flush()
        self.fig = self.plt.figure(figsize=self.A4)
        self.fig.text(0.06, 0.03, self.footer, fontsize=7, color="#777777")
        self.y = self.TOP

    def flush(self) -> None:
        if self.fig is not None:
            self.doc.savefig(self.fig)
            self.plt.close(self.fig)
            self.fig = None

    def text(self, lines: list[str], size: float, gap: float = 0.012, **kw) -> None:
        height = len(lines) * size * self.LINE
        if self.y - height < self.BOTTOM and self.y < self.TOP:
            self.new_page()
        self.fig.text(0.06, self.y, "\n".join(lines), fontsize=size, va="top", **kw)
        self.y -= height + gap

    def table(self, rows: list[list[str]], header: list[str], colours: list[str]) -> None:
        while rows:
            fits = max(int((self.y - self.BOTTOM) / self.ROW) - 1, 0)
            if fits == 0:
                self.new_page()
                continue
            chunk, rows, shades, colours = rows[:fits], rows[fits:], colours[:fits], colours[fits:]
            height = (len(chunk) + 1) * self.ROW
            ax = self.fig.add_axes([0.06, self.y - height, 0.88, height])
            ax.axis("off")
            table = ax.table(cellText=chunk, colLabels=header, colWidths=list(PDF_COLUMNS),
                             cellLoc="left", loc="upper left", bbox=[0, 0, 1, 1])  # fmt: skip
            table.auto_set_font_size(False)
            table.set_fontsize(8)
            for i, colour in enumerate(shades, start=1):
                table[i, 1].set_facecolor(colour)
            self.y -= height + 0.02


def pdf(data: ScorecardData, head: str, path: Path, label: dict[str, str] | None = None) -> None:
    """A PDF for email: the company pages, then a page per unit (matplotlib, no system deps).
    Names are drawn as plain text (charts.py turns math text off) as `label` prints them
    (names.labels of the units when not given), cut with an ellipsis to their cell in the
    table and to half a line in the company verdicts; the unit's own page carries the name
    whole, wrapped at the page's edge."""
    import matplotlib.pyplot as plt
    from matplotlib.backends.backend_pdf import PdfPages

    footer = f"Lineage fingerprint {data.fingerprint[:16]} · run {data.run_id}"
    with PdfPages(
        path, metadata={"Title": f"cxalign scorecard {data.as_of}", "CreationDate": None}
    ) as doc:
        units = _labelled(data.units, label or _labels(data))
        # the Unit column less its cells' padding (matplotlib: 10% of the cell each side)
        cell = PDF_COLUMNS[0] * PDF_TEXT_POINTS * 0.8
        page = _Pages(doc, plt, footer)
        page.text(["Is our CX strategic, or just busy?"], 16, gap=0.004, weight="bold")
        page.text([f"cxalign scorecard, as of {data.as_of}"], 9, color="#555555")
        if data.stale_sources:
            page.text(_lines(_stale_banner(data), 9, "bold"), 9, weight="bold", color="#D55E00")
        page.text(_lines(head, 10), 10, gap=0.02)
        rows = [
            [charts.fit(u["business_unit"], 8, cell), u["quadrant"], u["confidence"],
             f"{_fmt_hr(u['link_effect_shrunk'])} ({_fmt_hr(u['link_shrunk_ci_low'])}-{_fmt_hr(u['link_shrunk_ci_high'])})",
             f"{_signed(u['execution_score'])} ({u['execution_level']})"]
            for u in units
        ]  # fmt: skip
        page.table(
            rows, ["Unit", "CX type", "Confidence", "Link HR/SD (95% CI)", "Execution"],
            [charts.TYPE_COLOURS[u["quadrant"]] + "40" for u in data.units],
        )  # fmt: skip
        for u in units:
            short = {**u, "business_unit": charts.fit(u["business_unit"], 8, PDF_TEXT_POINTS / 2)}
            page.text(_lines(language.verdict_sentence(short), 8), 8)
        for unit, u in zip(data.units, units, strict=True):
            page.new_page()
            page.text(_lines(f"{u['business_unit']}: {u['quadrant']}", 15, "bold"), 15,
                      weight="bold", color=charts.TYPE_COLOURS[u["quadrant"]])  # fmt: skip
            for t in (
                language.verdict_sentence(u),
                language.link_sentence(u),
                language.nps_contrast(data.churn_by_nps.get(unit["business_unit"])),
                "What to do: " + u["recommended_action"],
                "What it could be worth: " + _worth_words(data, unit),
            ):
                if t:
                    page.text(_lines(t, 9), 9, gap=0.015)
        page.flush()
