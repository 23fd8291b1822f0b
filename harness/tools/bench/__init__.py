"""The benchmarks of `dtg-hil bench ...`, one module each: they print figures, and some judge them.

- `plant`: how fast the vehicle plant generates driving (``bench plant``);
- `link`: rest-bus → CAN → simulated STM32 → pty → decoder, frames lost and bus and UART load (``bench link``;
  also ``python -m harness.tools.bench``);
- `soak`: a long drive through the whole simulated chain, frames lost and memory growth (``bench soak``), with
  `memory`, the memory sampler it runs beside the chain.
- `sim`: a long generated drive through the simulated rig on virtual time: scenario-seconds per CPU-second and
  where the CPU time goes, by part (``bench sim``).

The model latency benchmark (``bench models``) is `harness.inference.models.bench_models`; the parsers' fuzzer
(``bench fuzz``) is `harness.tools.fuzz`. A benchmark module holds ``cmd_bench_<name>(args) -> int`` (an exit
code of `harness.tools.exits`) and, when it has options, ``add_<name>_arguments(parser)``; adding a benchmark is
a new module here and its subcommand in `harness.tools.cli`. Import from the modules: this package re-exports
nothing.
"""
