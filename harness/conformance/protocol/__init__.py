"""Suite `protocol` (cl. 68, and 81 for the compatibility of the data-exchange protocol): what the Modbus
Organization's conformance specification and the OPC UA service sets expect of a server — declared function
codes answer, exceptions 01/02/03 where the specification puts them, the MBAP header honoured, RTU frames
with a bad CRC ignored; GetEndpoints lists exactly the declared policies, Browse/Read/Write/Call give the
right status codes. Everything that differs between devices comes from the profile (``modbus_server.py``)."""
