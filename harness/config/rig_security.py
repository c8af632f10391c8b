"""What a bench knows about a secured DUT: the lab's accounts, the vendor's firmware images, the client certificate.

These are facts of one bench, not of the device model: the profile declares which roles exist
and what they may do; the rig says which account the lab has for each role, where the images the
update suite may install are, and (for a real device whose lab already trusts one) which client
certificate to present. Paths are relative to the rig file; firmware paths may say ``{state_dir}``,
the launched simulator's state directory, where a simulator keeps its vendor images.
"""

from __future__ import annotations

import ipaddress
import string
from pathlib import Path
from typing import Annotated

from pydantic import AfterValidator, Field, PrivateAttr, ValidationInfo, model_validator

from harness.config.documentation import BASE_DIR
from harness.config.modbus_types import Strict
from harness.config.robustness import CidrList
from harness.config.safe_files import not_regular

FIRMWARE_PLACEHOLDERS = ("state_dir",)

# The broadest network lab_allow_list may name: a bench subnet, not a site or the Internet. Fuzzing and
# storms are attacks, so a typo (0.0.0.0/0) or a lazy wildcard must not aim them at everything.
MIN_PREFIX = {(4, True): 16, (4, False): 24, (6, True): 48, (6, False): 64}  # (version, private) -> prefix
_IPV4_IN_IPV6 = (ipaddress.IPv6Network("::ffff:0:0/96"), ipaddress.IPv6Network("64:ff9b::/96"))


def _as_ipv4(net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """An IPv6 network that only spells IPv4 addresses (mapped ::ffff:a.b.c.d, NAT64 64:ff9b::a.b.c.d), as IPv4."""
    for space in _IPV4_IN_IPV6:
        if isinstance(net, ipaddress.IPv6Network) and net.subnet_of(space):
            return ipaddress.IPv4Network((int(net.network_address) & 0xFFFFFFFF, net.prefixlen - 96))
    return net


def refuse_broad_networks(networks: list[str]) -> list[str]:
    """Refuse an allow-list entry that is no lab DUT: unspecified, multicast or reserved addresses, or a
    network broader than ``MIN_PREFIX`` allows (a /16 of private IPv4, a /24 of public; /48 and /64 in IPv6)."""
    for text in networks:
        net = _as_ipv4(ipaddress.ip_network(text))
        first = net.network_address
        if first.is_unspecified or first.is_multicast or first.is_reserved:
            kind = "unspecified" if first.is_unspecified else "multicast" if first.is_multicast else "reserved"
            raise ValueError(f"{text}: {kind} addresses are no DUT; list the lab DUTs' own addresses")
        private = net.is_private
        least = MIN_PREFIX[(net.version, private)]
        if net.prefixlen < least:
            raise ValueError(f"{text} is broader than a /{least} of {'private' if private else 'public'} IPv"
                             f"{net.version} addresses: fuzzing and storms may go only to the lab's own DUTs — list "
                             "their addresses or their bench subnet")
    return networks


LabAllowList = Annotated[CidrList, AfterValidator(refuse_broad_networks)]


def _regular_or_absent(path: Path) -> None:
    """A key, certificate or image the rig names may be missing until the run (made there), but never a FIFO,
    device or folder: reading one would hang or never end (``/dev/zero`` as a certificate)."""
    why = not_regular(path)
    if why is not None:
        raise ValueError(f"{path} is {why}; give a regular file")


def _from_rig_dir(value: str, info: ValidationInfo) -> str:
    """Made absolute against the rig file's directory at load time, so whoever uses it needs no context."""
    base = info.context.get(BASE_DIR) if info.context else None
    path = value if base is None or Path(value).is_absolute() else str(Path(base) / value)
    _regular_or_absent(Path(path))
    return path


RigPath = Annotated[str, AfterValidator(_from_rig_dir)]


class RigRelative(Strict):
    """Remembers the rig file's directory (from the loader's context) to resolve relative paths."""

    _base_dir: Path | None = PrivateAttr(default=None)

    @model_validator(mode="after")
    def _remember_base(self, info: ValidationInfo) -> RigRelative:
        if info.context and info.context.get(BASE_DIR) is not None:
            self._base_dir = Path(info.context[BASE_DIR])
        return self

    def resolve(self, written: str, **placeholders: str) -> Path:
        """A path as written in the rig, placeholders filled, relative to the rig file."""
        path = Path(written.format(**placeholders)) if placeholders else Path(written)
        return path if path.is_absolute() or self._base_dir is None else self._base_dir / path


class Credential(Strict):
    """One account of the lab on the DUT: a user name and password, a user certificate and its key, or a
    password alone where the device has no user names (a Modbus meter's unlock password: ``{password}``)."""

    user: str | None = Field(None, min_length=1)
    password: str | None = None
    certificate: RigPath | None = Field(None, description="user certificate (DER or PEM), relative to the rig file")
    key: RigPath | None = Field(None, description="its private key (PEM), relative to the rig file")
    encryption_key: str | None = Field(None, pattern=r"^[0-9A-Fa-f]{32}$",
                                       description="a DLMS association's global unicast encryption key (16 bytes hex)")
    authentication_key: str | None = Field(None, pattern=r"^[0-9A-Fa-f]{32}$",
                                           description="a DLMS association's authentication key (16 bytes hex)")

    @model_validator(mode="after")
    def _one_form(self) -> Credential:
        if (self.encryption_key is None) != (self.authentication_key is None):
            raise ValueError("DLMS keys come in pairs: give both `encryption_key` and `authentication_key`")
        if self.encryption_key is not None:
            if self.user is not None or self.certificate is not None or self.key is not None:
                raise ValueError("DLMS keys stand alone (with at most an LLS `password`)")
            return self
        by_password = self.user is not None or self.password is not None
        by_certificate = self.certificate is not None or self.key is not None
        if by_password == by_certificate:
            raise ValueError("give either {user, password}, {password} or {certificate, key}")
        if by_password and self.password is None:
            raise ValueError("a user account needs both `user` and `password`")
        if by_certificate and (self.certificate is None or self.key is None):
            raise ValueError("a certificate account needs both `certificate` and `key`")
        return self


class FirmwareImages(RigRelative):
    """Vendor-supplied images the update suite may install (cl. 70)."""

    current: str = Field(description="the running version's image: re-install and rollback target")
    next: str = Field(description="a newer valid image")
    below_min: str | None = Field(None, description="an image older than the profile's update.min_version")
    unhealthy: str | None = Field(None, description="validly signed, fails its health check after activation")

    @model_validator(mode="after")
    def _placeholders(self) -> FirmwareImages:
        for name in ("current", "next", "below_min", "unhealthy"):
            value = getattr(self, name)
            fields = [field for _, field, _, _ in string.Formatter().parse(value or "") if field is not None]
            for field in fields:
                if field not in FIRMWARE_PLACEHOLDERS:
                    raise ValueError(f"{name}: unknown placeholder {{{field}}}; known: "
                                     f"{', '.join('{' + p + '}' for p in FIRMWARE_PLACEHOLDERS)}")
            if value is not None and not fields:
                _regular_or_absent(self.resolve(value))
        return self

    def path(self, which: str, state_dir: Path | str = "") -> Path | None:
        """The image ``which`` (current, next, below_min, unhealthy) as a file path, or None if not given."""
        written = getattr(self, which)
        return None if written is None else self.resolve(written, state_dir=str(state_dir))
