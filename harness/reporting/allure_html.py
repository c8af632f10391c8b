"""Turn an allure-results directory into ONE self-contained, offline HTML file.

Why one file: a certificate's evidence is copied around and opened from disk. Allure's multi-file report
fetches its data with XHR, which browsers refuse under ``file://``; the single-file report inlines the app
and the data as ``data:`` URIs and opens anywhere, with no server.

Why Allure 3 (the npm package ``allure``): it needs only Node >= 20, no Java, and builds a small run in about a
second. Its default "awesome" report hard-codes a Google Tag Manager script (``analyticsEnable: true`` in
``@allurereport/plugin-awesome``; ``ALLURE_NO_ANALYTICS`` is honoured only by its "allure2" plugin), so the
output is sanitised here: every external ``<script src>``/``<link href>``/… and every tracker script is
removed, the result is checked again, and a Content-Security-Policy is added that lets the page load nothing
but its own inline and ``data:``/``blob:`` content. An evidence file must not phone home when an assessor
opens it, and must look the same on an air-gapped bench.

How the command line is found (first hit wins):

1. ``HARNESS_ALLURE``: path to the executable. When set it is authoritative: a wrong path means
   "unavailable", never a silent fallback to some other Allure.
2. The project-local prefix ``.allure/node_modules/.bin/allure``, in the current directory or in the source
   tree this package was imported from. ``.ci/install-allure.sh`` installs the pinned version there.
3. ``allure`` on ``PATH`` (e.g. ``npm install -g allure@<pinned>``).

Only Allure 3 is accepted: Allure 2 (npm ``allure-commandline``, Java) takes different options (its ``-c`` is
``--clean``), so it is rejected with a clear message rather than misused.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Sequence
from pathlib import Path

#: The exact npm version of ``allure`` this module was written and tested against; keep it in step with
#: ALLURE_NPM_VERSION in .ci/install-allure.sh.
ALLURE_VERSION = "3.18.0"
#: Project-local npm prefix (gitignored) that .ci/install-allure.sh installs into.
LOCAL_PREFIX = ".allure"
ENV_EXECUTABLE = "HARNESS_ALLURE"
INSTALL_COMMAND = f"npm install --prefix {LOCAL_PREFIX} allure@{ALLURE_VERSION}"

_CONFIG_NAME = "allurerc.json"  # one of the names @allurereport/core's findConfig() accepts
_VERSION_TIMEOUT_S = 30.0
_STDERR_TAIL = 4000

# Content-Security-Policy put first in <head>: the report may run its inline scripts and read data:/blob:
# URIs (that is how the single-file report carries its app, styles, fonts and attachments), nothing else.
# Verified in headless Chromium: the report renders and opens attachments with it, and a fetch() to any
# host is refused. Clicking a hyperlink (e.g. "Powered by Allure Report") is a navigation, which CSP
# does not govern: the user's choice, not a load.
CSP = (
    "default-src 'none'; script-src 'unsafe-inline' data: blob:; style-src 'unsafe-inline' data: blob:; "
    "img-src data: blob:; font-src data:; connect-src data: blob:; media-src data: blob:; "
    "frame-src data: blob:; worker-src data: blob:; object-src 'none'; form-action 'none'"
)

# Tokens only tracker snippets contain. '(' and '.' are not in the base64 alphabet, so these cannot turn up
# by accident inside the report's base64 data blobs.
_TRACKER = re.compile(
    r"gtag\s*\(|googletagmanager\.com|google-analytics\.com|dataLayer\.push|analytics\.js|gtm\.js", re.IGNORECASE
)
_EXTERNAL_URL = r"""\s*=\s*["']?\s*(?:https?:)?//"""
_EXTERNAL_ATTR = re.compile(r"""\b(?:src|href|srcset|data|poster|action)""" + _EXTERNAL_URL, re.IGNORECASE)
_SCRIPT = re.compile(r"<script\b([^>]*)>(.*?)</script\s*>[ \t]*\n?", re.IGNORECASE | re.DOTALL)
_NOSCRIPT = re.compile(r"<noscript\b[^>]*>.*?</noscript\s*>[ \t]*\n?", re.IGNORECASE | re.DOTALL)
_PAIRED = re.compile(r"<(iframe|object|audio|video)\b([^>]*)>.*?</\1\s*>[ \t]*\n?", re.IGNORECASE | re.DOTALL)
_VOID = re.compile(r"<(link|img|source|embed|track|input|image|base|meta)\b([^>]*)>[ \t]*\n?", re.IGNORECASE)
_LOADING_TAG = re.compile(
    r"<(script|link|img|iframe|source|embed|object|audio|video|track|input|image|base)\b([^>]*)>", re.IGNORECASE
)
_CSP_META = re.compile(r"""<meta\b[^>]*http-equiv\s*=\s*["']?content-security-policy""", re.IGNORECASE)
_GLOB_MAGIC = re.compile(r"[*?\[\]{}()!+@\\]")


class AllureUnavailable(Exception):
    """No usable Allure 3 command line; the message says how to install one."""

    def __init__(self, detail: str = "Allure 3 command line not found") -> None:
        super().__init__(
            f"{detail}. The HTML report needs the npm package allure@{ALLURE_VERSION} (Allure 3; Node.js >= 20, "
            f"no Java). Install it with `bash .ci/install-allure.sh` from the repository root, which runs "
            f"`{INSTALL_COMMAND}`; or `npm install -g allure@{ALLURE_VERSION}`; or set {ENV_EXECUTABLE} to the "
            f"path of an Allure 3 executable."
        )


class AllureFailed(RuntimeError):
    """The Allure command line ran but did not produce a usable report (message carries its stderr tail)."""


def _local_candidates() -> list[Path]:
    """Project-local prefixes to look in: the current directory, then the source tree of this package."""
    roots = [Path.cwd(), Path(__file__).resolve().parents[2]]
    names = ["allure.cmd", "allure"] if os.name == "nt" else ["allure"]
    seen: list[Path] = []
    for root in roots:
        for name in names:
            p = root / LOCAL_PREFIX / "node_modules" / ".bin" / name
            if p not in seen:
                seen.append(p)
    return seen


def _is_executable(p: Path) -> bool:
    return p.is_file() and os.access(p, os.X_OK)


def find_allure() -> list[str] | None:
    """The command (argv prefix) that runs Allure, or None. Cheap: looks at files only, runs nothing.

    ``HARNESS_ALLURE`` wins and is not second-guessed (a set but wrong path gives None), so a user or a test
    can pin, or rule out, a particular executable.
    """
    explicit = os.environ.get(ENV_EXECUTABLE)
    if explicit:
        p = Path(explicit).expanduser()
        if _is_executable(p):
            return [str(p)]
        found = None if os.sep in explicit else shutil.which(explicit)  # a bare command name is allowed too
        return [found] if found else None
    for p in _local_candidates():
        if _is_executable(p):
            return [str(p)]
    found = shutil.which("allure")
    return [found] if found else None


def _subprocess_env(home: Path) -> dict[str, str]:
    """The CLI's environment: no analytics, no update checks, no colour codes in stderr.

    HOME points into the scratch directory because the CLI writes its crash log (the only place the stack
    trace goes) to ~/.allure/logs/: there it can be read back into the error, and the user's home stays clean.
    """
    env = dict(os.environ)
    env.update(
        {
            "ALLURE_NO_ANALYTICS": "true",
            "DO_NOT_TRACK": "1",
            "NO_UPDATE_NOTIFIER": "1",
            "npm_config_update_notifier": "false",
            "NO_COLOR": "1",
            "FORCE_COLOR": "0",
            "HOME": str(home),
        }
    )
    return env


def _run(cmd: Sequence[str], *, cwd: Path, env: dict[str, str], timeout_s: float) -> subprocess.CompletedProcess[str]:
    """Run ``cmd`` in its own process group and kill the whole group on timeout.

    Why a group: ``allure`` is a Node script behind a shebang and may spawn helpers; killing only the direct
    child could leave orphans holding the scratch directory. The group is addressed by the child's PID (it is
    the group leader under start_new_session), never by name.
    """
    try:
        proc = subprocess.Popen(
            list(cmd),
            cwd=cwd,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            errors="replace",
            start_new_session=True,
        )
    except (FileNotFoundError, PermissionError) as exc:
        raise AllureUnavailable(f"cannot start {cmd[0]!r}: {exc}") from exc
    try:
        out, err = proc.communicate(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):  # already gone: nothing to kill
            os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        raise AllureFailed(
            f"{' '.join(cmd[:2])} … did not finish within {timeout_s:g} s and was killed (process group "
            f"{proc.pid}); stderr tail:\n{_tail(err)}"
        ) from None
    return subprocess.CompletedProcess(list(cmd), proc.returncode, out, err)


def _tail(text: str, limit: int = _STDERR_TAIL) -> str:
    text = (text or "").strip()
    return text if len(text) <= limit else "…" + text[-limit:]


def _installed_version(executable: str) -> str | None:
    """The version an npm install records next to its ``.bin/allure`` (node_modules/allure/package.json):
    read in microseconds, where asking the CLI costs a Node.js start (~0.9 s) on every report."""
    path = Path(executable)
    if path.parent.name != ".bin" or path.parent.parent.name != "node_modules":
        return None
    try:
        version = json.loads((path.parent.parent / "allure" / "package.json").read_text(encoding="utf-8"))["version"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return version if isinstance(version, str) and re.fullmatch(r"\d+\.\d+\.\d+.*", version) else None


@functools.lru_cache(maxsize=8)
def _major_version(cmd: tuple[str, ...]) -> tuple[int, str]:
    """``allure --version`` → (major, text). Cached: the answer does not change within a process."""
    known = _installed_version(cmd[0]) if len(cmd) == 1 else None
    if known is not None:
        return int(known.split(".")[0]), known
    with tempfile.TemporaryDirectory(prefix="allure-version-") as tmp:
        res = _run([*cmd, "--version"], cwd=Path(tmp), env=_subprocess_env(Path(tmp)), timeout_s=_VERSION_TIMEOUT_S)
    text = (res.stdout or "").strip() or (res.stderr or "").strip()
    if res.returncode == 127 or "node: No such file" in text or "env: 'node'" in text:
        raise AllureUnavailable(f"{cmd[0]} needs Node.js >= 20 on PATH ({_tail(text, 300)})")
    m = re.search(r"\b(\d+)\.(\d+)\.(\d+)\b", text)
    if res.returncode != 0 or not m:
        raise AllureFailed(f"`{' '.join(cmd)} --version` failed (exit {res.returncode}):\n{_tail(text)}")
    return int(m.group(1)), m.group(0)


def _results_arg(results_dir: Path, scratch: Path) -> str:
    """The results path as Allure 3 must be given it: it reads result paths as globs (node-glob).

    Brackets, braces, stars … cannot be reliably escaped there (backslash is a path separator under its
    windowsPathsNoEscape, braces expand before character classes), so a path that has any is staged into
    the scratch directory as hard links (a copy across file systems) under a plain name.
    """
    resolved = results_dir.resolve()
    if not _GLOB_MAGIC.search(str(resolved)):
        return str(resolved)
    staged = scratch / "allure-results"

    def link_or_copy(src: str, dst: str) -> None:
        try:
            os.link(src, dst)
        except OSError:
            shutil.copy2(src, dst)

    shutil.copytree(resolved, staged, copy_function=link_or_copy)
    return str(staged)


def strip_external_references(html: str) -> str:
    """Remove trackers and anything that would load from another host; add the CSP; verify.

    Removes: ``<script>`` with an external ``src``; inline scripts with tracker calls (gtag/GTM/GA);
    ``<noscript>`` blocks that reference a host (GTM's iframe fallback); ``<link>``, ``<img>``, ``<iframe>``
    and similar tags whose src/href points at ``http(s)://`` or ``//``. Plain hyperlinks (``<a href>``) and
    URL strings inside the report's own bundled JavaScript (namespace URIs such as ``http://www.w3.org/2000/svg``,
    the "Powered by" link, the Playwright trace viewer link) are left alone: they are not loads, and under the
    CSP added here nothing can be loaded from them. Raises AllureFailed if anything external is still loaded.
    """

    def script(m: re.Match[str]) -> str:
        attrs, body = m.group(1), m.group(2)
        return "" if _EXTERNAL_ATTR.search(attrs) or _TRACKER.search(body) else m.group(0)

    def external_tag(m: re.Match[str]) -> str:
        return "" if _EXTERNAL_ATTR.search(m.group(2)) else m.group(0)

    def noscript(m: re.Match[str]) -> str:
        block = m.group(0)
        return "" if _EXTERNAL_ATTR.search(block) or _TRACKER.search(block) else block

    html = _SCRIPT.sub(script, html)
    html = _NOSCRIPT.sub(noscript, html)
    html = _PAIRED.sub(external_tag, html)
    html = _VOID.sub(external_tag, html)
    html = _add_csp(html)
    leftovers = external_loads(html)
    if leftovers:
        raise AllureFailed("external references remain in the report after sanitising: " + "; ".join(leftovers))
    return html


def _add_csp(html: str) -> str:
    """Insert the CSP meta as the first thing in <head>, so it governs every script that follows."""
    if _CSP_META.search(html):
        return html
    meta = f'<meta http-equiv="Content-Security-Policy" content="{CSP}">'
    m = re.search(r"<meta\s+charset\s*=\s*[^>]*>", html, re.IGNORECASE) or re.search(r"<head\b[^>]*>", html, re.I)
    if not m:
        raise AllureFailed("generated report has no <head>; cannot add the Content-Security-Policy")
    return f"{html[: m.end()]}\n    {meta}{html[m.end() :]}"


def external_loads(html: str) -> list[str]:
    """Short descriptions of everything in ``html`` that would load from another host or track (empty = clean).

    Scans tags that load resources (script, link, img, iframe, …) for external src/href, and the whole text for
    tracker calls. Bundled JS rides in base64 ``data:`` URIs, so it cannot match either pattern by accident.
    """
    found: list[str] = []
    for m in _LOADING_TAG.finditer(html):
        attrs = m.group(2)
        a = _EXTERNAL_ATTR.search(attrs)
        if a:
            found.append(f"<{m.group(1)} {attrs[a.start() : a.start() + 120]}…>")
    found.extend(f"tracker {m.group(0)!r} at offset {m.start()}" for m in _TRACKER.finditer(html))
    return found


def _find_index(out_dir: Path) -> Path:
    """The single-file index.html: at the top when one report plugin is configured, else one level down."""
    top = out_dir / "index.html"
    if top.is_file():
        return top
    nested = sorted(out_dir.glob("*/index.html"))
    if len(nested) == 1:
        return nested[0]
    listing = sorted(str(p.relative_to(out_dir)) for p in out_dir.rglob("*"))[:30]
    raise AllureFailed(f"no single index.html in the Allure output {out_dir}: {listing}")


def _check_single_file(index: Path) -> None:
    """Refuse a multi-file report (it would not open from file://): the HTML may only reference data: URIs."""
    html = index.read_text(encoding="utf-8", errors="replace")
    local = [
        m.group(0)[:120]
        for m in _LOADING_TAG.finditer(html)
        if re.search(r"""\b(?:src|href)\s*=\s*["']?\s*(?!data:|blob:|#|["'\s>]|https?:|//)""", m.group(2), re.I)
    ]
    if local:
        raise AllureFailed(f"Allure wrote a multi-file report, not a single file (references {local[:3]})")


#: Languages Allure 3.18's own interface has (web-commons AVAILABLE_LOCALES, those a harness catalog may name);
#: any other (e.g. Kazakh) falls back to English there.
ALLURE_LANGUAGES = ("en", "ru", "uk", "pl", "es", "pt", "de", "fr", "it", "tr", "az", "ka", "hy", "zh")
#: The tree reads chapter → clause → check (labels set by the pytest plugin's _allure_labels).
GROUP_BY = ["parentSuite", "suite"]


def build_allure_html(results_dir: Path, dest: Path, *, title: str = "tek-harness", timeout_s: float = 120,
                      lang: str = "en") -> Path:
    """Build the single-file Allure 3 report of ``results_dir`` at ``dest`` and return ``dest``.

    The CLI runs in a scratch directory holding its config (so no allurerc of the caller's project is picked
    up), bounded by ``timeout_s``; the file is sanitised (see strip_external_references) and written
    atomically, so ``dest`` is either the previous file or the complete new one.

    Raises ValueError for a missing or empty results directory, AllureUnavailable when no Allure 3 CLI is
    found, AllureFailed (a RuntimeError) when the CLI fails, times out or produces something unusable.
    """
    results_dir = Path(results_dir)
    dest = Path(dest)
    if not results_dir.is_dir():
        raise ValueError(f"Allure results directory {results_dir} does not exist or is not a directory")
    if not any(results_dir.glob("*-result.json")):
        raise ValueError(f"Allure results directory {results_dir} holds no *-result.json: nothing to report")
    cmd = find_allure()
    if cmd is None:
        where = os.environ.get(ENV_EXECUTABLE)
        raise AllureUnavailable(
            f"{ENV_EXECUTABLE}={where!r} is not an executable file" if where else "Allure 3 command line not found"
        )
    major, version = _major_version(tuple(cmd))
    if major != 3:
        raise AllureUnavailable(f"{cmd[0]} is Allure {version}, this harness needs Allure 3")

    with tempfile.TemporaryDirectory(prefix="allure-html-") as tmp_s:
        tmp = Path(tmp_s)
        options = {"singleFile": True, "reportLanguage": lang if lang in ALLURE_LANGUAGES else "en",
                   "groupBy": GROUP_BY}
        config = {"name": title, "plugins": {"awesome": {"options": options}}}
        (tmp / _CONFIG_NAME).write_text(json.dumps(config), encoding="utf-8")
        out_dir = tmp / "report"
        source = results_dir
        if lang != "en":  # chapter/clause labels and verdict messages in the run's language; the results stay
            from harness.reporting.allure_language import localized_results

            source = localized_results(results_dir, tmp / f"allure-results-{lang}", lang)
        argv = [*cmd, "generate", _results_arg(source, tmp), "--config", _CONFIG_NAME, "--output", str(out_dir)]
        res = _run(argv, cwd=tmp, env=_subprocess_env(tmp), timeout_s=timeout_s)
        if res.returncode != 0:
            logs = "".join(p.read_text(errors="replace") for p in sorted((tmp / ".allure" / "logs").glob("*.log")))
            output = "\n".join(part for part in (res.stderr, res.stdout, logs) if part and part.strip())
            raise AllureFailed(f"allure generate failed (exit {res.returncode}) for {results_dir}:\n{_tail(output)}")
        index = _find_index(out_dir)
        _check_single_file(index)
        html = strip_external_references(index.read_text(encoding="utf-8"))

    dest.parent.mkdir(parents=True, exist_ok=True)
    fd, part = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=".part", dir=dest.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(html)
        os.chmod(part, 0o644)
        os.replace(part, dest)
    except BaseException:
        Path(part).unlink(missing_ok=True)
        raise
    return dest
