"""The exit codes of every `dtg-hil` command (the CLI, the benchmarks, the fuzzer).

>>> EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT
(0, 1, 2)
"""
from __future__ import annotations

#: The work ran and passed.
EXIT_OK = 0
#: The work ran and failed (a frame lost, a finding, a failed run).
EXIT_FAILED = 1
#: Bad input: an invalid file, an unknown name, a bad option; the message names the valid choices.
EXIT_BAD_INPUT = 2
