"""Documentation: the declared evidence that documentary clauses (cl. 50, 58, 59, 72, 79, 87, 93) judge.

A measuring instrument is certified on paper as well as on the bench: it must be in the state
registry of measuring instruments, metrologically verified, covered by conformity and
information-security certificates, and come with its operating, technical and metrological
documents in electronic form. None of that can be read off the device, so the profile (for the
model) and the rig (for the one instrument on the bench, e.g. its own verification date) declare
it and the `documentation` suite judges it against the day of the run.

Every part is optional in the schema on purpose: a part the Rules require but nobody declared is a
FAIL of its check naming the field to add, not a configuration error that stops the whole run.
What *is* declared must be well formed (dates in order, a real hash), because a typo there is
the declarer's mistake, not the device's.
"""

from __future__ import annotations

from datetime import date
from enum import StrEnum
from pathlib import Path

from pydantic import Field, PrivateAttr, ValidationInfo, field_validator, model_validator

from harness.config.modbus_map import Strict
from harness.config.safe_files import inside, not_regular, read_inside

BASE_DIR = "base_dir"  # validation-context key: the directory of the YAML file being loaded


class StateRegistryEntry(Strict):
    """The instrument type's entry in the state registry of measuring instruments of the RK (cl. 50, 87)."""

    number: str = Field(min_length=1, description="registration number in the state registry")
    type_name: str = Field(min_length=1, description="the instrument type as registered")
    entered: date = Field(description="date the type was entered in the registry")
    valid_until: date | None = Field(None, description="end of the type-approval certificate; omit if unlimited")

    @model_validator(mode="after")
    def _order(self) -> StateRegistryEntry:
        if self.valid_until is not None and self.valid_until < self.entered:
            raise ValueError("valid_until is before entered")
        return self


class Verification(Strict):
    """The last periodic metrological verification of the instrument (cl. 87)."""

    last: date = Field(description="date of the last verification")
    interval_months: int = Field(gt=0, le=240, description="verification interval of the type, in months")
    certificate: str = Field(min_length=1, description="verification certificate or mark number")
    by: str = Field(min_length=1, description="the verifying body")


class CertificateSubject(StrEnum):
    INSTRUMENT = "instrument"  # the measuring instrument itself (hardware and embedded firmware)
    SOFTWARE = "software"  # application software: AMR head-end, configuration and reading tools
    SYSTEM = "system"  # the hardware-software complex as a whole


class ConformityCertificate(Strict):
    """A certificate or declaration confirming conformity of the instrument, its software or the system."""

    subject: CertificateSubject
    number: str = Field(min_length=1)
    issuer: str = Field(min_length=1, description="the certification body")
    issued: date
    valid_until: date | None = Field(None, description="omit if the certificate does not expire")

    @model_validator(mode="after")
    def _order(self) -> ConformityCertificate:
        if self.valid_until is not None and self.valid_until < self.issued:
            raise ValueError("valid_until is before issued")
        return self


class SecurityCertificate(Strict):
    """The information-security conformity certificate (cl. 79); these always have an end date."""

    number: str = Field(min_length=1)
    issuer: str = Field(min_length=1)
    issued: date
    valid_until: date

    @model_validator(mode="after")
    def _order(self) -> SecurityCertificate:
        if self.valid_until < self.issued:
            raise ValueError("valid_until is before issued")
        return self


class DocumentKind(StrEnum):
    OPERATING_MANUAL = "operating_manual"
    TECHNICAL_DESCRIPTION = "technical_description"
    METROLOGICAL_DESCRIPTION = "metrological_description"
    SOFTWARE_DESCRIPTION = "software_description"
    OTHER = "other"


class DocumentRef(Strict):
    """A document kept in electronic form, by a path relative to the YAML file that declares it.

    The directory of that file is taken from the loader's validation context and kept privately,
    so ``path`` finds the document wherever the profile or rig lives (a checkout, an installed
    wheel, a lab's own folder) while ``file`` stays as written, for the evidence.

    The document must lie inside that folder (symlinks resolved) and be a regular file: where a
    path points is known when the file is loaded, so an escape (``../../etc/passwd``, an absolute
    path elsewhere, a link out) or a FIFO, device or folder is a configuration error with its line.
    Whether the file is there, non-empty, within ``MAX_DOCUMENT_BYTES`` and the hashed one is the
    evidence on the day, judged by the documentary check (which checks the confinement again when
    it reads, ``read``).
    """

    title: str = Field(min_length=1)
    kind: DocumentKind
    file: str = Field(min_length=1, description="path relative to the YAML file that declares the document")
    sha256: str | None = Field(None, pattern=r"^[0-9a-fA-F]{64}$",
                               description="SHA-256 of the file as issued; checked when given")
    _base_dir: Path | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _remember_base(self, info: ValidationInfo) -> DocumentRef:
        if info.context and info.context.get(BASE_DIR) is not None:
            self._base_dir = Path(info.context[BASE_DIR])
        return self

    @field_validator("file")
    @classmethod
    def _confined(cls, file: str, info: ValidationInfo) -> str:
        base = info.context.get(BASE_DIR) if info.context else None
        if base is not None:
            why = not_regular(inside(Path(base), file))  # ValueError when it lies outside
            if why is not None:
                raise ValueError(f"{file} is {why}; a document must be a regular file")
        return file

    @property
    def path(self) -> Path:
        """Where the file is: relative to the declaring YAML (or to the working directory without one)."""
        file = Path(self.file)
        return file if file.is_absolute() or self._base_dir is None else self._base_dir / file

    def read(self) -> bytes:
        """The document's bytes: OSError (with a reason for people) unless it is a regular file inside the
        declaring file's folder (the working directory without one) of at most ``MAX_DOCUMENT_BYTES``."""
        return read_inside(self._base_dir or Path.cwd(), self.file)


class Documentation(Strict):
    """The documentary evidence of one device model (profile) or one instrument on a bench (rig)."""

    state_registry: StateRegistryEntry | None = None
    verification: Verification | None = None
    conformity_certificates: list[ConformityCertificate] = Field(default_factory=list)
    security_certificate: SecurityCertificate | None = None
    documents: list[DocumentRef] = Field(default_factory=list)

    def overridden_by(self, other: Documentation | None) -> Documentation:
        """These declarations with every field ``other`` declares put in their place (field by field).

        The profile speaks for the model, the rig for the instrument on the bench: a rig that
        declares ``verification`` replaces the model's wholesale, and one that writes a field as
        ``null`` or ``[]`` withdraws it.
        """
        if other is None:
            return self
        return self.model_copy(update={name: getattr(other, name) for name in other.model_fields_set})
