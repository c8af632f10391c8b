"""The language of what the harness writes for people: gettext catalogs, compiled with Babel on first use.

Why gettext + Babel: translators work in the standard .po format with the standard tools (Poedit,
Weblate, ``pybabel``), plural forms follow each language's own rules (Russian has three), and a new
language is a new catalog, no code. The catalogs live as text under ``locale/<lang>/LC_MESSAGES/harness.po``
(reviewable, diffable, shipped in the wheel like any package file); they are compiled in memory with
Babel the first time a language is used, so a fresh clone needs no build step and no .mo files are
committed. English is the source language: its texts are the msgids themselves.

Machine keys (verdicts, ids) never pass through here: certificate.json stays language-neutral.
Texts a check writes (reasons, measurement names) are templates with their values (texts.py, localize.py).
"""

from __future__ import annotations

import functools
import gettext
import io
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path

DOMAIN = "harness"
SOURCE_LANGUAGE = "en"
LOCALE_DIR = Path(__file__).with_name("locale")


class UnknownLanguage(ValueError):
    """No catalog for the language asked for."""


def catalog_path(lang: str) -> Path:
    return LOCALE_DIR / lang / "LC_MESSAGES" / f"{DOMAIN}.po"


def languages() -> list[str]:
    """English plus every language a catalog exists for (Kazakh appears once ``kk`` has one)."""
    found = sorted(p.name for p in LOCALE_DIR.iterdir() if catalog_path(p.name).is_file()) \
        if LOCALE_DIR.is_dir() else []
    return [SOURCE_LANGUAGE, *(lang for lang in found if lang != SOURCE_LANGUAGE)]


@functools.cache
def translations(lang: str) -> gettext.NullTranslations:
    """The compiled catalog of ``lang`` (English: the identity)."""
    if lang == SOURCE_LANGUAGE:
        return gettext.NullTranslations()
    po = catalog_path(lang)
    if not po.is_file():
        raise UnknownLanguage(f"no catalog for language {lang!r}; languages: {', '.join(languages())}")
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    with po.open("rb") as f:
        catalog = read_po(f, locale=lang, domain=DOMAIN)
    compiled = io.BytesIO()
    write_mo(compiled, catalog, use_fuzzy=False)  # a fuzzy (unreviewed) entry stays English
    compiled.seek(0)
    return gettext.GNUTranslations(compiled)


_ENGLISH = gettext.NullTranslations()
_current: ContextVar[gettext.NullTranslations | None] = ContextVar("harness_language", default=None)
_current_lang: ContextVar[str] = ContextVar("harness_language_code", default=SOURCE_LANGUAGE)


@contextmanager
def language(lang: str | None) -> Iterator[str]:
    """Write in ``lang`` (None: English) inside the block; raises UnknownLanguage for a missing catalog."""
    lang = lang or SOURCE_LANGUAGE
    t, code = _current.set(translations(lang)), _current_lang.set(lang)
    try:
        yield lang
    finally:
        _current.reset(t)
        _current_lang.reset(code)


def current() -> str:
    return _current_lang.get()


def _(message: str) -> str:
    return (_current.get() or _ENGLISH).gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return (_current.get() or _ENGLISH).ngettext(singular, plural, n)


def pgettext(context: str, message: str) -> str:
    return (_current.get() or _ENGLISH).pgettext(context, message)


def N_(message: str) -> str:  # the gettext convention: marked for extraction, translated where shown
    return message


def verdict_name(verdict: str) -> str:
    """A verdict as a reader sees it; the machine key (PASS, N/A …) stays in the JSON."""
    return pgettext("verdict", verdict)


# Verdict names and the catalogue's vocabulary, marked here so that extraction finds them (they are data
# elsewhere). pgettext keeps a verdict apart from the same English word used as an ordinary label.
_VERDICTS = (pgettext("verdict", "PASS"), pgettext("verdict", "FAIL"), pgettext("verdict", "INCONCLUSIVE"),
             pgettext("verdict", "FLAKY"), pgettext("verdict", "N/A"), pgettext("verdict", "NOT TESTED"))
CLAUSE_KINDS = {"automatic": N_("automatic"), "documentary": N_("documentary"),
                "automatic+documentary": N_("automatic + documentary"), "out of scope": N_("out of scope")}
CHAPTER_TITLES = {
    3: N_("Procedure for the functioning of the Information System"),
    4: N_("Interaction and coordination of work processes between users"),
    5: N_("Procedure for collecting, processing, monitoring and analysing data"),
    6: N_("Data collection"), 7: N_("Data processing"), 8: N_("Data monitoring and analysis"),
    9: N_("Requirements for ICI objects of fuel and energy companies"),
    10: N_("Requirements for informatisation objects of heat and power"),
    11: N_("Requirements for AMR hardware-software complexes"),
    12: N_("Requirements for process control systems (ASUTP)"),
    13: N_("Requirements for AMR server equipment and operating system"),
    14: N_("Requirements for data transfer in smart metering systems"),
    15: N_("Requirements for measuring instruments and metering equipment"),
}
