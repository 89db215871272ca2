"""Names as the scorecards print them: page slugs, display text, Markdown, chart labels.

A business unit's name is data from the accounts export (any Unicode), never markup: HTML
escapes it (Jinja autoescape) and isolates its direction (`<bdi>`), Markdown backslash-escapes
it, matplotlib draws it as plain text (`text.parse_math` is off in charts.py), and the file of
its page is a slug that cannot leave the units folder. The rules are in
docs/methods/scorecard.md#names-and-page-slugs; tests/fixtures/hostile/names/ holds the names
they are tested on.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections import Counter
from collections.abc import Iterable

SLUG_READABLE_CHARS = 40  # the readable part of a slug, at most
SLUG_HASH_CHARS = 10  # hex digits of SHA-256 of the exact name: 40 bits

# A strong left-to-right mark opening each line matplotlib draws (PDF, chart titles): the
# sentence is English even when it starts with a name in Hebrew or Arabic, and would
# otherwise be laid out right to left.
LTR = "\u200e"
# Default-ignorable code points (Unicode's DerivedCoreProperties): drawn as nothing, so
# "Payments\u200b" would read "Payments". Bidi marks, embeddings, overrides and isolates are
# among them (an override, U+202E, would also reverse the text after it on the page).
_IGNORABLE = re.compile(
    "[\u00ad\u034f\u061c\u115f\u1160\u17b4\u17b5\u180b-\u180f\u200b-\u200f\u202a-\u202e"
    "\u2060-\u206f\u3164\ufe00-\ufe0f\ufeff\uffa0\ufff0-\ufff8\U0001bca0-\U0001bca3"
    "\U0001d173-\U0001d17a\U000e0000-\U000e0fff]"
)
_VARIATION = re.compile("[\ufe00-\ufe0f\U000e0100-\U000e01ef]")
_TAG = re.compile("[\U000e0020-\U000e007f]")
# The hash a label carries when two units would otherwise print alike (labels()).
_HASH_TAIL = re.compile(rf" #[0-9a-f]{{{SLUG_HASH_CHARS}}}$")
# What starts markup or ends a table cell in CommonMark and GitHub Flavored Markdown inline
# text ($ is GitHub's math). Line-start markup (#, -, >, 1.) cannot occur: a printed name is
# one line and never starts one.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>&|~$])")
# A character that belongs to the one before it: a cut before it would split a glyph.
_JOINS_PREVIOUS = re.compile(r"[\u200d\ufe00-\ufe0f\U0001f3fb-\U0001f3ff\U000e0020-\U000e007f]")


def slug(name: str) -> str:
    """The file stem of a unit's page: `<readable>-<hash>`, lowercase ASCII letters, digits
    and hyphens only.

    readable: the name decomposed (NFKD), accents dropped, lowercased, every run of other
    characters one hyphen, at most 40 characters; `unit` when nothing is left (日本, Ελλάδα).
    hash: the first 10 hex digits of SHA-256 of the exact name (UTF-8), always appended.

    So the same name gives the same slug every night; names that differ in any way (case,
    punctuation, script, normalization) get different hashes; a slug never holds a path
    separator, a leading dot or an upper-case letter (case-insensitive file systems), and is
    never a Windows device name. render.write refuses two units on one slug (a 40-bit
    collision) rather than overwrite a page.
    """
    ascii_text = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode().lower()
    readable = re.sub(r"[^a-z0-9]+", "-", ascii_text).strip("-")
    readable = readable[:SLUG_READABLE_CHARS].rstrip("-") or "unit"
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()
    return f"{readable}-{digest[:SLUG_HASH_CHARS]}"


def _invisible(text: str, i: int) -> bool:
    """Whether text[i] would be drawn as nothing (or be an instruction to a terminal): a
    control character, a lone surrogate, or a default-ignorable code point that is not part
    of the glyph around it (a joiner between two non-ASCII characters, as in emoji sequences
    and Indic or Persian words; a variation selector on a non-ASCII character or a keycap; the
    tag characters of a subdivision flag)."""
    ch = text[i]
    if unicodedata.category(ch) in ("Cc", "Cs"):
        return True
    if not _IGNORABLE.match(ch):
        return False
    before = text[i - 1] if i else ""
    after = text[i + 1] if i + 1 < len(text) else ""

    def glyph(c: str) -> bool:  # a visible non-ASCII character
        return bool(c) and ord(c) > 0x7F and not c.isspace() and not _IGNORABLE.match(c)

    if ch in "\u200c\u200d":
        return not (glyph(before) or _VARIATION.match(before)) or not glyph(after)
    if _VARIATION.match(ch):
        return not (glyph(before) or after == "\u20e3")
    if _TAG.match(ch):
        start = i
        while start and _TAG.match(text[start - 1]):
            start -= 1
        return not (start and text[start - 1] == "\U0001f3f4")
    return True


def log_safe(text: str) -> str:
    """text with every invisible character (see display) and every control character,
    newlines and ESC included, written as its code point, ⟨U+001B⟩: for log and terminal
    lines, where an ESC sequence would recolour or move the cursor and a newline would start
    a line that looks like the program's own."""
    return "".join(f"⟨U+{ord(ch):04X}⟩" if _invisible(text, i) else ch for i, ch in enumerate(text))


def display(name: str) -> str:
    """The name as printed, on one line, never looking like another name or like nothing:
    composed (NFC: an accent drawn on its letter, as fonts expect); every run of newlines,
    tabs and spaces one space; every other character that would be drawn as nothing, a
    control (NUL, ESC, form feed), a zero-width space, a direction mark or override, written
    as its code point, `Payments⟨U+200B⟩` (not `Payments`); letters of any script, emoji and
    punctuation kept as they are. A name with nothing to show (only spaces, or empty) is
    `(unnamed <slug>)`, which differs for every such name."""
    text = unicodedata.normalize("NFC", name)
    text = "".join(
        " " if ch in "\t\n\r" or (ch.isspace() and unicodedata.category(ch) != "Cc") else ch
        for ch in text
    )
    shown = log_safe(" ".join(word for word in text.split(" ") if word))
    return shown or f"(unnamed {slug(name)})"


def in_text(name: str) -> str:
    """display(name) for a sentence: a name with right-to-left letters is isolated (U+2068 …
    U+2069), so it does not pull the commas and words beside it into its own direction: two
    such names in a list, "עברית, العربية", would otherwise print as "العربية ,עברית"."""
    text = display(name)
    if any(unicodedata.bidirectional(ch) in ("R", "AL") for ch in text):
        return f"\u2068{text}\u2069"
    return text


def safe_cut(text: str, n: int) -> int:
    """The largest index at most n (and at least 1) where text can be cut without splitting
    an emoji sequence or a letter from its accents."""
    cut = max(1, min(n, len(text)))
    while (
        cut > 1
        and cut < len(text)
        and (
            unicodedata.combining(text[cut])
            or _JOINS_PREVIOUS.match(text[cut])
            or text[cut - 1] == "\u200d"
        )
    ):
        cut -= 1
    return cut


def short(name: str, limit: int = 40) -> str:
    """display(name), cut to `limit` characters with an ellipsis: for chart labels and PDF
    cells, where a long name would push the figure off the page (the full name is in the
    chart's text alternative and on the HTML page). Never splits an emoji sequence or a
    letter from its accents; keeps the hash that labels() gave a name, which is what tells
    it from its look-alike."""
    text = display(name)
    if len(text) <= limit:
        return text
    tail = match.group(0) if (match := _HASH_TAIL.search(text)) else ""
    head = text[: len(text) - len(tail)]
    return head[: safe_cut(head, limit - 1 - len(tail))].rstrip() + "…" + tail


def labels(units: Iterable[str], limit: int = 24) -> dict[str, str]:
    """Each unit's name as the scorecards print it, told apart from the others: display(name),
    and, for units that would read alike (the same display text, `Café` composed and
    decomposed, `a  b` and `a b`; or the same first `limit` characters, all a chart label
    shows of a long name), followed by the hash of its page's slug: `Café #1a2b3c4d5e`.
    short() keeps that hash when it cuts the name."""
    shown = {unit: display(unit) for unit in dict.fromkeys(units)}
    alike = Counter(short(text, limit) for text in shown.values())
    return {
        unit: f"{text} #{slug(unit)[-SLUG_HASH_CHARS:]}" if alike[short(text, limit)] > 1 else text
        for unit, text in shown.items()
    }


def markdown(text: str) -> str:
    """Plain text as literal Markdown inline content (CommonMark and GitHub Flavored): one
    line, and every character that could open a link, image, raw HTML, an entity, emphasis,
    code, math or a new table cell backslash-escaped. So a unit named
    `[x](javascript:alert(1))` or `<script>` or `a | b` prints as exactly that text."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", " ".join(text.split()))
