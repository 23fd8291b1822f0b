"""The contract suite on a place of a labgrid lab (docs/lab.md), and a second session refused while it runs: its own
module, so that `make test`'s workers run it beside the rest of tests/test_lab.py (it is the longest test)."""
from __future__ import annotations

from pathlib import Path

import lab_support
import pytest

ROOT = Path(__file__).resolve().parents[1]
pytest.importorskip("labgrid")

lab = lab_support.lab  # the module's lab of two benches


def test_the_contract_suite_runs_on_a_lab_place_and_a_second_session_is_refused(lab, tmp_path):
    first = lab_support.run_pytest(lab, "ci-first", "-m", "hil", "--rig", "labgrid:bench-a", "--dtg-artifacts",
                                   str(tmp_path / "first"), "tests/contract")
    try:
        lab_support.wait_holder(lab, "bench-a", "ci-first")
        second = lab_support.run_pytest(lab, "ci-second", "-m", "hil", "--rig", "labgrid:bench-a", "--dtg-lab-wait",
                                        "1", "--dtg-artifacts", str(tmp_path / "second"), "tests/contract")
        out_second, _ = second.communicate(timeout=120)
        out_first, _ = first.communicate(timeout=900)
    finally:
        lab_support.stop(first)
    print(out_first[-3000:])
    # The second session never shared the bench: it ran nothing, and says in one line who holds the place.
    assert second.returncode != 0 and not lab_support.results(tmp_path / "second"), out_second[-2000:]
    refusal = [line for line in out_second.splitlines() if "not free after 1 s (--dtg-lab-wait)" in line]
    print(refusal[:1])
    assert refusal and "'bench-a' is held by" in refusal[0] and "/ci-first since" in refusal[0], out_second[-2000:]
    # The first ran the contract suite through the lab's network serial ports and adb, and released the place.
    runs = lab_support.results(tmp_path / "first")
    assert runs and {r["rig"] for r in runs.values()} == {"labgrid:bench-a"}, out_first[-3000:]
    lagged = [name for name, r in runs.items() if r.get("outcome") == "ERROR"]
    if lagged:  # a loaded machine: the rig fell behind beyond 5 % (docs/lab.md), never a verdict; the suite stops
        assert all(runs[n]["verdict"].startswith("error: the rig fell behind (") for n in lagged), runs
    else:
        assert sorted(runs) == ["styles_a", "styles_b"] and all(r["passed"] for r in runs.values())
        checks = (ROOT / "tests" / "contract" / "test_contract_suite.py").read_text().count("\ndef test_")
        assert first.returncode == 0 and f"{checks} passed" in out_first, out_first[-3000:]
    assert lab.holder("bench-a") is None
