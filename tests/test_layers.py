"""The house: layers that import downward only, one error root, modules of readable size, docs that name real code.

Every project module is parsed with `ast` (nothing is imported to find the edges), so a back-edge fails here by
name, whether it sits at module level or inside a function. Imports under `if TYPE_CHECKING:` may point anywhere.
"""
from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("harness", "firmware_sim", "training")

#: The layers, lowest first. A module may import modules of its own layer and of the layers below it.
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("core", ("harness.core",)),
    ("wire", ("harness.wire",)),
    ("inference", ("harness.inference",)),
    ("world", ("harness.world",)),
    ("firmware_sim", ("firmware_sim",)),
    ("rig", ("harness.rig",)),
    ("judge", ("harness.judge",)),
    ("report", ("harness.report",)),
    ("run", ("harness.run",)),
    ("tools", ("harness.tools", "training")),
    ("plugin", ("harness.plugin", "harness")),
)
#: The stand-ins for the unit under test may use only these layers of the harness (DESIGN.md, "Layout").
FIRMWARE_SIM_MAY_IMPORT = ("core", "wire", "inference", "firmware_sim")
#: Longest module, in lines (issue 15: "no project module over about 600 lines").
MAX_MODULE_LINES = 600


def layer_of(module: str) -> int:
    """Index into LAYERS of a dotted module name (the longest matching prefix wins)."""
    best, best_len = None, -1
    for index, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best_len:
                best, best_len = index, len(prefix)
    if best is None:
        raise LookupError(f"{module} is in no layer of tests/test_layers.py LAYERS")
    return best


def project_modules(root: Path = ROOT) -> dict[str, Path]:
    modules = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = path.relative_to(root).with_suffix("").parts
            modules[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return modules


def _type_checking_lines(tree: ast.Module) -> set[int]:
    lines = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            for inner in node.body:
                lines.update(range(inner.lineno, inner.end_lineno + 1))
    return lines


def imports_of(module: str, path: Path, known: set[str]) -> list[tuple[int, str]]:
    """(line, imported project module) for every import in the file, function-local ones included."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    skip = _type_checking_lines(tree)
    found = []
    for node in ast.walk(tree):
        if getattr(node, "lineno", None) in skip:
            continue
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
                package = package[:len(package) - (node.level - 1)]
                base = ".".join(package + ([base] if base else []))
            names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base for alias in node.names]
        else:
            continue
        found += [(node.lineno, name) for name in names if name.split(".")[0] in PACKAGES]
    return found


def back_edges(root: Path = ROOT) -> list[str]:
    """Every import that goes up a layer, or out of what firmware_sim may use, as 'file:line: a imports b (...)'."""
    modules = project_modules(root)
    problems = []
    for module, path in modules.items():
        mine = layer_of(module)
        for line, target in imports_of(module, path, set(modules)):
            theirs = layer_of(target)
            where = f"{path.relative_to(root)}:{line}: {module} ({LAYERS[mine][0]}) imports {target} " \
                    f"({LAYERS[theirs][0]})"
            if theirs > mine:
                problems.append(f"{where}: an upward import")
            elif LAYERS[mine][0] == "firmware_sim" and LAYERS[theirs][0] not in FIRMWARE_SIM_MAY_IMPORT:
                problems.append(f"{where}: firmware_sim may import only {', '.join(FIRMWARE_SIM_MAY_IMPORT[:3])}")
    return sorted(problems)


def import_cycles(root: Path = ROOT) -> list[list[str]]:
    """Strongly connected groups of more than one module (or a module importing itself)."""
    modules = project_modules(root)
    graph = {m: {t for _, t in imports_of(m, p, set(modules)) if t in modules and t != m} for m, p in modules.items()}
    index, low, stack, on_stack, groups, counter = {}, {}, [], set(), [], [0]

    def visit(node: str) -> None:  # Tarjan's algorithm
        index[node] = low[node] = counter[0]
        counter[0] += 1
        stack.append(node)
        on_stack.add(node)
        for nxt in graph[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for node in graph:
        if node not in index:
            visit(node)
    return groups


def test_every_import_goes_down_a_layer():
    assert back_edges() == []


def test_no_import_cycle_among_project_modules():
    assert import_cycles() == []


def test_the_layer_check_names_a_back_edge_added_to_a_temporary_module(tmp_path):
    # a copy of the house with one module of the wire layer reaching up into the judge layer
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            target = tmp_path / path.relative_to(ROOT)
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
    assert back_edges(tmp_path) == []
    (tmp_path / "harness" / "wire" / "reaches_up.py").write_text(
        '"""A wire module that must not exist."""\n\n\ndef f():\n    from harness.judge import metrics\n'
        "    return metrics\n", encoding="utf-8")
    (tmp_path / "firmware_sim" / "peeks.py").write_text("import harness.rig.rigfile\n", encoding="utf-8")
    problems = back_edges(tmp_path)
    assert len(problems) == 2, problems
    assert problems[0] == ("firmware_sim/peeks.py:1: firmware_sim.peeks (firmware_sim) imports harness.rig.rigfile "
                           "(rig): an upward import")
    assert problems[1] == ("harness/wire/reaches_up.py:5: harness.wire.reaches_up (wire) imports "
                           "harness.judge.metrics (judge): an upward import")
    (tmp_path / "harness" / "wire" / "reaches_up.py").unlink()
    (tmp_path / "firmware_sim" / "peeks.py").unlink()
    # and a circle inside one layer
    (tmp_path / "harness" / "core" / "ping.py").write_text("from harness.core import pong\n", encoding="utf-8")
    (tmp_path / "harness" / "core" / "pong.py").write_text("def f():\n    import harness.core.ping\n",
                                                           encoding="utf-8")
    assert back_edges(tmp_path) == []
    assert import_cycles(tmp_path) == [["harness.core.ping", "harness.core.pong"]]


def _all_modules() -> list[str]:
    names = []
    for package in PACKAGES:
        names.append(package)
        names += [info.name for info in pkgutil.walk_packages(importlib.import_module(package).__path__,
                                                               prefix=package + ".")
                  if not info.name.endswith("__main__")]
    return names


def test_every_exception_the_project_defines_is_a_dtg_hil_error():
    from harness.core.errors import DtgHilError

    # The fuzzer's time-out is a control-flow signal raised inside the parser under test: it derives from
    # BaseException on purpose, so that a parser's own `except Exception` cannot swallow it.
    defined, outside = 0, []
    for name in _all_modules():
        module = importlib.import_module(name)
        for cls in vars(module).values():
            if inspect.isclass(cls) and issubclass(cls, BaseException) and cls.__module__ == name:
                defined += 1
                qualified = f"{name}.{cls.__name__}"
                fuzz_signal = name.startswith("harness.tools.fuzz") and cls.__name__ == "InputTimeout"
                if not issubclass(cls, DtgHilError) and not fuzz_signal:
                    outside.append(qualified)
    assert defined > 30
    assert outside == []


def test_no_module_is_over_600_lines():
    sizes = {path.relative_to(ROOT).as_posix(): len(path.read_text(encoding="utf-8").splitlines())
             for path in project_modules().values()}
    assert {path: n for path, n in sizes.items() if n > MAX_MODULE_LINES} == {}


DOTTED = re.compile(r"\b((?:harness|firmware_sim|training)(?:\.[A-Za-z_][A-Za-z0-9_]*)+)")


def _doc_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


def _resolves(dotted: str) -> bool:
    """True when `dotted` is a module, or a module followed by attributes it has."""
    parts = dotted.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ModuleNotFoundError:
            continue
        for attr in parts[cut:]:
            if not hasattr(obj, attr):
                return False
            obj = getattr(obj, attr)
        return True
    return False


@pytest.mark.parametrize("doc", _doc_files(), ids=lambda p: p.name)
def test_every_dotted_name_the_docs_mention_imports(doc):
    names = sorted({m.group(1).rstrip(".") for m in DOTTED.finditer(doc.read_text(encoding="utf-8"))})
    assert [n for n in names if not _resolves(n)] == []


@pytest.mark.parametrize("doc", _doc_files(), ids=lambda p: p.name)
def test_every_project_path_the_docs_mention_exists(doc):
    paths = set(re.findall(r"\b((?:harness|firmware_sim|training|tests|scenarios|rigs|models)/[\w./-]*"
                           r"\.(?:py|yaml|yml|json|md|csv|dbc|onnx|blf|asc))\b",
                           doc.read_text(encoding="utf-8")))
    missing = sorted(p for p in paths if not (ROOT / p).exists() and "<" not in p and "*" not in p)
    assert missing == []
