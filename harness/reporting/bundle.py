"""`harness bundle OUTDIR`: the one archive a lab hands to the ICI operator.

It holds the whole sealed run — certificate, signature, manifest, evidence, the profiles and rig
as used — under one top-level folder, so the operator unpacks it and runs ``harness verify`` on
that folder. A run whose seal is broken is not bundled: the archive would carry the breakage.
The archive is reproducible (sorted entries, fixed owners and times from the certificate).
"""

from __future__ import annotations

import gzip
import tarfile
from pathlib import Path

from harness.reporting.seal import MANIFEST, SIGNATURE, Verification, evidence_files, verify


class BundleRefused(Exception):
    """The run is not sealed or its seal does not hold."""

    def __init__(self, verification: Verification) -> None:
        super().__init__("the run's seal does not hold:\n  " + "\n  ".join(verification.problems))
        self.verification = verification


def bundle(out: Path, dest: Path | None = None) -> Path:
    check = verify(out)
    if not check.ok:
        raise BundleRefused(check)
    out = out.resolve()
    dest = dest or out.with_name(out.name + ".tar.gz")
    mtime = int((out / SIGNATURE).stat().st_mtime)
    files = [*evidence_files(out), Path(MANIFEST), Path(SIGNATURE)]
    tmp = dest.with_name(dest.name + ".tmp")
    with open(tmp, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=mtime, filename="") as gz, \
            tarfile.open(fileobj=gz, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for rel in sorted(files, key=lambda p: p.as_posix()):
            info = tar.gettarinfo(str(out / rel), arcname=f"{out.name}/{rel.as_posix()}")
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mtime = mtime
            info.mode = 0o644
            with (out / rel).open("rb") as f:
                tar.addfile(info, f)
    tmp.replace(dest)
    return dest
