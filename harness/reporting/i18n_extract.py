"""A Babel extraction method that also finds ``_("…")`` inside f-strings on Python 3.11.

Babel's own Python extractor reads tokens, and before Python 3.12 an f-string is one token, so a
label written as ``f"<h2>{_('Evidence')}</h2>"`` would never reach the catalog. This method walks the
syntax tree instead (f-strings included) and yields what Babel's extractor would: every call of a
gettext keyword with literal string arguments. babel.cfg names it; ``pybabel extract`` does the rest.

It also finds the texts a check writes (texts.py): the template of every ``Msg("…", …)`` and the title of
every ``@pytest.mark.check(id, title)`` (a title is a whole msgid, translated where it is shown).
"""

from __future__ import annotations

import ast
from collections.abc import Collection, Iterator, Mapping
from typing import IO, Any


def extract(fileobj: IO[bytes], keywords: Mapping[str, Any], comment_tags: Collection[str],
            options: Mapping[str, Any]) -> Iterator[tuple[int, str, tuple[str | None, ...] | str, list[str]]]:
    tree = ast.parse(fileobj.read().decode(options.get("encoding", "utf-8")))
    found = []
    for node in ast.walk(tree):
        check_text = _check_text(node)
        if check_text is not None:
            found.append((node.lineno, None, check_text, []))  # no keyword: Babel takes the one message
            continue
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Name) or node.func.id not in keywords:
            continue
        args = tuple(a.value if isinstance(a, ast.Constant) and isinstance(a.value, str) else None for a in node.args)
        if not args or all(a is None for a in args):
            continue
        found.append((node.lineno, node.func.id, args if len(args) > 1 else args[0], []))
    yield from sorted(found, key=lambda f: f[0])


def _literal(node: ast.expr | None) -> str | None:
    return node.value if isinstance(node, ast.Constant) and isinstance(node.value, str) else None


def _check_text(node: ast.AST) -> str | None:
    """The template of ``Msg("…")`` or the title of ``pytest.mark.check(id, "…")``, else None."""
    if not isinstance(node, ast.Call) or not node.args:
        return None
    if isinstance(node.func, ast.Name) and node.func.id == "Msg":
        return _literal(node.args[0])
    f = node.func
    if (isinstance(f, ast.Attribute) and f.attr == "check" and isinstance(f.value, ast.Attribute)
            and f.value.attr == "mark" and len(node.args) > 1):
        return _literal(node.args[1])
    return None
