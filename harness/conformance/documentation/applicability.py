"""Which documentary requirements apply to which kind of DUT, read from the Rules' own wording.

The documentary clauses were written with measuring instruments in mind, but an AMR server (АСКУЭ
head-end) is software on server equipment: it reads meters, it measures nothing. Per clause:

- cl. 50 ("технические средства, предназначенные для измерений, и имеющие метрологические
  характеристики") and cl. 87 ("средства измерений … вносятся в Государственный реестр средств
  измерений …, проходят метрологическую поверку"): they concern measuring instruments. Software with
  no metrological characteristics is entered in no registry of measuring instruments and is never
  verified, so KZ-50-01 and KZ-87-01 are N/A for an ``amr_server`` — its field meters are the
  measuring instruments, certified on their own rigs.
- cl. 58 ("с использованием сертифицированных средств измерений и программного обеспечения"): the
  AMR complex's *software* must be certified; for an ``amr_server`` the certificate judged is the
  software's (its meters' instrument certificates are theirs).
- cl. 59 ("все элементы комплексов … сертифицированы"): each element, the server among them; the
  element an ``amr_server`` DUT is, is its software.
- cl. 72 (operating documentation: connection, configuration, maintenance, recovery after failures)
  and cl. 79 (an information-security certificate of the information system) apply unchanged.
- cl. 93 ("техническая и метрологическая документация на средства измерений и программное
  обеспечение"): the metrological part is the instruments'; software has technical documentation only.
"""

from __future__ import annotations

from typing import Any

from harness.quantities import DeviceKind
from harness.reporting.texts import Msg

# The DUT kinds that are no measuring instrument (no metrological characteristics of their own).
NOT_INSTRUMENTS = frozenset({DeviceKind.AMR_SERVER})


def is_instrument(dut: Any) -> bool:
    return dut.profile.kind not in NOT_INSTRUMENTS


def not_an_instrument(dut: Any) -> str:
    """The N/A reason of an instrument-only requirement (cl. 50, 87) for a DUT that measures nothing."""
    return Msg("`{kind}` is software that reads meters, not a measuring instrument: the state registry of measuring "
               "instruments and metrological verification (cl. 50, 87) are its field meters', not its own",
               kind=dut.profile.kind.value)


def certificate_subjects(dut: Any) -> tuple[str, ...]:
    """The conformity-certificate subjects cl. 58-59 ask of this DUT: an instrument's and its software's; of
    an AMR server, its software's."""
    return (Msg("software"),) if not is_instrument(dut) else (Msg("instrument"), Msg("software"))


def technical_kinds(dut: Any) -> tuple[str, ...]:
    """The document kinds cl. 93 asks for: technical and metrological of an instrument, technical of software."""
    if not is_instrument(dut):
        return ("technical_description",)
    return ("technical_description", "metrological_description")
