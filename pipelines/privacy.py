"""Personal data out of free text, before anything analysts can read.

E-mail addresses and phone numbers (and the patterns configured under `privacy.patterns`)
are replaced by a typed placeholder, `[email]`, `[phone]`, `[<name>]`, by DuckDB's
`regexp_replace` as the landing files are read into `raw.*` (`pipelines.landing`). What is
scrubbed: the contracts' `free_text` columns (survey comments, churn reasons, account names),
every column a file has beyond its contract (`raw.<source>._extra`), and the whole text of a
malformed CSV record (`raw._rejects.csv_line`, shown in `analytics.quarantine.value`). The
text before scrubbing is never written to the working database, so no later table, the
published warehouse or a scorecard can hold it: the landing files are its only copy.

The patterns are RE2 (DuckDB's dialect: no look-around), so each guard against a false
positive is written into the pattern itself; docs/ingestion.md lists what is detected and
what deliberately is not, and tests/pipelines/test_privacy.py holds each case.
"""

from __future__ import annotations

import hashlib
import json

from pipelines.settings import PrivacySettings

# --- characters pasted from word processors, web pages and phones --------------------------

# Invisible: zero-width space, non-joiner and joiner, word joiner, byte-order mark, soft hyphen.
# Pasted from web pages and chat apps, or put there to get past a filter: skipped wherever they
# sit in an address or a number.
_INVISIBLE = r"\x{00AD}\x{200B}-\x{200D}\x{2060}\x{FEFF}"
_ZW = f"[{_INVISIBLE}]*"
# Spaces besides " ": no-break (U+00A0: Word and Outlook between the groups of a number), the
# typographic ones (U+2000-200A: thin, figure ...), narrow no-break (U+202F: French), ideographic.
_SPACES = r" \x{00A0}\x{2000}-\x{200A}\x{202F}\x{205F}\x{3000}"
# Hyphens and dashes: non-breaking hyphen (U+2011), figure, en and em dashes (U+2012-2015), the
# minus sign, small and full-width hyphen-minus.
_HYPHENS = r"\-\x{2010}-\x{2015}\x{2212}\x{FE63}\x{FF0D}"
# Full stop, full-width and ideographic (IDNA reads all four as the dot of a domain); between
# the digits of a number only the first two.
_DOTS = r".\x{FF0E}\x{3002}\x{FF61}"
_NUMBER_DOTS = r".\x{FF0E}"
_SLASHES = r"/\x{FF0F}"
_OPEN, _CLOSE = r"(\x{FF08}", r")\x{FF09}"  # and full-width brackets
# Full-width digits and letters (０-９, Ａ-Ｚ, ａ-ｚ: Chinese and Japanese input) are read by
# character class: DuckDB has no NFKC in SQL (nfc_normalize leaves them as they are).
_DIGITS = r"0-9\x{FF10}-\x{FF19}"

# --- e-mail addresses ----------------------------------------------------------------------

# Letters of the Latin (with accents), Greek and Cyrillic scripts, and full-width Latin. Not
# \p{L}: RE2 matches the whole Unicode class ten times slower (4 s against 0.4 s a million
# comments, 2 threads).
_LETTER = r"A-Za-z\x{00C0}-\x{024F}\x{0370}-\x{04FF}\x{FF21}-\x{FF3A}\x{FF41}-\x{FF5A}"
_ALNUM = _LETTER + _DIGITS
# a label: letters, digits, _%+- (and invisible characters inside)
_WORD = f"[{_ALNUM}](?:[{_ALNUM}_%+\\-{_INVISIBLE}]*[{_ALNUM}])?"
_TLD = f"[{_LETTER}]{{2,24}}"  # a domain ends in letters (so "@ 3.50" is no address)
_BLANK = f"[\\s{_SPACES}{_INVISIBLE}]"  # RE2's \s is ASCII only
# @, full-width ＠, small ﹫, URL-encoded (%40: a pasted unsubscribe link), HTML (&#64; &#x40;
# &commat;).
_AT = r"(?:[@\x{FF20}\x{FE6B}]|%40|&#0*64;|&#x0*40;|&commat;)"
_OPENING, _CLOSING = f"{_BLANK}*[\\(\\[\\{{<]{_BLANK}*", f"{_BLANK}*[\\)\\]\\}}>]{_BLANK}*"
_BRACKETED_AT = f"{_OPENING}(?:at|{_AT}){_CLOSING}"  # (at) [at] {at} <at> [@]
_BRACKETED_DOT = f"{_OPENING}(?:dot|[{_DOTS}]){_CLOSING}"  # (dot) [dot] {dot} <dot>
_SPELLED_DOT = f"(?:{_BLANK}+dot{_BLANK}+|{_BRACKETED_DOT})"
_DOT = f"(?:[{_DOTS}]|{_SPELLED_DOT})"
_LOCAL = _WORD + r"(?:(?:" + _DOT + r"|[._\-+])" + _WORD + r")*"

# jane.doe@example.com, jane @ example.com, jane(at)example.com, jane [at] example [dot] com,
# jane%40example.com, jane&#64;example.com, jane＠example.com
EMAIL = (
    r"(?i)" + _LOCAL + r"(?:" + _BRACKETED_AT + "|" + _BLANK + "*" + _AT + _BLANK + "*)"
    + _WORD + r"(?:" + _DOT + _WORD + r")*" + _DOT + _TLD
)  # fmt: skip
# jane dot doe at example dot com: a bare " at " counts only with a spelled-out dot after it,
# because "logged in at example.com" is an English sentence, not an address.
EMAIL_SPELLED = (
    r"(?i)" + _LOCAL + _BLANK + "+at" + _BLANK + "+" + _WORD + r"(?:" + _DOT + _WORD + r")*"
    + _SPELLED_DOT + _TLD
)  # fmt: skip

# --- phone numbers ------------------------------------------------------------------------


def _digit(first: str = "0", last: str = "9") -> str:
    """A digit from `first` to `last`, ASCII or full-width, after any invisible characters."""
    wide = f"\\x{{{0xFF10 + int(first):04X}}}-\\x{{{0xFF10 + int(last):04X}}}"
    return f"(?:{_ZW}[{first}-{last}{wide}])"


def _sep(chars: str) -> str:
    """One separator from `chars`, after any invisible characters."""
    return f"(?:{_ZW}[{chars}])"


_D, _D0, _D1, _D19, _D29 = _digit(), _digit("0", "0"), _digit("1", "1"), _digit("1"), _digit("2")
# The last digit of a number: an ASCII digit ends a word (RE2's \b is ASCII only); a full-width
# one takes the full-width digits after it, so no number is cut out of a longer run and left.
_END = f"(?:{_ZW}(?:[0-9]\\b|[\\x{{FF10}}-\\x{{FF19}}]+))"
_S = _sep(_SPACES + _HYPHENS)  # a space or a hyphen
_SD = _sep(_SPACES + _HYPHENS + _NUMBER_DOTS)  # a space, a hyphen or a dot
_SSL = _sep(_SPACES + _HYPHENS + _SLASHES)  # a space, a hyphen or a slash
_DOT_SEP = _sep(_NUMBER_DOTS)
_PAREN = _sep(_OPEN + _CLOSE)
_PLUS = r"[+\x{FF0B}]"

# Not inside a longer token: a phone number follows the start, a space, a quote, a bracket,
# a comma ..., never a letter, digit, _, hyphen or dash, /, #, . or + (so T-415-555-0132,
# INC#0301234567, 1.0301234567 are identifiers or numbers), nor an invisible character.
# Group 1, kept in the replacement.
_BEFORE = f"(^|[^{_ALNUM}_{_HYPHENS}{_SLASHES}#\\x{{FF03}}{_NUMBER_DOTS}+\\x{{FF0B}}{_INVISIBLE}])"
# +44 20 7946 0958, +81-3-1234-5678, +1 (415) 555-0132, +44 (0)20 7946 0958, +4915112345678:
# a + and 8 to 15 digits, spaces, hyphens and brackets between them (+01:00, +0530 are too
# short: UTC offsets).
_GAP = f"{_S}?{_PAREN}?{_S}?"
_INTERNATIONAL = f"{_PLUS}{_D19}(?:{_GAP}{_D}){{6,13}}{_GAP}{_END}"
# +44.20.7946.0958, +1.415.555.0132: dots, 8 digits or more, and a last group of 2 or 4 to 8
# digits, not 3 (+12.345.678 is a signed amount) nor 1 (+192.168.0.1 an address).
_INTERNATIONAL_DOTS = (
    f"{_PLUS}{_D19}(?:(?:{_DOT_SEP}?{_D}){{5,12}}{_DOT_SEP}{_D}{_END}"
    f"|(?:{_DOT_SEP}?{_D}){{3,10}}{_DOT_SEP}{_D}{{3,7}}{_END})"
)
# 0044 20 7946 0958: the 00 prefix, a country code and a separator, then 7 or more digits.
_INTERNATIONAL_00 = (
    f"{_D0}{_D0}{_D19}{_D}{{0,2}}(?:{_S}|{_PAREN})(?:{_GAP}{_D}){{5,12}}{_GAP}{_END}"
)
# (415) 555-0132, 415-555-0132, 415.555.0132, 415 555 0132, 1-800-555-0199: area and exchange
# codes start with 2-9 (123-456-7890 is not a North American number).
_O, _C = _sep(_OPEN), _sep(_CLOSE)
_NORTH_AMERICAN = (
    f"(?:{_D1}{_SD}?)?(?:{_O}{_D29}{_D}{{2}}{_C}{_SD}?|{_D29}{_D}{{2}}{_SD})"
    f"{_D29}{_D}{{2}}{_SD}{_D}{{3}}{_END}"
)
# 030 1234567, 020 7946 0958, 03-1234-5678, 0171/1234567, (030) 1234567, 07700 900123: a trunk
# 0, an area code and a separator, then 5 to 8 digits or groups (3-4 digits, then 2-4). A date
# (05-03-2024, 06 2024) has a two-digit group or too few digits.
_NATIONAL = (
    f"(?:{_O}{_D0}{_D19}{_D}{{0,4}}{_C}{_S}?|{_D0}{_D19}{_D}{{0,4}}{_SSL})"
    f"(?:{_D}{{4,7}}{_END}|{_D}{{3,4}}(?:{_S}{_D}{{2,4}}){{0,2}}{_S}{_D}{{1,3}}{_END})"
)
# 06 12 34 56 78, 01.23.45.67.89: five pairs (15.03.2024 is three groups).
_PAIRS = f"{_D0}{_D19}(?:{_SD}{_D}{{2}}){{3}}{_SD}{_D}{_END}"
PHONE = (
    _BEFORE
    + "("
    + "|".join(
        [_INTERNATIONAL, _INTERNATIONAL_DOTS, _INTERNATIONAL_00, _NORTH_AMERICAN, _NATIONAL, _PAIRS]
    )
    + ")"
)
# After a word that says it is one ("call me on", "phone:", "tel", "mobile", "fax", "whatsapp"),
# any run of 7 to 15 digits is a phone number, separators or not: "call me on 07700900123".
# Group 1 (the word and what follows it) is kept.
_PAD = f"[\\t{_SPACES}{_INVISIBLE}]*"
_NAMED_SEP = f"[{_SPACES}{_HYPHENS}{_NUMBER_DOTS}{_SLASHES}{_OPEN}{_CLOSE}{_INVISIBLE}]"
PHONE_NAMED = (
    r"(?i)(\b(?:tel|telephone|phone|ph|mobile|mob|cell|cellphone|fax|whatsapp|sms"
    r"|(?:call|text|ring|reach) me)\b" + _PAD
    + r"(?:(?:[:#.\x{FF1A}\x{FF03}\x{FF0E}]|no\.?|nr\.?|number|on|at|is)" + _PAD + ")*)"
    + _PLUS + "?" + _D
    + f"(?:{_NAMED_SEP}{{0,2}}{_D}){{6,14}}"
)  # fmt: skip

# (pattern, replacement) in the order applied, after the configured patterns (more specific:
# an IBAN holds digit groups a phone pattern would take): e-mail first, so the digits of an
# address are not read as a phone number; a placeholder matches no later pattern.
BUILT_IN = (
    (EMAIL, "[email]"),
    (EMAIL_SPELLED, "[email]"),
    (PHONE_NAMED, r"\1[phone]"),
    (PHONE, r"\1[phone]"),
)


def _sql_str(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def replacements(privacy: PrivacySettings) -> list[tuple[str, str]]:
    """The (pattern, replacement) pairs scrubbing applies, in order; none when it is off."""
    if not privacy.scrub:
        return []
    configured = [(p, f"[{name}]") for name, p in sorted(privacy.patterns.items())]
    return [*configured, *BUILT_IN]


def scrub_sql(expr: str, privacy: PrivacySettings) -> str:
    """SQL for the text `expr` with every match replaced by its placeholder (NULL stays NULL)."""
    for pattern, replacement in replacements(privacy):
        expr = f"regexp_replace({expr}, {_sql_str(pattern)}, {_sql_str(replacement)}, 'g')"
    return expr


def privacy_digest(privacy: PrivacySettings) -> str:
    """What scrubbing does, as a digest: the settings and the built-in patterns. Part of how a
    landing file is read (`landing.load_settings_digest`) and of what a staged table is built
    from (`ingest.staging_inputs`): a change loads and stages every source again."""
    spec = {"replacements": replacements(privacy)}
    return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()
