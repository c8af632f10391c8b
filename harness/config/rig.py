"""Rig: one bench — which DUTs, on which transports, launched how, with which injectors.

Everything about *this bench* (addresses, the reference load the lab applies, how long the lab
is willing to wait, whether destructive tests are allowed) lives here; everything about *the
device model* lives in its profile.
"""

from __future__ import annotations

import string
from typing import Literal

from pydantic import Field, field_validator, model_validator

from harness.config.availability import AvailabilitySoak
from harness.config.documentation import Documentation
from harness.config.modbus_map import Strict
from harness.config.rig_security import Credential, FirmwareImages, LabAllowList, RigPath
from harness.config.robustness import Robustness
from harness.redaction import appears_in

Port = int | Literal["auto"]
MAX_WALL_WAIT_S = 7 * 86400.0  # a week of real waiting in one check: longer is a field trial, not a bench run
MAX_DEVICE_WINDOW_S = 31 * 86400.0  # a month of device time: a simulator fast-forwards it, a real DUT waits


class TcpTransport(Strict):
    host: str = "127.0.0.1"
    port: Port = Field(502, description="TCP port, or auto: a free loopback port chosen at launch")

    @model_validator(mode="after")
    def _port(self) -> TcpTransport:
        if isinstance(self.port, int) and not 1 <= self.port <= 65535:
            raise ValueError("port must be 1..65535 or auto")
        return self


class SerialTransport(Strict):
    """A serial line (Modbus RTU; DLMS/COSEM over HDLC). ``port: pty`` makes a pseudo-terminal pair (socat) for a
    simulator."""

    port: str = Field(description="device path, e.g. /dev/ttyUSB0, or pty for a simulated line")
    baudrate: int = 9600
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1
    bytesize: Literal[7, 8] = 8


class Transport(Strict):
    tcp: TcpTransport | None = None
    serial: SerialTransport | None = None

    @model_validator(mode="after")
    def _one(self) -> Transport:
        if (self.tcp is None) == (self.serial is None):
            raise ValueError("declare exactly one of tcp or serial")
        return self


class Launch(Strict):
    """How the harness starts a simulated DUT: any command line, with placeholders.

    Placeholders: {python} {profile} {state_dir} {host} {port} {serial_port} {baudrate}
    {control_port} {control} {defects}, for an AMR server with a `field` {field_file} (its provisioning file),
    for a DUT with a `reserve_transport` {reserve_serial_port} {reserve_host} {reserve_port}, and for a DUT with
    `upstream` channels {upstream_main} {upstream_reserve}
    (mqtt://host:port the DUT must push to — the link-fault proxy's address when the link is proxied),
    and {client_cert}: the harness's trusted OPC UA client certificate (DER; its key stays outside the run folder),
    {pki_dir} the folder of its client certificates.
    Secrets never go on the command line: {credentials_file} is a 0600 JSON file (role -> {user, password}) outside
    the run folder, also in the DUT's environment as HARNESS_CREDENTIALS_FILE; ``env`` values may also say
    {password:ROLE} and {user:ROLE}. The harness waits, bounded, until the DUT answers.
    """

    command: list[str] = Field(min_length=1)
    ready_timeout_s: float = Field(20.0, gt=0, le=600)
    env: dict[str, str] = Field(default_factory=dict)

    @field_validator("command")
    @classmethod
    def _placeholders(cls, command: list[str]) -> list[str]:
        """Each argument a well-formed template of plain ``{name}`` placeholders (which names exist is the
        launcher's to say); ``{`` alone, ``{0}`` or ``{host.__class__}`` would fail or reach into objects at
        launch time."""
        for arg in command:
            try:
                fields = [f for _, f, _, _ in string.Formatter().parse(arg) if f is not None]
            except ValueError as exc:
                raise ValueError(f"{arg!r}: {exc} (write a literal brace as {{{{ or }}}})") from None
            for field in fields:
                if not field.isidentifier():
                    raise ValueError(f"{arg!r}: placeholder {{{field}}} is not a plain name like {{port}}")
        return command


class PowerSpec(Strict):
    """How the DUT's power is switched. ``process``: off = SIGKILL, on = relaunch (needs launch)."""

    kind: str = "process"
    off_time_s: float = Field(1.0, ge=0, le=3600, description="how long power stays off in a cut")


class ControlChannel(Strict):
    """A simulator's control channel (time acceleration); real devices have none. Placeholder
    {control_port} is its port, {control} its HOST:PORT (inside a namespace with ``link: netns``)."""

    host: Literal["127.0.0.1", "::1", "localhost"] = "127.0.0.1"
    port: Port = "auto"


class ReferenceLoad(Strict):
    """The load the bench applies to the meter, which the harness uses as the expected rate."""

    active_import_w: float = Field(0.0, ge=0)
    active_export_w: float = Field(0.0, ge=0)
    reactive_import_var: float = Field(0.0, ge=0)
    reactive_export_var: float = Field(0.0, ge=0)
    tolerance_pct: float = Field(2.0, gt=0, le=100, description="accuracy of the bench + meter class")

    def power_of(self, channel: str) -> float:
        unit = "w" if channel.startswith("active") else "var"
        return float(getattr(self, f"{channel}_{unit}"))


class ReferenceFlow(Strict):
    """The heat carrier the bench runs through a heat meter: the expected flow and temperatures.

    Checks of cl. 96 take from here what the meter should see and how closely (``tolerance_pct``,
    the bench's accuracy plus the meter's class, e.g. EN 1434 class 2 calculator and flow sensor).
    """

    volume_flow_m3_h: float = Field(gt=0, description="volume flow through the flow sensor")
    flow_temperature_c: float = Field(ge=0, le=150, description="supply (flow) pipe temperature")
    return_temperature_c: float = Field(ge=0, le=150, description="return pipe temperature")
    tolerance_pct: float = Field(1.0, gt=0, le=100, description="accuracy of the bench's reference flow "
                                 "(the meter's EN 1434 class is added to it for heat and flow)")
    temperature_tolerance_k: float = Field(0.1, ge=0, le=5, description="uncertainty of the bench's reference "
                                           "temperatures (added to the sensors' IEC 60751 tolerance)")

    @model_validator(mode="after")
    def _check(self) -> ReferenceFlow:
        if self.return_temperature_c > self.flow_temperature_c:
            raise ValueError("return temperature above flow temperature: a heat meter would meter cooling")
        return self


class Timing(Strict):
    """Timeouts and observation windows; labs lengthen windows, CI keeps them short."""

    request_timeout_s: float = Field(1.0, gt=0, le=60)
    retries: int = Field(2, ge=0, le=10)
    energy_window_s: float = Field(3600, gt=0, le=MAX_DEVICE_WINDOW_S, description="device seconds to observe "
                                   "energy rates")
    tariff_window_s: float = Field(900, gt=0, le=MAX_DEVICE_WINDOW_S, description="device seconds observed on "
                                   "each side of a switch")
    clock_tolerance_s: float = Field(2.0, gt=0, description="allowed clock error after a set or a cut")
    clock_drift_window_s: float = Field(60.0, gt=0, description="wall seconds over which drift is measured")
    max_wall_wait_s: float = Field(
        120.0, gt=0, le=MAX_WALL_WAIT_S, description="longest real wait a check may make (when the DUT has no time "
        "control, and always for the rig's own wall-time settings: clock_drift_window_s, power off_time_s)"
    )
    power_cuts: int = Field(5, ge=1, le=1000, description="power cuts in the nvm suite")


class Broker(Strict):
    """A broker the DUT pushes its data to. ``run: true``: the harness runs one itself on loopback
    (``harness sim mqtt-broker``, amqtt); ``run: false``: the lab's own broker at host/port."""

    run: bool = True
    host: str = "127.0.0.1"
    port: Port = "auto"

    @model_validator(mode="after")
    def _check(self) -> Broker:
        if self.run and self.host not in ("127.0.0.1", "::1", "localhost"):
            raise ValueError("a broker the harness runs listens on loopback only (host 127.0.0.1 or ::1)")
        if not self.run and self.port == "auto":
            raise ValueError("give the port of the lab's broker (auto only for a broker the harness runs)")
        return self


class UpstreamChannel(Strict):
    """One upstream channel of a DUT that pushes (a concentrator): its broker and how the link is faulted."""

    broker: Broker = Field(default_factory=Broker)
    link: Literal["proxy", "direct"] = Field(
        "proxy", description="proxy: the DUT reaches the broker through the harness's link-fault proxy")


class Upstream(Strict):
    """The head-end side of a pushing DUT: main and reserve channels (cl. 83–85). The harness
    subscribes to every broker as the collecting head-end. Launch placeholders {upstream_main} and
    {upstream_reserve} give the URL the DUT must use (the proxy's, when the link is proxied)."""

    main: UpstreamChannel = Field(default_factory=UpstreamChannel)
    reserve: UpstreamChannel | None = Field(default_factory=UpstreamChannel)


class Dut(Strict):
    """One device under test on this bench."""

    profile: str = Field(description="path of the profile YAML, relative to the rig file")
    transport: Transport
    unit_id: int = Field(1, ge=0, le=255)
    launch: Launch | None = None
    power: PowerSpec | None = None
    control: ControlChannel | None = None
    reference_load: ReferenceLoad | None = None
    reference_flow: ReferenceFlow | None = None
    defects: list[str] = Field(default_factory=list, description="seeded defects for a simulated DUT")
    upstream: Upstream | None = None
    reserve_transport: Transport | None = Field(
        None, description="the DUT's second interface (a profile with `interfaces`): the harness reads it too and "
        "checks it keeps serving while the main one is cut")
    link: Literal["direct", "proxy", "netns"] = Field(
        "direct", description="how the harness reaches the main transport: direct; proxy — through its link-fault "
        "proxy (TCP, or a relay on a simulated serial line `port: pty`; unprivileged); netns — the launched "
        "DUT runs in a network namespace behind a veth pair (root)")
    documentation: Documentation | None = Field(
        None, description="facts of this one instrument (e.g. its verification); each field declared here "
        "replaces the profile's")
    credentials: dict[str, Credential] = Field(
        default_factory=dict, description="the lab's account per role the profile declares (OPC UA): role -> "
        "{user, password} or {certificate, key}; for a Modbus meter's write protection: unlock -> {password}")
    firmware: FirmwareImages | None = Field(None, description="vendor images the update suite may install")
    client_certificate: RigPath | None = Field(
        None, description="the OPC UA application certificate (DER) the DUT already trusts; default: the harness "
        "makes one per run (its key outside the run folder, the certificate copied to OUTDIR/pki)")
    client_key: RigPath | None = Field(None, description="its private key (PEM)")
    field: dict[str, Dut] = Field(
        default_factory=dict, description="an AMR server's field: the meters it must read (each a meter DUT spec the "
        "harness brings up and reads itself for the ground truth; profile kind electricity_meter or heat_meter)")

    @model_validator(mode="after")
    def _check(self) -> Dut:
        if self.power and self.power.kind == "process" and self.launch is None:
            raise ValueError("power kind process needs `launch` (power-on relaunches the command)")
        if self.control and self.launch is None:
            raise ValueError("a control channel belongs to a launched simulator (`launch`)")
        if self.defects and self.launch is None:
            raise ValueError("defects can only be seeded into a launched simulator")
        if self.link == "netns" and self.transport.tcp is None:
            raise ValueError("link netns faults a TCP transport; the main transport here is serial (a simulated "
                             "line, `port: pty`, can have `link: proxy`)")
        serial = self.transport.serial
        if self.link == "proxy" and serial is not None and serial.port != "pty":
            raise ValueError(f"link proxy on a serial line relays the harness's simulated line (`port: pty`); "
                             f"{serial.port} is a real port: fault its cable on the bench, or use `link: direct`")
        if any(meter.field for meter in self.field.values()):
            raise ValueError("a field meter has no field of its own")
        if self.link == "netns" and self.launch is None:
            raise ValueError("link netns runs the DUT inside a namespace: it needs `launch`")
        exposed = [(role, what) for role, cred in self.credentials.items() if self.launch
                   for what, secret in (("the password", cred.password), ("the encryption_key", cred.encryption_key),
                                        ("the authentication_key", cred.authentication_key)) if secret
                   and any(appears_in(secret, arg) or appears_in(secret.lower(), arg.lower())
                           for arg in self.launch.command)]
        if exposed:
            raise ValueError(f"launch.command holds {exposed[0][1]} of credentials.{exposed[0][0]}: a command line "
                             "is shown by ps and written to the DUT's log; give the DUT \"{credentials_file}\" "
                             "(JSON role -> {user, password}) or a launch.env value \"{password:ROLE}\"")
        return self


class Lab(Strict):
    """Who runs the bench: printed on the certificate next to the signer's key."""

    name: str = Field(min_length=1)
    address: str = ""
    accreditation: str = Field("", description="accreditation certificate of the lab, if any")
    language: str = Field("en", description="the language of the certificate and the console summary (a gettext "
                          "catalog under harness/reporting/locale: en, ru; `harness certify --lang` overrides it)")

    @field_validator("language")
    @classmethod
    def _known_language(cls, value: str) -> str:
        from harness.reporting.i18n import languages

        if value not in languages():
            raise ValueError(f"no catalog for language {value!r}; languages: {', '.join(languages())}")
        return value


class Rig(Strict):
    """One bench."""

    name: str = Field(pattern=r"^[A-Za-z0-9_.-]+$")
    description: str = ""
    allow_destructive: bool = Field(False, description="power cycling and other destructive checks may run")
    seed: int = Field(1, description="seed for every random choice, so a run can be reproduced")
    lab: Lab | None = None
    reruns: int = Field(2, ge=0, le=10, description="re-runs of a failing check; a pass on a re-run is FLAKY")
    timing: Timing = Field(default_factory=Timing)
    lab_allow_list: LabAllowList = Field(
        default_factory=list, description="addresses or networks (CIDR) of the lab's own DUTs that fuzzing and "
        "storms (suite robustness) may target besides loopback and the harness's network namespaces; no broader "
        "than a /16 of private (a /24 of public) IPv4, a /48 (/64) of IPv6")
    robustness: Robustness = Field(default_factory=Robustness, description="bounds of the robustness campaigns")
    availability: AvailabilitySoak = Field(
        default_factory=AvailabilitySoak, description="the availability soak (cl. 67, 73): duration, poll interval, "
        "target, link faults")
    duts: dict[str, Dut] = Field(min_length=1)


def wall_waits_too_long(rig: Rig) -> list[tuple[list[str | int], str]]:
    """Settings that would make a check sleep longer than ``timing.max_wall_wait_s``, as (key path, why).

    A rig is refused at load rather than capped: a capped window would measure something other than
    what the lab wrote (a drift over 120 s is not a drift over 1e9 s), and a cap reported only in a
    log is easy to miss. The key paths let the loader name each setting's own line.
    """
    limit = rig.timing.max_wall_wait_s
    waits: list[tuple[list[str | int], float]] = [
        (["timing", "clock_drift_window_s"], rig.timing.clock_drift_window_s),
        *((["duts", name, "power", "off_time_s"], dut.power.off_time_s) for name, dut in rig.duts.items()
          if dut.power is not None)]
    return [(loc, f"{value:g} s of real waiting is longer than timing.max_wall_wait_s ({limit:g} s), the longest "
                  "wait this rig allows a check; shorten it or raise max_wall_wait_s")
            for loc, value in waits if value > limit]
