"""The simulated DLMS/COSEM electricity meter (`harness sim dlms-meter`): the golden meter's metering
behind a DLMS server over the TCP wrapper, with its own A-XDR and APDU code (independent of the driver's
``dlms-cosem``). Seeded defects: ``dlms_meter.defects.DLMS_METER_DEFECTS``."""
