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

SLUG_READABLE_CHARS = 40  # the readable part of a slug, at most
SLUG_HASH_CHARS = 10  # hex digits of SHA-256 of the exact name: 40 bits

# A strong left-to-right mark opening each line matplotlib draws (PDF, chart titles): the
# sentence is English even when it starts with a name in Hebrew or Arabic, and would
# otherwise be laid out right to left.
LTR = "\u200e"
# Explicit direction marks, embeddings, overrides and isolates: invisible, and an override in
# a name (U+202E) would reverse the text that follows it on the page.
_BIDI_CONTROLS = dict.fromkeys(
    map(ord, "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
)
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


def display(name: str) -> str:
    """The name as printed, on one line: every run of white space (newlines, tabs) one space;
    control characters and explicit direction controls dropped (invisible, and an override
    would reorder the words around the name); letters of any script, emoji and punctuation
    kept as they are, composed (NFC: an accent drawn on its letter, as fonts expect).
    `(unnamed)` when nothing visible is left."""
    text = unicodedata.normalize("NFC", name).translate(_BIDI_CONTROLS)
    text = "".join(
        " " if ch.isspace() else ch
        for ch in text
        if ch.isspace() or unicodedata.category(ch) != "Cc"
    )
    return " ".join(text.split()) or "(unnamed)"


def in_text(name: str) -> str:
    """display(name) for a sentence: a name with right-to-left letters is isolated (U+2068 …
    U+2069), so it does not pull the commas and words beside it into its own direction: two
    such names in a list, "עברית, العربية", would otherwise print as "العربية ,עברית"."""
    text = display(name)
    if any(unicodedata.bidirectional(ch) in ("R", "AL") for ch in text):
        return f"\u2068{text}\u2069"
    return text


def short(name: str, limit: int = 40) -> str:
    """display(name), cut to `limit` characters with an ellipsis: for chart labels and PDF
    cells, where a long name would push the figure off the page (the full name is in the
    chart's text alternative and on the HTML page). Never splits an emoji sequence or a
    letter from its accents."""
    text = display(name)
    if len(text) <= limit:
        return text
    cut = limit - 1
    while cut > 1 and (
        unicodedata.combining(text[cut])
        or _JOINS_PREVIOUS.match(text[cut])
        or text[cut - 1] == "\u200d"
    ):
        cut -= 1
    return text[:cut].rstrip() + "…"


def markdown(text: str) -> str:
    """Plain text as literal Markdown inline content (CommonMark and GitHub Flavored): one
    line, and every character that could open a link, image, raw HTML, an entity, emphasis,
    code, math or a new table cell backslash-escaped. So a unit named
    `[x](javascript:alert(1))` or `<script>` or `a | b` prints as exactly that text."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", " ".join(text.split()))
