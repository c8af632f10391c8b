"""cl. 50, 58, 59, 72, 79, 87, 93: the evidence that cannot be read off the device — state registry,
metrological verification, conformity and information-security certificates, documents kept in
electronic form — judged as declared in the profile (the model) and the rig (this instrument).

These are documentary checks: they judge declarations against the day of the run and the files
on disk, and say so in their records. They apply to every kind of DUT, each as far as the Rules'
wording reaches it: an instrument must be registered, verified, certified and documented; an AMR
server, which measures nothing, is certified and documented as software (``applicability.py``).
"""

from __future__ import annotations

import pytest

from harness.conformance.documentation.applicability import (
    certificate_subjects,
    is_instrument,
    not_an_instrument,
    technical_kinds,
)
from harness.conformance.documentation.evidence import (
    certificate_in_force,
    declared,
    declared_in,
    document_intact,
    documents_of,
    not_declared,
    period_in_force,
    run_date,
    verification_due,
)
from harness.reporting.texts import Msg
from harness.verdicts import NotApplicable

pytestmark = pytest.mark.documentary


@pytest.mark.check("KZ-50-01", "the instrument type is in the state registry of measuring instruments of the "
                   "RK, the entry in force on the day of the run", also=("87",))
def test_state_registry(dut, check):
    if not is_instrument(dut):
        raise NotApplicable(not_an_instrument(dut))
    today, doc = run_date(), declared(dut)
    entry = doc.state_registry if doc else None
    if entry is None:
        not_declared(check, "state_registry",
                     Msg("`number`, `type_name`, `entered` (and `valid_until` unless unlimited)"))
    else:
        check.measure(Msg("state registry number"), entry.number, passed=True, limit=Msg("declared"),
                      note=Msg("type {type_name}; {declared_in}", type_name=entry.type_name,
                               declared_in=declared_in(dut, 'state_registry')))
        period_in_force(check, Msg("registry entry (type approval)"), entry.entered, entry.valid_until, today,
                        note=Msg("entered … valid until"))
    check.require()


@pytest.mark.check("KZ-58-01", "the instrument has a conformity certificate in force on the day of the run")
def test_instrument_certified(dut, check):
    today, doc = run_date(), declared(dut)
    subject = certificate_subjects(dut)[0]  # an AMR server's is its software's (applicability.py, cl. 58)
    certificate_in_force(check, doc.conformity_certificates if doc else [], subject, today,
                         declared_in(dut, "conformity_certificates"))
    check.require()


@pytest.mark.check("KZ-59-01", "the instrument and its software have confirmed conformity, certificates in force "
                   "on the day of the run")
def test_elements_certified(dut, check):
    today, doc = run_date(), declared(dut)
    source = declared_in(dut, "conformity_certificates")
    for subject in certificate_subjects(dut):
        certificate_in_force(check, doc.conformity_certificates if doc else [], subject, today, source)
    check.require()


@pytest.mark.check("KZ-72-01", "operating documentation (an operating manual) accompanies the device: declared, "
                   "stored, readable")
def test_operating_documentation(dut, check):
    manuals = documents_of(declared(dut), "operating_manual")
    if not manuals:
        not_declared(check, "documents", Msg("an entry with `kind: operating_manual` (`title`, `file`, `sha256`)"))
    for manual in manuals:
        document_intact(check, manual)
    check.require()


@pytest.mark.check("KZ-79-01", "an information-security conformity certificate in force on the day of the run")
def test_security_certificate(dut, check):
    today, doc = run_date(), declared(dut)
    cert = doc.security_certificate if doc else None
    if cert is None:
        not_declared(check, "security_certificate", "`number`, `issuer`, `issued`, `valid_until`")
    else:
        period_in_force(check, Msg("information-security certificate {number}", number=cert.number), cert.issued,
                        cert.valid_until, today, note=Msg("issued by {issuer}; {declared_in}", issuer=cert.issuer,
                                        declared_in=declared_in(dut, 'security_certificate')))
    check.require()


@pytest.mark.check("KZ-87-01", "the instrument is metrologically verified: last verification ≤ run date < last "
                   "+ interval", also=("50",))
def test_verification(dut, check):
    if not is_instrument(dut):
        raise NotApplicable(not_an_instrument(dut))
    today, doc = run_date(), declared(dut)
    v = doc.verification if doc else None
    if v is None:
        not_declared(check, "verification", "`last`, `interval_months`, `certificate`, `by`")
    else:
        source = declared_in(dut, "verification")
        check.measure(Msg("last verification"), v.last.isoformat(), passed=v.last <= today,
                      limit=Msg("≤ {isoformat} (run date, UTC)", isoformat=today.isoformat()),
                      note=Msg("certificate {certificate} by {by}; {source}", certificate=v.certificate, by=v.by,
                               source=source))
        due = verification_due(v.last, v.interval_months)
        check.measure(Msg("next verification due"), due.isoformat(), passed=today < due,
                      limit=Msg("> {isoformat} (run date, UTC)", isoformat=today.isoformat()),
                      note=Msg("last + {interval_months} months", interval_months=v.interval_months))
    check.require()


@pytest.mark.check("KZ-93-01", "technical and metrological documentation stored in electronic form: declared, "
                   "present, intact")
def test_technical_documentation(dut, check):
    doc, required = declared(dut), technical_kinds(dut)
    for kind in required:
        if not documents_of(doc, kind):
            not_declared(check, "documents", Msg("an entry with `kind: {kind}` (`title`, `file`, `sha256`)", kind=kind))
    for kind in dict.fromkeys((*required, "metrological_description", "software_description")):
        for document in documents_of(doc, kind):
            document_intact(check, document)
    check.require()
