"""The house stays one-way: layers are folders, no import points up a layer, and no import cycle exists.

The layers of ``bench/``, bottom up: the contract (``backend``, ``errors``),
``core/`` (with the package's face), ``measure/``, ``distributed/``,
``report/``, ``commands/`` (with ``cli`` and ``__main__``). A built-in backend
(``backends/``) imports only the contract, as a third-party plugin would; the
asv suites (``suites/``) never the command layer.

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
LAYERS = ("contract", "core", "measure", "distributed", "report", "commands")
# Modules at the package root, and the layer each belongs to ("" is the package's face).
ROOT_MODULES = {"backend": "contract", "errors": "contract", "loss_options": "contract", "": "core", "cli": "commands", "__main__": "commands"}
# What a plugin may import of ours: the public face and the contract.
CONTRACT = {"softmax_bench", "softmax_bench.backend", "softmax_bench.errors", "softmax_bench.loss_options"}
# The collector of the built-ins reads modules the way the registry reads a plugin file.
COLLECTOR_MAY_IMPORT = CONTRACT | {"softmax_bench.core.registry"}


def module_name(path: Path, root: Path = PACKAGE) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def layer(module: str) -> str:
    """The layer of a package module: its folder, or its place at the root."""
    if module in ROOT_MODULES:
        return ROOT_MODULES[module]
    folder = module.split(".")[0]
    assert folder in LAYERS, f"bench/{folder} is in no layer; add it to LAYERS"
    return folder


def upward_imports(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    """(importer, imported) pairs where the imported module sits in a higher layer."""
    rank = {name: i for i, name in enumerate(LAYERS)}
    return sorted((m, t) for m, targets in graph.items() for t in targets if rank[layer(t)] > rank[layer(m)])


def outside_imports(folder: Path) -> dict[str, set[str]]:
    """File -> the ``softmax_bench`` modules it imports, for code outside the package (backends, suites)."""
    found: dict[str, set[str]] = {}
    for path in sorted(folder.rglob("*.py")):
        names = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and not node.level and node.module:
                names.add(node.module)
            elif isinstance(node, ast.Import):
                names.update(alias.name for alias in node.names)
        found[path.name] = {n for n in names if n.split(".")[0] == "softmax_bench"}
    return found


def backend_imports_beyond_the_contract(folder: Path) -> list[tuple[str, str]]:
    return sorted((f, n) for f, names in outside_imports(folder).items() for n in names
                  if n not in (COLLECTOR_MAY_IMPORT if f == "__init__.py" else CONTRACT))


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


def test_the_package_has_no_import_cycle():
    assert cycles(import_graph()) == []


def test_every_module_sits_in_a_layer_and_no_import_points_up():
    graph = import_graph()
    assert {layer(m) for m in graph} == set(LAYERS)  # every layer exists, so the check can bite
    assert upward_imports(graph) == []


def test_backends_import_only_the_contract_and_suites_never_the_commands():
    assert backend_imports_beyond_the_contract(ROOT / "backends") == []
    suites = outside_imports(ROOT / "suites")
    assert any(suites.values())
    assert [(f, n) for f, names in suites.items() for n in names
            if n.startswith(("softmax_bench.commands", "softmax_bench.cli"))] == []


def test_the_checks_catch_a_cycle_an_upward_import_and_a_backend_reaching_in(tmp_path):
    # Negative control: a small package with each fault.
    for folder in ("commands", "measure", "core"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "__init__.py").write_text("")
    (tmp_path / "commands" / "run.py").write_text("from ..measure.timing import measure\n")
    (tmp_path / "measure" / "timing.py").write_text("from ..commands.run import helper\nfrom ..core import sizes\n")
    (tmp_path / "core" / "sizes.py").write_text("from softmax_bench.measure.timing import measure\n")
    graph = import_graph(tmp_path)
    assert cycles(graph) == [["commands.run", "core.sizes", "measure.timing"]]
    assert upward_imports(graph) == [("core.sizes", "measure.timing"), ("measure.timing", "commands.run")]
    plugins = tmp_path / "backends"
    plugins.mkdir()
    (plugins / "mine.py").write_text("from softmax_bench import Backend\nfrom softmax_bench.measure.timing import measure\n")
    (plugins / "__init__.py").write_text("from softmax_bench.core.registry import backends_of_module\n")
    assert backend_imports_beyond_the_contract(plugins) == [("mine.py", "softmax_bench.measure.timing")]


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


def test_each_library_is_one_adapter_module_named_in_the_contract():
    # Adding a library is one module of core/adapters/ plus its name in LIBRARIES: the two must agree.
    import pkgutil

    from softmax_bench import LIBRARIES
    from softmax_bench.core import adapters

    modules = {m.name for m in pkgutil.iter_modules(adapters.__path__)} - {"base"}
    assert modules == set(LIBRARIES)
    assert [adapters.get(library).library for library in LIBRARIES] == list(LIBRARIES)
    with pytest.raises(KeyError, match="valid: numpy, torch"):
        adapters.get("mxnet")
