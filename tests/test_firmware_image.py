"""tek-image-v1 and its forger: each forgery fails exactly the check it is made for, with a clear reason."""

from __future__ import annotations

import json
from types import SimpleNamespace

import pytest

from harness import registry
from harness.config import load_profile
from harness.fault_injection.firmware import FORGERIES, FirmwareForger, corrupted, truncated, unsigned, wrongly_signed
from harness.fault_injection.record import FaultLog
from harness.firmware.image import (
    ImageFormatError,
    ImageIntegrityError,
    ImageSignatureError,
    UnsignedImageError,
    build_image,
    check_integrity,
    check_signature,
    generate_signing_key,
    load_private_key,
    load_public_key,
    parse_image,
    private_key_pem,
    public_key_pem,
    verify_image,
    version_key,
)
from harness.resources import builtin_profile

PAYLOAD = bytes(range(256)) * 64


@pytest.fixture(scope="module", params=["ed25519", "ecdsa-p256"])
def signed(request):
    key = generate_signing_key(request.param)
    image = build_image(vendor="TEK-Sim", model="TEK-SIM-PC1", version="2.2.0", payload=PAYLOAD, key=key)
    return request.param, key, image


def test_build_parse_verify_round_trip(signed):
    _algorithm, key, image = signed
    public = load_public_key(public_key_pem(key))
    parsed = verify_image(image, public)
    assert parsed.header.version == "2.2.0" and parsed.payload == PAYLOAD and parsed.header.health == "ok"
    assert parsed.to_bytes() == image
    assert load_private_key(private_key_pem(key)).public_key().public_bytes is not None
    assert verify_image(build_image(vendor="v", model="m", version="1.0", payload=b"", key=key), public)


def test_each_forgery_fails_its_own_check(signed):
    algorithm, key, image = signed
    public = load_public_key(public_key_pem(key))
    with pytest.raises(UnsignedImageError, match="unsigned"):
        check_signature(parse_image(unsigned(image)), public)
    check_integrity(parse_image(unsigned(image)))  # only the signature is missing
    forged = parse_image(wrongly_signed(image))
    assert len(forged.signature) > 0 and forged.signed == parse_image(image).signed
    with pytest.raises(ImageSignatureError, match=algorithm):
        check_signature(forged, public)
    check_integrity(forged)
    with pytest.raises(ImageFormatError, match="truncated"):
        parse_image(truncated(image))
    bad = parse_image(corrupted(image, seed=7))
    assert bad.signature == parse_image(image).signature and bad.payload != PAYLOAD
    with pytest.raises(ImageIntegrityError, match="SHA-256"):
        check_integrity(bad)
    with pytest.raises(ImageSignatureError):
        check_signature(bad, public)
    assert corrupted(image, seed=7) == corrupted(image, seed=7) != corrupted(image, seed=8)  # seeded


@pytest.mark.parametrize(("data", "reason"), [
    (b"ELF\x7f....", "does not start with"),
    (b"TEKIMG1\n\x00\x00", "inside the header length"),
    (b"TEKIMG1\n\x00\x00\x00\x20{}", "inside the 32-byte header"),
    (b"TEKIMG1\n\x00\x00\x00\x02{}", "header lacks vendor, model, version, payload_sha256, payload_len"),
    (b"TEKIMG1\n\x00\x00\x00\x03[1]", "not a JSON object"),
])
def test_format_errors_name_the_part(data, reason):
    with pytest.raises(ImageFormatError, match=reason):
        parse_image(data)


def test_header_fields_are_checked():
    good = build_image(vendor="v", model="m", version="2.1.0", payload=b"abc", key=None, health="fail")
    assert parse_image(good).header.health == "fail"
    header = json.loads(good[12:12 + int.from_bytes(good[8:12], "big")])
    for field, value, reason in (("version", "two", "dotted number"), ("health", "meh", "health"),
                                 ("payload_len", -1, "non-negative"), ("payload_sha256", "x", "hex digits")):
        raw = json.dumps({**header, field: value}).encode()
        with pytest.raises(ImageFormatError, match=reason):
            parse_image(b"TEKIMG1\n" + len(raw).to_bytes(4, "big") + raw + b"abc" + b"\x00" * 4)
    raw = json.dumps({**header, "extra": 1}).encode()
    with pytest.raises(ImageFormatError, match="unknown field"):
        parse_image(b"TEKIMG1\n" + len(raw).to_bytes(4, "big") + raw + b"abc" + b"\x00" * 4)
    with pytest.raises(ImageFormatError, match="trailing bytes"):
        parse_image(good + b"x")
    with pytest.raises(ValueError, match="unknown signature algorithm"):
        generate_signing_key("rsa")
    assert version_key("2.10.0") > version_key("2.9.1") and version_key("2.1") == version_key("2.1.0")


def test_forger_writes_evidence_and_records_each_forgery(tmp_path, signed):
    _, _key, image = signed
    source = tmp_path / "pc1-2.2.0.img"
    source.write_bytes(image)
    faults = FaultLog(tmp_path / "faults.jsonl")
    forger = FirmwareForger(tmp_path / "firmware", faults, dut="plc", seed=3)
    paths = {kind: forger.forge_file(kind, source) for kind in FORGERIES}
    assert {p.name for p in paths.values()} == {f"pc1-2.2.0-{k}.img" for k in FORGERIES}
    assert paths["corrupted"].read_bytes() == corrupted(image, seed=3)
    records = [json.loads(line) for line in (tmp_path / "faults.jsonl").read_text().splitlines()]
    begins = [r for r in records if r["phase"] == "begin"]
    assert [r["what"] for r in begins] == list(FORGERIES) and {r["kind"] for r in begins} == {"firmware"}
    assert all(r["dut"] == "plc" and r["image_format"] == "tek-image-v1" for r in begins)
    assert len([r for r in records if r["phase"] == "end"]) == len(FORGERIES)
    with pytest.raises(ValueError, match="unknown forgery"):
        forger.forge("bitflip", image)


def test_forger_is_a_registered_fault_injector(tmp_path):
    """The bench builds it from a DUT runtime: profile (signature algorithm), out_dir, fault log, seed."""
    spec = registry.fault_injectors("firmware")["tek-image-v1"]
    runtime = SimpleNamespace(name="plc", profile=load_profile(builtin_profile("tek-sim-pc1.yaml")), out_dir=tmp_path,
                              faults=FaultLog(None), seed=5)
    forger = spec.factory(runtime)
    assert isinstance(forger, FirmwareForger) and forger.algorithm == "ed25519" and forger.seed == 5
    assert forger.out_dir == tmp_path / "firmware" / "plc"
