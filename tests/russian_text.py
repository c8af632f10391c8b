"""The English-word scan of a Russian certificate (issue 19's done-when): which Latin-letter words of a page's visible
text are neither a name, an id nor a unit. Shared by the tests that certify a built-in rig in Russian
(test_certificate_russian.py: the meter rig; test_controller_rig.py, test_amr.py: their golden runs)."""

from __future__ import annotations

import re
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import yaml

from harness.config.opcua_map import UPDATE_STATES
from harness.conformance.access_control.opcua_access import COMMON_DEFAULTS
from harness.devices.dlms_results import DAR_NAMES
from harness.reporting.clauses import SUITES

# Names a Russian certificate keeps in Latin letters: units, protocols and standards, products, acronyms; and
# "total" of the cl. 95 register designations (A+ total beside A+ T1: harness/quantities.py's labels).
NAMES = {"total", "Wh", "kWh", "varh", "kvarh", "W", "var", "ppm", "tek-harness", "Allure", "Modbus", "OPC", "UA",
         "TCP",
         "RTU", "MBAP", "PDU", "CRC", "IEC", "EN", "SR", "SHA-256", "UTC", "scapy", "ON", "OFF", "seed", "Device",
         "API", "GetEndpoints", "Browse", "Read", "Write", "Call", "Activate", "Rollback", "HistoryRead",
         "HistoryUpdate", "None", "Sign", "SignAndEncrypt", "harness", "verify", "report", "certify", "OUTDIR",
         "holding", "coils", "cover", "object-undefined", "openpyxl", *SUITES}
# ids: Modbus tables, tamper inputs (events.py), DLMS data-access results (IEC 62056-5-3, glossed in Russian
# beside them), suites (--suite)
# OPC UA's own vocabulary (IEC 62541): services, request fields and data types a reason names, the software-update
# states of Part 100 the device reports, and the user names KZ-76-03 tries (factory defaults: values, not words)
OPCUA_NAMES = {"CreateSession", "ActivateSession", "ClientCertificate", "ClientSignature", "SecurityPolicy", "String",
               "Double", "Boolean", "Clear", "Confirm", "Install", "Good", *UPDATE_STATES,
               *(user for user, _password in COMMON_DEFAULTS)}
# DLMS/COSEM's own vocabulary (IEC 62056-5-3, ГОСТ Р 58940): the data-access-result names a refusal carries, the
# xDLMS services a check names, and the ACSE diagnostics of a rejected association (acse-service-user) — ASN.1
# identifiers, written as the standard spells them beside their Russian gloss
DLMS_NAMES = {*DAR_NAMES.values(), "GET-with-list", "GET-request-normal", "GET-request-next", "GET-request-with-list",
              "GET-response-normal", "GET-response-with-datablock", "SET-request-normal", "ACTION-request-normal",
              "exception-response", "GET-response", "success", "double-long-unsigned",
              "application-context-name-not-supported", "authentication-mechanism-name-not-recognised",
              "authentication-mechanism-name-required", "authentication-failure", "authentication-required",
              "no-reason-given"}
# IEC 61968-9 (CIM) element names of a MeterReadings export a reason names
CIM_NAMES = {"MeterReadings", "MeterReading", "Meter", "Readings", "ReadingType", "mRID"}
OPCUA_STATUS = re.compile(r"(Bad|Good|Uncertain)[A-Z]\w+")  # a status code's name (Part 4 7.34): BadUserAccessDenied
VERDICTS_EN = {"PASS", "FAIL", "INCONCLUSIVE", "FLAKY", "NOT", "TESTED"}
# What a page marks as not the harness's own words: a quotation (a device's or a server's answer, «…» in Russian)
# and a configuration key (`documentation.verification`, `link: proxy`): names, as the done-when allows.
MARKED = re.compile(r"«[^«»]*»|“[^“”]*”|`[^`]*`")
TOKEN = re.compile(r"[^\s,;:()«»\"'“”\[\]{}<>=≤≥…→±×÷—–%]+")


class _Visible(HTMLParser):
    """The text a reader sees: everything but style, script, the tab title and code (ids, commands, hashes)."""

    HIDDEN = ("style", "script", "title", "code")

    def __init__(self) -> None:
        super().__init__()
        self.hidden = 0
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.hidden += tag in self.HIDDEN

    def handle_endtag(self, tag: str) -> None:
        self.hidden -= tag in self.HIDDEN

    def handle_data(self, data: str) -> None:
        if not self.hidden:
            self.text.append(data)


def _tokens(text: str) -> list[str]:
    return [t.strip(".-+/") for t in TOKEN.findall(text)]


def declared_names(out: Path) -> set[str]:
    """Every word the rig and the device profiles of the run declare (vendor, model, register labels, document
    titles, issuers): names the certificate quotes, not sentences the harness wrote."""
    words: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for k, v in value.items():
                walk(k)
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)
        elif isinstance(value, str):
            words.update(_tokens(value))

    for path in (out / "config").glob("*.yaml"):
        walk(yaml.safe_load(path.read_text(encoding="utf-8")))
    return words


def english_words(html: str, names: set[str]) -> list[str]:
    """Latin-letter words of the page's visible text that are no name, id or unit."""
    page = _Visible()
    page.feed(html)
    found = set()
    for token in _tokens(MARKED.sub(" ", " ".join(page.text))):
        if not re.search(r"[A-Za-z]", token) or token in names or token in NAMES or token in OPCUA_NAMES \
                or token in DLMS_NAMES or token in CIM_NAMES:
            continue
        if OPCUA_STATUS.fullmatch(token):
            continue
        if re.search(r"[\d_./@#`]", token) or len(token) == 1:  # ids, hashes, files, config keys, register letters
            continue
        if token.isupper() and token not in VERDICTS_EN:  # acronyms (FC, SN …), never an English verdict
            continue
        found.add(token)
    return sorted(found)


def english_left(out: Path) -> list[str]:
    """The English words left in a run's Russian certificate.html (names the run's rig and profiles declare aside)."""
    return english_words((out / "certificate.html").read_text(encoding="utf-8"), declared_names(out))
