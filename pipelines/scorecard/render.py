"""Write the scorecards: index.html, units/<unit>.html, scorecard.md, scorecard.pdf."""

from __future__ import annotations

import math
import re
import textwrap
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from models.alignment import METHOD_VERSION as ALIGNMENT_VERSION
from models.sci import SCI_VERSION
from pipelines.scorecard import charts, language
from pipelines.scorecard.data import ScorecardData

TEMPLATES = Path(__file__).parent / "templates"


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "unit"


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


def _signed(x) -> str:
    """+0.12 / -0.34; "n/a" for a figure not measured (an execution with no CX data)."""
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:+.2f}"


def _fmt_hr(log_hr) -> str:
    return "n/a" if log_hr is None else f"{math.exp(log_hr):.2f}"


def _env() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
    )
    env.globals.update(
        slug=slug, num=_num, pval=_p, pct=language.pct, money=language.money, hr=_hr, fmt_hr=_fmt_hr, signed=_signed,
        methods=f"{ALIGNMENT_VERSION}, {SCI_VERSION}",
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
    env = _env()
    written = []
    units_dir = out / "units"
    units_dir.mkdir(parents=True, exist_ok=True)
    sci_units = list(data.sci_latest)
    sci_chart = draw(
        charts.bar_chart,
        "SCI (0-100)", sci_units, [data.sci_latest[u]["sci"] or 0 for u in sci_units],
        [data.sci_latest[u]["sci_ci_low"] or 0 for u in sci_units],
        [data.sci_latest[u]["sci_ci_high"] or 0 for u in sci_units],
    )  # fmt: skip
    head = language.headline(data.units, data.company)
    index = env.get_template("index.html").render(
        title="cxalign scorecard", d=data, headline=head,
        # (without the as-of stamp, which changes nightly and is not drawn)
        quadrant=draw(charts.quadrant_chart,
                      [{k: v for k, v in u.items() if k != "as_of"} for u in data.units]),
        trends=_trends(data.company_trends["cx"], data.company_trends["revenue"], draw),
        sci_chart=sci_chart,
    )  # fmt: skip
    (out / "index.html").write_text(index, encoding="utf-8")
    written.append(out / "index.html")

    for u in data.units:
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
        page = env.get_template("unit.html").render(
            title=f"{unit}: cxalign scorecard", d=data, u=u,
            verdict=language.verdict_sentence(u), link=language.link_sentence(u),
            contrast=language.nps_contrast(data.churn_by_nps.get(unit)),
            change=language.change_sentence(u, data.previous.get(unit)),
            drivers_chart=drivers_chart, drivers_distinct=distinct, sci=data.sci_latest.get(unit),
            benefits=data.benefits.get(unit, []), clv=data.clv.get(unit), trends=unit_charts,
        )  # fmt: skip
        path = units_dir / f"{slug(unit)}.html"
        path.write_text(page, encoding="utf-8")
        written.append(path)

    md = markdown(data, head)
    (out / "scorecard.md").write_text(md, encoding="utf-8")
    written.append(out / "scorecard.md")
    pdf(data, head, out / "scorecard.pdf")
    written.append(out / "scorecard.pdf")
    return written


def markdown(data: ScorecardData, head: str) -> str:
    lines = [
        f"# CX alignment scorecard, as of {data.as_of}",
        "",
        f"**{head}**",
        "",
        "| Business unit | CX type | Confidence | Link (HR per SD, 95% CI) | Execution | Action |",
        "|---|---|---|---|---|---|",
    ]
    for u in data.units:
        lines.append(
            f"| {u['business_unit']} | {u['quadrant']} | {u['confidence']} | "
            f"{_fmt_hr(u['link_effect_shrunk'])} ({_fmt_hr(u['link_shrunk_ci_low'])}–"
            f"{_fmt_hr(u['link_shrunk_ci_high'])}) | {_signed(u['execution_score'])} ({u['execution_level']}) | "
            f"{u['recommended_action']} |"
        )
    lines += ["", "## Per unit", ""]
    for u in data.units:
        lines += [
            f"- **{u['business_unit']}**: {language.verdict_sentence(u)} {language.link_sentence(u)}"
        ]
    lines += ["", f"Maturity (indicative): level {data.maturity['level']} of 5, {data.maturity['name']}.",
              "", f"_Lineage fingerprint {data.fingerprint[:16]}; run {data.run_id}._", ""]  # fmt: skip
    return "\n".join(lines)


def pdf(data: ScorecardData, head: str, path: Path) -> None:
    """A PDF for email: the company page, then a page per unit (matplotlib, no system deps)."""
    import matplotlib.pyplot as plt
    from matplotlib.backends.backend_pdf import PdfPages

    with PdfPages(
        path, metadata={"Title": f"cxalign scorecard {data.as_of}", "CreationDate": None}
    ) as doc:
        fig = plt.figure(figsize=(8.27, 11.69))  # A4
        fig.text(0.06, 0.96, "Is our CX strategic, or just busy?", fontsize=16, weight="bold")
        fig.text(0.06, 0.935, f"cxalign scorecard, as of {data.as_of}", fontsize=9, color="#555555")
        fig.text(0.06, 0.90, textwrap.fill(head, 95), fontsize=10, va="top")
        rows = [
            [u["business_unit"], u["quadrant"], u["confidence"],
             f"{_fmt_hr(u['link_effect_shrunk'])} ({_fmt_hr(u['link_shrunk_ci_low'])}-{_fmt_hr(u['link_shrunk_ci_high'])})",
             f"{_signed(u['execution_score'])} ({u['execution_level']})"]
            for u in data.units
        ]  # fmt: skip
        ax = fig.add_axes([0.06, 0.62, 0.88, 0.22])
        ax.axis("off")
        table = ax.table(cellText=rows, colLabels=["Unit", "CX type", "Confidence", "Link HR/SD (95% CI)",
                                                   "Execution"], loc="upper left")  # fmt: skip
        table.auto_set_font_size(False)
        table.set_fontsize(8)
        table.scale(1, 1.4)
        for i, u in enumerate(data.units, start=1):
            table[i, 1].set_facecolor(charts.TYPE_COLOURS[u["quadrant"]] + "40")
        y = 0.58
        for u in data.units:
            fig.text(
                0.06, y, textwrap.fill(language.verdict_sentence(u), 100), fontsize=8, va="top"
            )
            y -= 0.055
        fig.text(
            0.06,
            0.03,
            f"Lineage fingerprint {data.fingerprint[:16]} · run {data.run_id}",
            fontsize=7,
            color="#777777",
        )
        doc.savefig(fig)
        plt.close(fig)
        for u in data.units:
            fig = plt.figure(figsize=(8.27, 11.69))
            fig.text(0.06, 0.96, f"{u['business_unit']}: {u['quadrant']}", fontsize=15, weight="bold",
                     color=charts.TYPE_COLOURS[u["quadrant"]])  # fmt: skip
            text = "\n\n".join(
                textwrap.fill(t, 95)
                for t in (
                    language.verdict_sentence(u),
                    language.link_sentence(u),
                    language.nps_contrast(data.churn_by_nps.get(u["business_unit"])),
                    "What to do: " + u["recommended_action"],
                )  # fmt: skip
                if t
            )
            fig.text(0.06, 0.92, text, fontsize=9, va="top")
            doc.savefig(fig)
            plt.close(fig)
