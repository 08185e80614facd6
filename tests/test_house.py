"""The house stays one-way: the engine never imports the command layer, and no import cycle exists.

Parsed with ``ast`` (nothing is imported), so the test is cheap and names the
offending import. Also: usage errors give one line and exit 2 through every
way of starting the tool, in a real subprocess.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from helpers import ENTRIES, ROOT, run_console

PACKAGE = ROOT / "bench"
# The command layer: the verbs, the parser that dispatches to them, and the
# drivers that start the tool. Everything else under bench/ is the engine.
COMMAND_LAYER = {"cli", "__main__", "gpu_run"}


def module_name(path: Path, root: Path = PACKAGE) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def is_command(module: str) -> bool:
    return module in COMMAND_LAYER or module == "commands" or module.startswith("commands.")


def import_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    """Module -> the package modules it imports (relative or ``softmax_bench.``), from the source."""
    modules = {module_name(p, root): p for p in root.rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for module, path in modules.items():
        package = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
        package = [p for p in package if p]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package[: len(package) - (node.level - 1)]
                    target = base + (node.module.split(".") if node.module else [])
                elif node.module and node.module.split(".")[0] == "softmax_bench":
                    target = node.module.split(".")[1:]
                else:
                    continue
                for alias in node.names:
                    candidate = ".".join(target + [alias.name])
                    found = candidate if candidate in modules else ".".join(target)
                    if found in modules and found != module:
                        graph[module].add(found)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    parts = alias.name.split(".")
                    if parts[0] == "softmax_bench" and ".".join(parts[1:]) in modules:
                        graph[module].add(".".join(parts[1:]))
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan), each a cycle's members."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                found.append(sorted(group))

    for v in graph:
        if v not in index:
            visit(v)
    return found


def engine_imports_of_commands(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    return sorted((m, t) for m, targets in graph.items() if not is_command(m) for t in targets if is_command(t))


def test_the_package_has_no_import_cycle():
    assert cycles(import_graph()) == []


def test_no_engine_module_imports_the_command_layer():
    graph = import_graph()
    assert any(m.startswith("commands.") for m in graph)  # the layer exists, so the check can bite
    assert engine_imports_of_commands(graph) == []


def test_the_checks_catch_a_cycle_and_an_upward_import(tmp_path):
    # Negative control: a small package with both faults.
    (tmp_path / "commands").mkdir()
    (tmp_path / "commands" / "__init__.py").write_text("")
    (tmp_path / "commands" / "run.py").write_text("from ..timing import measure\n")
    (tmp_path / "timing.py").write_text("from .commands.run import helper\nfrom . import sizes\n")
    (tmp_path / "sizes.py").write_text("from softmax_bench.timing import measure\n")
    graph = import_graph(tmp_path)
    assert cycles(graph) == [["commands.run", "sizes", "timing"]]
    assert engine_imports_of_commands(graph) == [("timing", "commands.run")]


USAGE_ERRORS = [
    (("run", "--sizes", "8y100"), "--sizes item '8y100'"),
    (("check", "--case", "nosuch"), "unknown case 'nosuch'"),
    (("run", "--backend", "nope"), "unknown backend 'nope'"),
    (("run", "--baseline", "nope", "--sizes", "1x8"), "unknown --baseline backend 'nope'"),
    (("check", "--dtype", "float8"), "unknown dtype 'float8'"),
    (("report", "no-such-file.json"), "no-such-file.json: no such file"),
    (("compare", "a.json"), "the following arguments are required"),
    (("nosuchverb",), "invalid choice"),
]


# Every error through the module form that once printed tracebacks (cli.py run as
# __main__ made a second UsageError class), and the two from the bug report through
# every other entry.
STARTS = [("python -m softmax_bench.cli", argv, words) for argv, words in USAGE_ERRORS] + [
    (entry, argv, words) for entry in ENTRIES if entry != "python -m softmax_bench.cli" for argv, words in USAGE_ERRORS[:2]
]


@pytest.mark.parametrize("entry, argv, words", STARTS, ids=[f"{e}: {' '.join(a)}" for e, a, _ in STARTS])
def test_usage_errors_are_one_line_and_exit_2_however_the_tool_is_started(entry, argv, words):
    proc = run_console(*argv, entry=entry, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""
    assert len(proc.stderr.strip().splitlines()) == 1 and words in proc.stderr and "Traceback" not in proc.stderr


def test_every_subpackage_is_installed():
    # A folder of bench/ missing from [tool.setuptools] packages works in an editable
    # install and is absent from a regular one (the Quick start's first line).
    import tomllib

    declared = set(tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    folders = {"softmax_bench." + ".".join(p.parent.relative_to(PACKAGE).parts) for p in PACKAGE.rglob("__init__.py")}
    assert folders - {"softmax_bench."} <= declared and "softmax_bench" in declared
