"""Fault injectors: power switches, time control, serial lines for simulated DUTs, link faults (a TCP
proxy per channel; a relay in the middle of a simulated serial line; network namespaces with tc netem
where the kernel has it), tamper inputs — firmware forgery is to come. Each is registered through
``harness_add_fault_injectors``."""
