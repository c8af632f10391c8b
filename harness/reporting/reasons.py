"""A check's reason, shortened for a summary line (the certificate's first screen, the console).

A check's reason lists its failed measurements joined by "; " (``Check.require`` and the plugin write
them so); a summary shows the first and says how many more there are, the evidence shows them all.
"""

from __future__ import annotations

import re

from harness.reporting.i18n import _


def one_line(reason: str, check_id: str = "") -> str:
    """The first finding of a reason ("a; b; c" → "a (+2 more)"), without the check id it starts with.

    A check's reason lists its failed measurements joined by "; "; the first screen shows the first,
    the evidence further down shows them all.
    """
    text = reason.strip()
    if check_id and text.startswith(f"{check_id}:"):
        text = text[len(check_id) + 1:].strip()
    more = re.search(r" \(\+(\d+) [^()]*\)$", text)  # Check.require() already cut the list (in any language)
    if more:
        text = text[:more.start()]
    parts = text.split("; ")
    hidden = len(parts) - 1 + (int(more.group(1)) if more else 0)
    if not hidden:
        return parts[0]
    return _("{first} (+{n} more)").format(first=parts[0], n=hidden)
