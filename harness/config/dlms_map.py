"""A profile's ``dlms:`` section: how a DLMS/COSEM (IEC 62056) meter is addressed, which associations it
offers and with what security and rights, and where each canonical quantity lives (OBIS, interface class,
attribute).

A DLMS meter describes its own registers (a class 3 Register reports its scaler_unit), so the profile says
what the harness *expects* them to report; the driver scales by what the device reports and refuses a
register whose scaler_unit disagrees with the profile (a device whose self-description contradicts its
documentation is not read on trust). What differs between meters — addresses, client SAPs, OBIS codes,
the sign convention of the clock's deviation — is here, never in the driver or the suites.
"""

from __future__ import annotations

from enum import StrEnum

from pydantic import Field, field_validator, model_validator

from harness.config.dlms_profiles import DlmsJournal, DlmsLoadProfile, Obis, check_obis
from harness.config.modbus_types import Strict
from harness.config.point_names import PointName
from harness.quantities import UNIT_FACTORS

# DLMS unit enumeration (Blue Book 4.3.2, class 3 scaler_unit) of the units a profile may expect.
DLMS_UNITS = {"W": 27, "var": 29, "Wh": 30, "varh": 32, "1": 255}
VALUE_TYPES = ("integer", "long", "double_long", "long64", "unsigned", "long_unsigned", "double_long_unsigned",
               "long64_unsigned", "enum", "octet_string", "visible_string")
CLASS_DATA, CLASS_REGISTER, CLASS_CLOCK = 1, 3, 8


class Authentication(StrEnum):
    NONE = "none"  # the public client (no security)
    LLS = "lls"  # low-level security: a password in the AARQ
    HLS_GMAC = "hls_gmac"  # high-level security, mechanism 5: challenges answered with GMAC tags (security suite 0)


class SecurityPolicy(StrEnum):
    """How an association's xDLMS APDUs are protected (security suite 0, AES-GCM-128)."""

    NONE = "none"  # in the clear
    AUTHENTICATED = "authenticated"
    ENCRYPTED = "encrypted"
    AUTHENTICATED_ENCRYPTED = "authenticated_encrypted"


def obis_bytes(text: str) -> bytes:
    """``1.0.1.8.0.255`` -> its six bytes."""
    return bytes(int(p) for p in text.split("."))


class Association(Strict):
    """One association the meter offers: a client SAP, its authentication and what it may do."""

    client_sap: int = Field(ge=1, le=0x7F, description="the client's wrapper port / HDLC address (public: 16)")
    authentication: Authentication = Authentication.NONE
    credential: str | None = Field(None, description="the rig's credentials entry holding the LLS password, or "
                                   "the HLS keys (`encryption_key`, `authentication_key`, hex)")
    security: SecurityPolicy = Field(SecurityPolicy.NONE, description="protection of the association's APDUs "
                                     "(security suite 0); anything but none needs the keys in `credential`")
    may_set: list[str] = Field(default_factory=list,
                               description="what this association may SET: `clock`, `settings` (nothing else)")
    invocation_counter: Obis | None = Field(
        None, description="a ciphered association's invocation counter object (class 1 Data, OBIS 0.0.43.1.e.255): "
        "the last counter the meter accepted from this client, read before the AARQ so that a new run continues "
        "above it (Green Book 9.2.7.4); without it the driver counts from 1 in each run")
    invocation_counter_read_with: str | None = Field(
        None, description="the association (unciphered) that reads `invocation_counter` (default: the public client)")

    @model_validator(mode="after")
    def _check(self) -> Association:
        if self.authentication == Authentication.LLS and not self.credential:
            raise ValueError("an LLS association names its `credential` (the rig's credentials entry)")
        if (self.authentication == Authentication.HLS_GMAC or self.security != SecurityPolicy.NONE) \
                and not self.credential:
            raise ValueError("an HLS or ciphered association names its `credential` (the rig's entry with its keys)")
        if self.authentication == Authentication.HLS_GMAC and self.security == SecurityPolicy.NONE:
            raise ValueError("an HLS-GMAC association protects its APDUs: give its `security` policy")
        if self.authentication == Authentication.NONE and self.credential:
            raise ValueError("an association without authentication takes no `credential`")
        unknown = set(self.may_set) - {"clock", "settings"}
        if unknown:
            raise ValueError(f"may_set takes clock and settings, not {', '.join(sorted(unknown))}")
        if self.invocation_counter is not None:
            if self.security == SecurityPolicy.NONE:
                raise ValueError("invocation_counter: only a ciphered association counts its protected APDUs")
        elif self.invocation_counter_read_with is not None:
            raise ValueError("invocation_counter_read_with names who reads `invocation_counter`: declare that too")
        return self


class CosemObject(Strict):
    """Where a quantity lives: OBIS logical name, interface class and attribute; what it is expected to hold."""

    obis: str
    class_id: int = Field(CLASS_REGISTER, description="1 Data, 3 Register")
    attribute: int = Field(2, ge=1, le=127)
    type: str = Field("double_long_unsigned", description="the A-XDR type of the value")
    unit: str | None = Field(None, description="the unit the register's scaler_unit should name (Wh, varh …)")
    scaler: int | None = Field(None, ge=-9, le=9, description="the scaler it should report (10^scaler)")
    writable: bool = False
    test_value: float | None = None

    @field_validator("obis")
    @classmethod
    def _obis(cls, v: str) -> str:
        return check_obis(v)

    @field_validator("type")
    @classmethod
    def _type(cls, v: str) -> str:
        if v not in VALUE_TYPES:
            raise ValueError(f"{v!r} is not an A-XDR type; one of {', '.join(VALUE_TYPES)}")
        return v

    @model_validator(mode="after")
    def _check(self) -> CosemObject:
        if self.class_id not in (CLASS_DATA, CLASS_REGISTER):
            raise ValueError("class_id: 1 (Data) or 3 (Register) for a quantity; the clock is `dlms.clock`")
        if self.class_id == CLASS_REGISTER and (self.unit is None or self.scaler is None):
            raise ValueError("a class 3 Register declares the `unit` and `scaler` its scaler_unit should report")
        if self.unit is not None and (self.unit not in DLMS_UNITS or self.unit not in UNIT_FACTORS):
            raise ValueError(f"unit {self.unit!r}: one of {', '.join(DLMS_UNITS)}")
        return self

    @property
    def logical_name(self) -> bytes:
        return obis_bytes(self.obis)

    @property
    def is_string(self) -> bool:
        return self.type in ("octet_string", "visible_string")


class DlmsClock(Strict):
    """The class 8 Clock object; ``deviation`` says how the meter signs the date-time's deviation field."""

    obis: str = "0.0.1.0.0.255"
    deviation: str = Field("local_to_utc", description="local_to_utc (Blue Book: minutes to add to local time "
                           "to get UTC, +05:00 is -300) or utc_to_local (as some companion profiles do)")

    @field_validator("obis")
    @classmethod
    def _obis(cls, v: str) -> str:
        return CosemObject._obis(v)

    @field_validator("deviation")
    @classmethod
    def _deviation(cls, v: str) -> str:
        if v not in ("local_to_utc", "utc_to_local"):
            raise ValueError("deviation: local_to_utc or utc_to_local")
        return v

    @property
    def logical_name(self) -> bytes:
        return obis_bytes(self.obis)


class DlmsHdlc(Strict):
    """The meter's HDLC address on a serial line (IEC 62056-46): the logical device is
    ``server_logical_address``; the physical address, when the meter has one, makes the server address two
    octets (both below 128) or four."""

    physical_address: int | None = Field(None, ge=0, le=0x3FFF, description="the lower HDLC address (None: the "
                                         "server address is the logical device alone, one octet)")


class DlmsMap(Strict):
    """The ``dlms:`` section of a profile."""

    server_logical_address: int = Field(1, ge=1, le=0x3FFF, description="the logical device (1: management)")
    max_pdu_size: int = Field(1024, ge=64, le=65535, description="the meter's max receive PDU; the driver proposes "
                              "it as its own, so longer answers come in blocks")
    associations: dict[str, Association] = Field(min_length=1)
    system_title: str | None = Field(None, pattern=r"^[0-9A-Fa-f]{16}$",
                                     description="the meter's 8-byte system title (hex): ciphered associations need it")
    reads_with: str = Field(description="the association the harness reads with")
    writes_with: str | None = Field(None, description="the association that sets the clock and settings")
    clock: DlmsClock | None = None
    hdlc: DlmsHdlc = Field(default_factory=DlmsHdlc)
    points: dict[PointName, CosemObject] = Field(default_factory=dict)
    settings: dict[str, CosemObject] = Field(default_factory=dict)
    journal: DlmsJournal | None = Field(None, description="the event logs (class 7): the journal of cl. 97")
    load_profile: DlmsLoadProfile | None = Field(None, description="the load profile (class 7): interval data, cl. 31")

    @model_validator(mode="after")
    def _check(self) -> DlmsMap:
        for role in (self.reads_with, self.writes_with):
            if role is not None and role not in self.associations:
                raise ValueError(f"association {role!r} is not declared under `associations`")
        if self.system_title is None and any(a.security != SecurityPolicy.NONE for a in self.associations.values()):
            raise ValueError("a ciphered association needs the meter's `system_title`")
        saps = [a.client_sap for a in self.associations.values()]
        if len(set(saps)) != len(saps):
            raise ValueError("two associations share a client_sap")
        seen: dict[tuple[str, int], str] = {}
        for name, obj in {**self.points, **self.settings}.items():
            key = (obj.obis, obj.attribute)
            if key in seen:
                raise ValueError(f"{name} and {seen[key]} are both {obj.obis} attribute {obj.attribute}")
            seen[key] = name
        if (self.journal is not None or self.load_profile is not None) and self.clock is None:
            raise ValueError("event logs and a load profile capture the clock: declare `clock`")
        for name, obj in self.settings.items():
            if obj.writable and obj.test_value is None:
                raise ValueError(f"setting {name} is writable: give its test_value")
        for name in self.associations:
            self._check_counter_reader(name, seen)
        return self

    def _check_counter_reader(self, name: str, objects: dict[tuple[str, int], str]) -> None:
        """The association reading ``name``'s invocation counter exists and is not ciphered itself (it is read
        before any ciphered AARQ); the counter object is no quantity's."""
        assoc = self.associations[name]
        if assoc.invocation_counter is None:
            return
        reader = self.counter_reader(name)
        if reader is None:
            raise ValueError(f"association {name!r}: its invocation_counter is read by the public client, which is not "
                             "declared: declare one or give `invocation_counter_read_with`")
        if reader not in self.associations:
            raise ValueError(f"association {name!r}: invocation_counter_read_with {reader!r} is not declared under "
                             "`associations`")
        if self.associations[reader].security != SecurityPolicy.NONE:
            raise ValueError(f"association {name!r}: {reader!r} is ciphered itself; the invocation counter is read "
                             "before a ciphered association, by one that is not")
        if (assoc.invocation_counter, 2) in objects:
            raise ValueError(f"association {name!r}: invocation_counter {assoc.invocation_counter} is also "
                             f"{objects[(assoc.invocation_counter, 2)]}")

    def counter_reader(self, role: str) -> str | None:
        """The association that reads ``role``'s invocation counter object (None: no public client to do it)."""
        return self.associations[role].invocation_counter_read_with or self.public()

    def object_of(self, quantity: str) -> CosemObject | None:
        return self.points.get(quantity) or self.settings.get(quantity)

    def public(self) -> str | None:
        """The association without authentication, if the meter offers one (the public client)."""
        return next((n for n, a in self.associations.items() if a.authentication == Authentication.NONE), None)
