"""Below the Device API: raw frames for the protocol and robustness suites and for `harness replay`.

The Device API answers "what is the value of X"; these suites ask how the device treats the frames
themselves — a header that lies about its length, a function code nobody declared, garbage, storms. So
they speak to the DUT's endpoint directly, with every exchange in the run transcript, and the robustness
campaigns send only where ``safety.refusal`` allows.
"""
