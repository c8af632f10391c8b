"""Documentation paths (issue 13, item 4): a declared document is a regular file inside the folder of the
YAML that declares it, read with a size limit. Where a path points is known at load time, so an escape
(``..``, an absolute path, a symlink out) or a path at something that is no regular file (a FIFO, a
device, a folder) is a configuration error with file:line; what is found when the check reads the file
(missing, empty, too large, swapped for a FIFO or a link out since loading) is a FAIL naming why."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from harness.config import ConfigError, load_profile, load_rig
from harness.config.documentation import DocumentRef
from harness.conformance.documentation.evidence import document_intact
from harness.reporting.records import Check
from harness.resources import builtin_profile
from tests.conftest import DATA

EM4 = builtin_profile("tek-sim-em4.yaml")
MANUAL = "file: docs/tek-sim-em4-operating-manual.md"


def _profile_in(folder: Path, manual: str) -> tuple[Path, str]:
    """The built-in meter profile in ``folder`` (its documents copied along) with the manual at ``manual``."""
    docs = folder / "docs"
    docs.mkdir(parents=True, exist_ok=True)
    for doc in (EM4.parent / "docs").glob("tek-sim-em4-*.md"):
        (docs / doc.name).write_bytes(doc.read_bytes())
    text = EM4.read_text()
    assert MANUAL in text
    manual_sha = "9d412ef98242279f53a353fa0c8d892c222ae393430a4390eef162d55ce6ebd5"
    text = text.replace(MANUAL, f"file: {manual}").replace(manual_sha, "null")
    path = folder / "p.yaml"
    path.write_text(text)
    return path, text


def _refused_at_load(path: Path, text: str, manual: str, reason: str) -> None:
    with pytest.raises(ConfigError) as err:
        load_profile(path)
    problem = err.value.problems[0]
    assert problem.field == "documentation.documents.0.file", str(err.value)
    assert problem.line == text.splitlines().index(f"      file: {manual}") + 1
    assert reason in problem.message, problem.message


@pytest.mark.parametrize("manual", ["../../../../../../../../etc/passwd", "/etc/passwd", "docs/../../outside.md",
                                    "/dev/zero"])
def test_a_document_outside_the_profiles_folder_is_refused_at_load(tmp_path, manual):
    """Was: /etc/passwd passed KZ-72-01 as the operating manual; /dev/zero was read until memory ran out."""
    (tmp_path / "outside.md").write_text("a manual lying outside the profile's folder\n")
    path, text = _profile_in(tmp_path / "vendor", manual)
    _refused_at_load(path, text, manual, "inside the folder")


def test_a_symlink_out_of_the_folder_is_refused_at_load(tmp_path):
    path, text = _profile_in(tmp_path / "vendor", "docs/manual.md")
    (tmp_path / "vendor" / "docs" / "manual.md").symlink_to("/etc/passwd")
    _refused_at_load(path, text, "docs/manual.md", "inside the folder")


def test_a_symlink_within_the_folder_is_followed(tmp_path):
    path, _ = _profile_in(tmp_path / "vendor", "docs/manual.md")
    (tmp_path / "vendor" / "docs" / "manual.md").symlink_to("tek-sim-em4-operating-manual.md")
    doc = load_profile(path).documentation.documents[0]
    assert doc.read() == (EM4.parent / "docs" / "tek-sim-em4-operating-manual.md").read_bytes()


@pytest.mark.parametrize("kind", ["fifo", "folder"])
def test_a_document_that_is_no_regular_file_is_refused_at_load(tmp_path, kind):
    path, text = _profile_in(tmp_path / "vendor", "docs/manual.md")
    target = tmp_path / "vendor" / "docs" / "manual.md"
    os.mkfifo(target) if kind == "fifo" else target.mkdir()
    _refused_at_load(path, text, "docs/manual.md", "not a regular file")


def test_a_rigs_document_must_lie_in_the_rigs_folder(tmp_path):
    text = (DATA / "documentation" / "rig-lapsed.yaml").read_text()
    text = text.replace("../../../device_profiles/tek-sim-em4.yaml", str(EM4))
    text = text.replace("file: technical-description-altered.md", "file: ../../../../../etc/hostname")
    path = tmp_path / "rig.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_rig(path)
    problem = err.value.problems[0]
    assert problem.field == "duts.meter.documentation.documents.0.file"
    assert problem.line == text.splitlines().index("          file: ../../../../../etc/hostname") + 1


# ---- what the check finds when it reads -------------------------------------------------------------
def _judge(doc: DocumentRef) -> Check:
    check = Check("KZ-72-01", "operating manual", "documentation", ["72"], "meter")
    result: list[bool] = []
    reader = threading.Thread(target=lambda: result.append(document_intact(check, doc)), daemon=True)
    reader.start()
    reader.join(10)
    assert not reader.is_alive(), "reading the document hung"
    assert result == [False]
    return check


@pytest.mark.parametrize("swap", ["fifo", "link_out", "too_large", "empty"])
def test_a_document_changed_after_loading_fails_its_check_with_the_reason(tmp_path, swap, monkeypatch):
    from harness.config import safe_files

    path, _ = _profile_in(tmp_path / "vendor", "docs/manual.md")
    target = tmp_path / "vendor" / "docs" / "manual.md"
    target.write_text("the manual\n")
    doc = load_profile(path).documentation.documents[0]
    target.unlink()
    if swap == "fifo":
        os.mkfifo(target)  # opened for reading, a FIFO without a writer would block for ever
    elif swap == "link_out":
        target.symlink_to("/etc/passwd")
    elif swap == "too_large":
        target.write_bytes(b"x" * 2000)
        monkeypatch.setattr(safe_files, "MAX_DOCUMENT_BYTES", 1000)
    else:
        target.write_bytes(b"")
    measured = _judge(doc).measurements[0]
    reason = {"fifo": "not a regular file", "link_out": "outside", "too_large": "larger than",
              "empty": "0 bytes"}[swap]
    assert not measured.passed and reason in str(measured.measured), measured
