"""Fuzzing the harness's parsers: every input either parses or is rejected with the parser's documented error.

A HIL harness reads bytes and text it does not control: the UART link, NMEA from a GNSS feed, logcat lines
from the app, scenario and rig files. Each parser documents what it does with bad input; this package holds one
target per parser (what it runs, which exceptions are its documented rejections, where its inputs come from)
and an engine that feeds each target N inputs and reports everything else it does as a finding. Beside "no
other exception", each target checks what its module promises (a broken promise is an `OracleError`, a finding
too). ``dtg-hil bench fuzz`` runs it (docs/robustness.md).

The modules:

- `target`: `FuzzTarget`, the `REJECTED` marker, `OracleError`: the shared base of the targets;
- the targets, one module per parser, over a shared base where they share a shape: `link` (the base of
  `link_raw_can_v1` and `link_dtg_link_v2`: the streaming decoders, whole and chunked, and ``decode``), `nmea`,
  `events`, `yamlfile` (the base of the YAML data files: `scenario`, which holds ``scenario`` and
  ``scenario-data``, and `rig`); `targets` lists them in run order (`TARGETS`, `target_names`, `get_target`);
- `inputs`: drawing an input (`draw_input`: random, a mutation of an example, or structure-aware);
- `engine`: one input under a time limit (`run_one`, `Outcome`), shrinking (`minimize`), the run (`run_fuzz`);
- `guards`: the run's address-space cap and faulthandler backstop; `report`: what a run found (`FuzzReport`);
- `cli`: the options of ``dtg-hil bench fuzz``, the run and ``--replay``.

What it does not do: no coverage guidance, no parallel workers, no fuzzing of the Android driver or the slcan
and adb stand-ins (their own tests cover their protocols). Import from the modules: this package re-exports
nothing.
"""
