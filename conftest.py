"""This repository's own test hook-up. The dtg-hil plugin itself is the installed package's `pytest11` entry point
(pyproject.toml), as in any folder of a user's; a checkout used without being installed (only on PYTHONPATH) loads
it from here instead."""
from importlib.metadata import entry_points

if not any(entry.value == "harness.plugin" for entry in entry_points(group="pytest11")):
    pytest_plugins = ("harness.plugin",)

#: The longest test files (minutes on the 2-CPU machine), each given to a pytest-xdist worker of its own at the start:
#: `make test` hands out whole files in collection order (`--dist loadfile --no-loadscope-reorder`), and a long file
#: started last would run on alone.
LONGEST_FIRST = ("tests/test_lab_contract.py", "tests/test_training.py", "tests/test_loopback.py",
                 "tests/test_real_stm32.py")


def pytest_collection_modifyitems(config, items) -> None:
    rank = {name: i for i, name in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))  # stable: the rest as collected
