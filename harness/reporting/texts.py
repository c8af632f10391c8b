"""Texts a check writes (titles, reasons, measurement names and notes, chart labels), translatable later.

A check runs before anyone knows which language its certificate will be read in, and the same sealed
run can be rebuilt in another (``harness report OUTDIR --lang ru``). So a check does not write a
finished sentence but a ``Msg``: a gettext msgid template plus its values. The record keeps the
English rendering (what every tool reads) and, beside it, ``{"template", "values"}``; a report renders
the template in its language from the catalogs (i18n.py).

The values are kept as the check formatted them (``{latency:.1f}`` keeps "12.3"), so a translation
moves a number but can never re-word it; a value that is itself a ``Msg`` (a phrase chosen by the
check) is translated on its own. Babel finds the templates: ``Msg`` is an extraction keyword
(babel.cfg, i18n_extract.py), as are the titles of ``@pytest.mark.check(id, title)``.
"""

from __future__ import annotations

import string
from collections.abc import Iterable, Mapping
from typing import Any

from harness.reporting.i18n import _, pgettext

_CONTEXT = "\x04"  # gettext's separator of a message context (msgctxt) from its msgid

_FORMATTER = string.Formatter()


class Msg(str):
    """English text built from a msgid ``template`` and its ``values``; ``str(msg)`` is the English.

    A ``str`` so that everything which took a string before (exceptions, f-strings, records) still does.
    """

    template: str
    values: dict[str, Any]

    def __new__(cls, template: str, /, **values: Any) -> Msg:
        english = _render(template, values, translate=False, preformatted=False)
        self = super().__new__(cls, english)
        self.template = template
        self.values = {name: _kept(value, conversion, spec) for name, conversion, spec in _fields(template)
                       for value in (values[name],)}
        return self

    def __reduce__(self) -> tuple[Any, ...]:  # survive pickling (pytest-xdist, exceptions across processes)
        return _from_data, (self.data(),)

    def data(self) -> dict[str, Any]:
        """The language-neutral form kept in a record: the template and its formatted values."""
        return {"template": self.template,
                "values": {k: v.data() if isinstance(v, Msg) else v for k, v in self.values.items()}}

    def __add__(self, other: str) -> Msg:  # "a" + "b" keeps each part translatable
        return Msg.joined("", (self, other)) if isinstance(other, str) else NotImplemented

    def __radd__(self, other: str) -> Msg:
        return Msg.joined("", (other, self)) if isinstance(other, str) else NotImplemented

    def localized(self) -> str:
        """The text in the current language (i18n.language); English where the catalog lacks the template."""
        return _render(self.template, self.values, translate=True, preformatted=True)

    @classmethod
    def in_context(cls, context: str, text: str) -> Msg:
        """A word translated in a gettext context, e.g. a verdict name (``pgettext("verdict", "FAIL")``)."""
        self = str.__new__(cls, text)
        self.template, self.values = f"{context}{_CONTEXT}{text}", {}
        return self

    @classmethod
    def literal(cls, text: str) -> Msg:
        """A whole text used as its own msgid (a check title, a fixed phrase written without a template)."""
        return text if isinstance(text, Msg) else cls(text.replace("{", "{{").replace("}", "}}"))

    @classmethod
    def joined(cls, separator: str, parts: Iterable[str]) -> Msg:
        """Parts (Msg or plain text) joined, each translated on its own: "a; b; c"."""
        items = list(parts)
        return cls(separator.join(f"{{p{i}}}" for i in range(len(items))),
                   **{f"p{i}": part for i, part in enumerate(items)})


def _fields(template: str) -> list[tuple[str, str | None, str]]:
    return [(name, conversion, spec or "") for _lit, name, spec, conversion in _FORMATTER.parse(template)
            if name is not None]


def _kept(value: Any, conversion: str | None, spec: str) -> Any:
    """A value as the record keeps it: a nested Msg as such (also the Msg an exception was raised with: a driver's
    refusal stays translatable inside the check's reason), anything else formatted as the check asked."""
    if isinstance(value, BaseException) and len(value.args) == 1 and isinstance(value.args[0], Msg):
        value = value.args[0]
    if isinstance(value, Msg) and not conversion and not spec:
        return value
    return _FORMATTER.format_field(_FORMATTER.convert_field(value, conversion), spec)


def _from_data(data: Mapping[str, Any]) -> Msg:
    """A Msg from its record form: the values are already formatted, so conversions and specs are not re-applied."""
    values = {k: _from_data(v) if isinstance(v, Mapping) else v for k, v in data["values"].items()}
    self = str.__new__(Msg, _render(data["template"], values, translate=False, preformatted=True))
    self.template, self.values = data["template"], values
    return self


def _render(template: str, values: Mapping[str, Any], *, translate: bool, preformatted: bool) -> str:
    if _CONTEXT in template:
        context, word = template.split(_CONTEXT, 1)
        return pgettext(context, word) if translate else word
    text = _(template) if translate and template else template
    parts = []
    for literal, name, spec, conversion in _FORMATTER.parse(text):
        parts.append(literal)
        if name is None:
            continue
        value = values.get(name, "{" + name + "}")  # a translation naming a value that does not exist shows it
        if isinstance(value, Msg):
            parts.append(value.localized() if translate else str(value))
        elif preformatted:
            parts.append(str(value))
        else:
            parts.append(_FORMATTER.format_field(_FORMATTER.convert_field(value, conversion), spec or ""))
    return "".join(parts)


def from_data(data: Mapping[str, Any] | None, english: str = "") -> Msg | None:
    """The Msg a record kept (None when it kept none: a text from before templates, or a device's words)."""
    if not data or "template" not in data:
        return None
    try:
        return _from_data(data)
    except (KeyError, TypeError, ValueError, IndexError):
        return None


def msg_data(text: Any) -> dict[str, Any] | None:
    """What a record keeps beside an English text: the template form of a Msg, nothing for plain text."""
    return text.data() if isinstance(text, Msg) else None


def localized(text: str, data: Mapping[str, Any] | None = None) -> str:
    """``text`` in the current language: from its template when one was kept, else the whole text as a msgid
    (a check title or a fixed phrase), else as written (a device's answer, a name)."""
    msg = from_data(data)
    if msg is not None:
        return msg.localized()
    if isinstance(text, Msg):
        return text.localized()
    return _(text) if text else text
