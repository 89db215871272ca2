"""Charts as inline SVG, drawn offline with matplotlib.

Why matplotlib: it renders to SVG (and the PDF) with no browser, JavaScript runtime or
network, deterministically, and it is already the analysts' plotting library here. Text
stays text in the SVG (readable by screen readers and searchable); every chart also gets a
text alternative. Colours: the Okabe-Ito palette, safe for the common colour-vision
deficiencies; confidence is shown by fill (solid = established, hollow = provisional), not
by colour alone.
"""

from __future__ import annotations

import hashlib
import io
import math
import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib import font_manager  # noqa: E402
from matplotlib.backends.backend_agg import RendererAgg  # noqa: E402

from pipelines.scorecard.names import LTR, display, in_text, safe_cut, short  # noqa: E402

OKABE_ITO = ["#E69F00", "#56B4E9", "#009E73", "#F0E442", "#0072B2", "#D55E00", "#CC79A7", "#000000"]
TYPE_COLOURS = {
    "Innovative": "#009E73",
    "Inflicted": "#D55E00",
    "Ineffective": "#0072B2",
    "Inactive": "#CC79A7",
    "Inconclusive": "#7f7f7f",
}
# Fonts for names in any script: DejaVu Sans (Latin, Greek, Cyrillic, Hebrew, Arabic), then
# Noto Sans CJK (Chinese, Japanese, Korean) where installed (Debian: fonts-noto-cjk; .ci/run
# installs it). A glyph in neither is drawn as matplotlib's last-resort box (emoji in the PDF);
# the SVG keeps text as text and the browser draws it with its own fonts.
FONT_FALLBACKS = ("Noto Sans CJK JP",)
_known_fonts = {f.name for f in font_manager.fontManager.ttflist}
plt.rcParams.update({
    "svg.fonttype": "none",  # keep text as text
    "svg.hashsalt": "cxalign",  # deterministic ids
    # Names are data: "Premium $$" or "$x^2$" is drawn as typed, never parsed as math text
    # (which fails on "$$" and silently typesets the rest). Nothing here draws mathtext.
    "text.parse_math": False,
    # (sans-serif last: the SVG's font-family list ends in the generic family for browsers)
    "font.family": ["DejaVu Sans", *(f for f in FONT_FALLBACKS if f in _known_fonts), "sans-serif"],
    "font.size": 9,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.prop_cycle": matplotlib.cycler(color=OKABE_ITO),
})  # fmt: skip


# How wide a unit's name may be drawn, in points: a bar chart's tick label and a label
# beside a point of the quadrant chart (about 32 and 24 average Latin letters at 9 pt). A
# name is cut to its width, not to a number of characters: 32 CJK characters or capital Ws
# are twice as wide as 32 average letters.
BAR_LABEL_POINTS = 150.0
POINT_LABEL_POINTS = 110.0
_MEASURE = RendererAgg(10, 10, 72)  # at 72 dpi a pixel is a point


@lru_cache(maxsize=4096)
def text_width(text: str, size: float, weight: str = "normal") -> float:
    """How wide matplotlib draws text (one line, plain) in the scorecards' fonts, in points."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "Glyph .* missing from font", UserWarning)
        prop = font_manager.FontProperties(size=size, weight=weight)
        return _MEASURE.get_text_width_height_descent(text, prop, ismath=False)[0]


def fit(name: str, size: float, points: float, weight: str = "normal") -> str:
    """names.short(name, n) for the longest n that draws within `points`: the whole name
    when it fits, else cut with an ellipsis (and a look-alike's hash kept)."""
    text = display(name)
    if text_width(text, size, weight) <= points:
        return text
    lo, hi = 2, len(text) - 1  # short(text, lo) is assumed to fit; hi is the most to try
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if text_width(short(text, mid), size, weight) <= points:
            lo = mid
        else:
            hi = mid - 1
    return short(text, lo)


def wrap(text: str, size: float, points: float, weight: str = "normal") -> list[str]:
    """text in lines of at most `points` drawn width, broken at spaces; a word wider than a
    line (a name without spaces, 300 letters or 100 CJK characters) is broken where it
    reaches the edge, never inside an emoji sequence or between a letter and its accents."""
    space = text_width("a a", size, weight) - text_width("aa", size, weight)
    lines: list[str] = []
    line, used = "", 0.0
    for word in text.split():
        w = text_width(word, size, weight)
        if line and used + space + w <= points:
            line, used = f"{line} {word}", used + space + w
            continue
        if line:
            lines.append(line)
        while w > points and len(word) > 1:
            lo, hi = 1, len(word) - 1  # the longest head that fits, found by halving
            while lo < hi:
                mid = (lo + hi + 1) // 2
                if text_width(word[:mid], size, weight) <= points:
                    lo = mid
                else:
                    hi = mid - 1
            head = safe_cut(word, lo)
            lines.append(word[:head])
            word = word[head:]
            w = text_width(word, size, weight)
        line, used = word, w
    return [*lines, line] if line or not lines else lines


@dataclass(frozen=True)
class Chart:
    svg: str
    alt: str  # the text alternative: what the chart shows, in words


class ChartCache:
    """Charts already drawn, by a digest of what they draw: the chart function, its inputs,
    the source of this module and of names.py (how labels are printed), the fonts found and
    matplotlib's version. A quiet night (the same complete months) draws no trend chart
    again; the scorecards asset keeps the entries in the warehouse (ops.chart_cache)."""

    _code = hashlib.sha256(
        Path(__file__).read_bytes()
        + (Path(__file__).parent / "names.py").read_bytes()
        + repr(plt.rcParams["font.family"]).encode()
        + matplotlib.__version__.encode()
    ).hexdigest()

    def __init__(self, known: dict[str, tuple[str, str]] | None = None):
        self.known = dict(known or {})
        self.used: dict[str, tuple[str, str]] = {}  # what tonight's pages show
        self.drawn = 0

    def draw(self, fn: Callable[..., Chart], *args, **kwargs) -> Chart:
        # repr: floats to the last bit, dates and None as themselves
        what = repr((fn.__name__, args, sorted(kwargs.items())))
        key = hashlib.sha256((self._code + what).encode()).hexdigest()
        if key in self.known:
            chart = Chart(*self.known[key])
        else:
            chart = fn(*args, **kwargs)
            self.drawn += 1
        self.used[key] = (chart.svg, chart.alt)
        return chart


def _svg(fig) -> str:
    buf = io.StringIO()
    with warnings.catch_warnings():
        # Text stays text in the SVG: the browser draws it with its own fonts (emoji too), so
        # a glyph missing from matplotlib's fonts only means a rougher size estimate.
        warnings.filterwarnings("ignore", "Glyph .* missing from font", UserWarning)
        fig.savefig(
            buf, format="svg", bbox_inches="tight", metadata={"Date": None, "Creator": None}
        )
    plt.close(fig)
    text = buf.getvalue()
    text = text[text.index("<svg") :]  # drop the XML prolog and DOCTYPE for inline use
    return re.sub(r"<metadata>.*?</metadata>", "", text, flags=re.S)


def quadrant_chart(units: list[dict]) -> Chart:
    """Execution (x) against link (y: protective effect), with interval whiskers."""
    fig, ax = plt.subplots(figsize=(6.4, 4.6))
    conclusive = [u for u in units if u["quadrant"] != "Inconclusive"]
    apart = [u for u in units if u["quadrant"] == "Inconclusive"]
    ax.axvline(0, color="#999999", lw=0.8)
    threshold = -units[0]["materiality_threshold"] if units else math.log(1 / 0.85)
    ax.axhline(threshold, color="#999999", lw=0.8, ls="--")
    for u in conclusive:
        colour = TYPE_COLOURS[u["quadrant"]]
        x, y = u["execution_score"], -u["link_effect_shrunk"]
        xerr = [[x - u["execution_ci_low"]], [u["execution_ci_high"] - x]]
        yerr = [[y - (-u["link_shrunk_ci_high"])], [(-u["link_shrunk_ci_low"]) - y]]
        established = u["confidence"] == "established"
        ax.errorbar(x, y, xerr=xerr, yerr=yerr, fmt="o", color=colour, ms=8, capsize=3,
                    mfc=colour if established else "white", mew=1.5)  # fmt: skip
        ax.annotate(
            fit(u["business_unit"], 9, POINT_LABEL_POINTS),
            (x, y),
            xytext=(6, 6),
            textcoords="offset points",
        )
    ax.set_xlabel("Execution: CX against the company (SD units) →")
    ax.set_ylabel("Link: lower churn hazard per SD better CX (log) →")
    ax.text(
        0.99,
        0.99,
        "Innovative",
        transform=ax.transAxes,
        ha="right",
        va="top",
        color=TYPE_COLOURS["Innovative"],
    )
    ax.text(
        0.01,
        0.99,
        "Inflicted",
        transform=ax.transAxes,
        ha="left",
        va="top",
        color=TYPE_COLOURS["Inflicted"],
    )
    ax.text(
        0.99,
        0.01,
        "Ineffective",
        transform=ax.transAxes,
        ha="right",
        va="bottom",
        color=TYPE_COLOURS["Ineffective"],
    )
    ax.text(
        0.01,
        0.01,
        "Inactive",
        transform=ax.transAxes,
        ha="left",
        va="bottom",
        color=TYPE_COLOURS["Inactive"],
    )
    if apart:
        names = ", ".join(in_text(fit(u["business_unit"], 8, POINT_LABEL_POINTS)) for u in apart)
        lines = wrap(f"Inconclusive, shown apart: {names}", 8, 430)
        if len(lines) > 3:
            lines = [*lines[:2], lines[2] + " …"]
        title = "\n".join(LTR + line for line in lines)
        ax.set_title(title, fontsize=8, loc="left", color="#555555")
    alt = "Quadrant chart. " + "; ".join(
        f"{in_text(u['business_unit'])}: {u['quadrant']} ({u['confidence']}), execution {'n/a' if u['execution_score'] is None else format(u['execution_score'], '+.2f')}"
        + (f", link {-u['link_effect_shrunk']:+.2f}" if u["link_effect_shrunk"] is not None else "")
        for u in units
    )
    return Chart(_svg(fig), alt)


def trend_chart(title: str, months: list, values: list, low: list | None = None,
                high: list | None = None, unit: str = "", as_percent: bool = False) -> Chart:  # fmt: skip
    fig, ax = plt.subplots(figsize=(3.2, 2.0))
    scale = 100 if as_percent else 1
    ys = [None if v is None else v * scale for v in values]
    ax.plot(months, [math.nan if v is None else v for v in ys], color=OKABE_ITO[4], lw=1.6)
    if low is not None and high is not None:
        lo = [math.nan if v is None else v * scale for v in low]
        hi = [math.nan if v is None else v * scale for v in high]
        ax.fill_between(months, lo, hi, color=OKABE_ITO[1], alpha=0.35, lw=0, label="95% interval")
    ax.set_title(title, loc="left", fontsize=9)
    ax.tick_params(axis="x", labelsize=7, rotation=30)
    shown = [v for v in ys if v is not None]
    last = f"{shown[-1]:.1f}{unit}" if shown else "no data"
    alt = f"{title}: {len(shown)} months, latest {last}" + (
        " with 95% interval band" if low else ""
    )
    return Chart(_svg(fig), alt)


def bar_chart(title: str, labels: list[str], values: list[float], low: list | None = None,
              high: list | None = None, unit: str = "", colours: list[str] | None = None) -> Chart:  # fmt: skip
    fig, ax = plt.subplots(figsize=(4.2, 0.45 * max(len(labels), 2) + 0.8))
    ypos = list(range(len(labels)))[::-1]
    err = None
    if low is not None and high is not None:
        err = [[max(v - lo, 0) for v, lo in zip(values, low, strict=True)],
               [max(hi - v, 0) for v, hi in zip(values, high, strict=True)]]  # fmt: skip
    ax.barh(ypos, values, xerr=err, color=colours or OKABE_ITO[4], capsize=3, height=0.6)
    ax.set_yticks(ypos, [fit(label, 9, BAR_LABEL_POINTS) for label in labels])
    ax.set_title(title, loc="left", fontsize=9)
    alt = f"{title}: " + "; ".join(
        f"{in_text(label)} {v:,.2f}{unit}" for label, v in zip(labels, values, strict=True)
    )
    return Chart(_svg(fig), alt)
