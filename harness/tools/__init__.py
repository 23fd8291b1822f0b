"""The `dtg-hil` command, its benchmarks and the parsers' fuzzer."""
