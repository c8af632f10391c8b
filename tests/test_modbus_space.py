"""A Modbus profile's undeclared addresses: reserved ranges and the address space, coil and discrete-input
tables, and the addresses the protocol probes pick from them (and why)."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from harness.config.loading import json_schema
from harness.config.modbus_map import ModbusMap
from harness.conformance.wire.modbus_targets import absent_address, unmapped_address, writable_point

BASE = {"points": {"serial_number": {"address": 0, "type": "u32"}}}


def _dut(modbus: dict, clock_writable: bool = False) -> SimpleNamespace:
    m = ModbusMap.model_validate(modbus)
    profile = SimpleNamespace(modbus=m, protocol="modbus", clock=SimpleNamespace(writable=clock_writable))
    return SimpleNamespace(profile=profile, name="dut")


def test_without_declarations_the_lowest_undeclared_address_is_probed_and_nothing_is_declared_absent():
    dut = _dut(BASE)
    pick = unmapped_address(dut, "holding")
    assert (pick.address, pick.declared_absent) == (2, False)
    assert "no declared point and no reserved range" in pick.why
    assert absent_address(dut, "holding") is None  # an undeclared address may hold a vendor setting


def test_reserved_ranges_are_skipped_and_the_address_space_ends_the_search():
    dut = _dut({**BASE, "reserved": {"holding": [{"first": 2, "last": 9}, {"first": 11, "last": 20}]}})
    assert unmapped_address(dut, "holding").address == 10
    full = _dut({**BASE, "address_space": {"holding": {"first": 0, "last": 31}},
                 "reserved": {"holding": [{"first": 0, "last": 31}]}})
    pick = unmapped_address(full, "holding")
    assert (pick.address, pick.declared_absent) == (32, True)
    assert "past the declared address_space 0..31" in pick.why
    assert absent_address(full, "holding").address == 32
    top = _dut({"points": {"serial_number": {"address": 65534, "type": "u32"}},
                "address_space": {"holding": {"first": 100, "last": 65535}}})
    assert absent_address(top, "holding").address == 99
    everything = _dut({**BASE, "reserved": {"holding": [{"first": 0, "last": 65535}]}})
    assert unmapped_address(everything, "holding") is None


def test_reserved_and_declared_runs_must_lie_inside_the_address_space():
    for bad in ({"address_space": {"holding": {"first": 4, "last": 9}}},
                {"address_space": {"holding": {"first": 0, "last": 9}}, "reserved": {"holding": [{"first": 8,
                                                                                                   "last": 12}]}},
                {"reserved": {"holding": [{"first": 5, "last": 4}]}},
                {"reserved": {"registers": [{"first": 0, "last": 4}]}}):
        with pytest.raises(ValueError):
            ModbusMap.model_validate({**BASE, **bad})


def test_coil_and_discrete_input_tables_imply_their_function_codes():
    m = ModbusMap.model_validate({**BASE, "points": {
        "serial_number": {"address": 0, "type": "u32"},
        "x_relay": {"address": 3, "table": "coil", "type": "bool", "writable": True},
        "x_alarm": {"address": 0, "table": "discrete_input", "type": "bool"}}})
    assert m.served_function_codes(False) == [1, 2, 3, 5, 15]
    for bad in ({"address": 3, "table": "coil"},  # a coil is a bit: type bool
                {"address": 3, "type": "bool"},  # a bool lives in a bit table
                {"address": 3, "table": "discrete_input", "type": "bool", "writable": True},
                {"address": 3, "table": "input", "writable": True}):
        with pytest.raises(ValueError):
            ModbusMap.model_validate({"points": {"x_bad": bad}})


def test_block_writes_prefer_a_point_of_several_registers_and_the_clock_comes_last():
    dut = _dut({**BASE, "settings": {"x_a": {"address": 8, "writable": True},
                                     "x_b": {"address": 10, "type": "u32", "writable": True}},
                "clock": {"address": 64, "encoding": "unix"}}, clock_writable=True)
    assert writable_point(dut, "holding").name == "x_b"
    assert writable_point(dut, "holding", single=True).name == "x_a"
    only_clock = _dut({**BASE, "clock": {"address": 64, "encoding": "unix"}}, clock_writable=True)
    assert writable_point(only_clock, "holding").name == "clock"
    assert writable_point(only_clock, "holding", single=True) is None


def test_the_profile_schema_lists_each_device_kind_once():
    kinds = json.loads(json_schema("profile"))["$defs"]["DeviceKind"]["enum"]
    assert len(kinds) == len(set(kinds)) and "data_concentrator" in kinds


def test_a_check_left_with_only_destructive_probes_is_inconclusive_on_a_gentle_rig():
    from harness.conformance.protocol.modbus_probes import Probe, ProbeRun
    from harness.reporting.records import Check
    from harness.verdicts import Inconclusive

    class NoWire:
        def request(self, *args, **kwargs):
            raise AssertionError("a destructive probe went out on a rig that forbids it")

        def close(self) -> None:
            return None

    check = Check("KZ-68-03", "t", "protocol", ["68"], "dut")
    run = ProbeRun(check, NoWire(), allow_destructive=False)
    run.expect(Probe("FC06 write at unmapped holding 2", bytes([6, 0, 2, 0, 0]), 2, "may hold a vendor setting"))
    with pytest.raises(Inconclusive, match=r"nothing non-destructive remained.*may hold a vendor setting"):
        run.conclude("no probe applies")
    assert check.measurements == []


def test_clock_and_record_stores_live_in_register_tables():
    with pytest.raises(ValueError, match="the clock lives in registers"):
        ModbusMap.model_validate({**BASE, "clock": {"address": 64, "table": "coil", "encoding": "unix"}})


def test_an_address_inside_the_declared_space_is_never_taken_as_declared_absent():
    dut = _dut({**BASE, "address_space": {"holding": {"first": 0, "last": 65535}}})
    pick = unmapped_address(dut, "holding")
    assert (pick.address, pick.declared_absent) == (2, False)
    assert absent_address(dut, "holding") is None  # the whole table exists: no write is ever harmless
