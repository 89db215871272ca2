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

# --- e-mail addresses ----------------------------------------------------------------------

# Letters of the Latin (with accents), Greek and Cyrillic scripts. Not \p{L}: RE2 matches the
# whole Unicode class ten times slower (4 s against 0.4 s a million comments, 2 threads).
_LETTER = r"A-Za-z\x{00C0}-\x{024F}\x{0370}-\x{04FF}"
_WORD = f"[{_LETTER}0-9](?:[{_LETTER}0-9_%+\\-]*[{_LETTER}0-9])?"  # a label: letters, digits, _%+-
_TLD = f"[{_LETTER}]{{2,24}}"  # a domain ends in letters (so "@ 3.50" is no address)
_BRACKETED_AT = r"\s*[\(\[\{<]\s*(?:at|@)\s*[\)\]\}>]\s*"  # (at) [at] {at} <at> [@]
_BRACKETED_DOT = r"\s*[\(\[\{<]\s*(?:dot|\.)\s*[\)\]\}>]\s*"  # (dot) [dot] {dot} <dot>
_SPELLED_DOT = r"(?:\s+dot\s+|" + _BRACKETED_DOT + ")"
_DOT = r"(?:\.|" + _SPELLED_DOT + ")"
_LOCAL = _WORD + r"(?:(?:" + _DOT + r"|[._\-+])" + _WORD + r")*"

# jane.doe@example.com, jane @ example.com, jane(at)example.com, jane [at] example [dot] com
EMAIL = (
    r"(?i)" + _LOCAL + r"(?:" + _BRACKETED_AT + r"|\s*@\s*)"
    + _WORD + r"(?:" + _DOT + _WORD + r")*" + _DOT + _TLD
)  # fmt: skip
# jane dot doe at example dot com: a bare " at " counts only with a spelled-out dot after it,
# because "logged in at example.com" is an English sentence, not an address.
EMAIL_SPELLED = (
    r"(?i)" + _LOCAL + r"\s+at\s+" + _WORD + r"(?:" + _DOT + _WORD + r")*" + _SPELLED_DOT + _TLD
)  # fmt: skip

# --- phone numbers ------------------------------------------------------------------------

# Not inside a longer token: a phone number follows the start, a space, a quote, a bracket,
# a comma ..., never a letter, digit, _, -, /, #, . or + (so T-415-555-0132, INC#0301234567,
# 1.0301234567 are identifiers or numbers). Group 1, kept in the replacement.
_BEFORE = f"(^|[^{_LETTER}0-9_\\-/#.+])"
# +44 20 7946 0958, +81-3-1234-5678, +1 (415) 555-0132, +44 (0)20 7946 0958, +4915112345678:
# a + and 8 to 15 digits, spaces, hyphens and brackets between them (+01:00, +0530 are too
# short: UTC offsets).
_INTERNATIONAL = r"\+[1-9](?:[ \-]?[()]?[ \-]?[0-9]){7,14}"
# 0044 20 7946 0958: the 00 prefix, a country code and a separator, then 7 or more digits.
_INTERNATIONAL_00 = r"00[1-9][0-9]{0,2}[ \-(](?:[ \-]?[()]?[ \-]?[0-9]){6,13}"
# (415) 555-0132, 415-555-0132, 415.555.0132, 415 555 0132, 1-800-555-0199: area and exchange
# codes start with 2-9 (123-456-7890 is not a North American number).
_NORTH_AMERICAN = (
    r"(?:1[ .\-]?)?(?:\([2-9][0-9]{2}\)[ .\-]?|[2-9][0-9]{2}[ .\-])[2-9][0-9]{2}[ .\-][0-9]{4}"
)
# 030 1234567, 020 7946 0958, 03-1234-5678, 0171/1234567, (030) 1234567, 07700 900123: a trunk
# 0, an area code and a separator, then 5 to 8 digits or groups (3-4 digits, then 2-4). A date
# (05-03-2024, 06 2024) has a two-digit group or too few digits.
_NATIONAL = (
    r"(?:\(0[1-9][0-9]{0,4}\)[ \-]?|0[1-9][0-9]{0,4}[ \-/])"
    r"(?:[0-9]{5,8}|[0-9]{3,4}(?:[ \-][0-9]{2,4}){1,3})"
)
# 06 12 34 56 78, 01.23.45.67.89: five pairs (15.03.2024 is three groups).
_PAIRS = r"0[1-9](?:[ .\-][0-9]{2}){4}"
PHONE = (
    _BEFORE
    + "("
    + "|".join([_INTERNATIONAL, _INTERNATIONAL_00, _NORTH_AMERICAN, _NATIONAL, _PAIRS])
    + r")\b"
)
# After a word that says it is one ("call me on", "phone:", "tel", "mobile", "fax", "whatsapp"),
# any run of 7 to 15 digits is a phone number, separators or not: "call me on 07700900123".
# Group 1 (the word and what follows it) is kept.
PHONE_NAMED = (
    r"(?i)(\b(?:tel|telephone|phone|ph|mobile|mob|cell|cellphone|fax|whatsapp|sms"
    r"|(?:call|text|ring|reach) me)\b[ \t]*(?:(?:[:#.]|no\.?|nr\.?|number|on|at|is)[ \t]*)*)"
    r"\+?[0-9](?:[ .\-/()]{0,2}[0-9]){6,14}"
)

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
