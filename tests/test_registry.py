"""The registry: entry points, --plugin files, duplicates, broken plugins, lazy imports."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from softmax_bench import Backend, BackendError, load_backends
from softmax_bench.core.registry import RegistryWarning

from helpers import plugin, run_console

BUILTINS = {"naive", "max-shift", "online", "lse", "torch-fused", "jax", "cupy"}


def _softmax(x, axis=-1):
    return x


def test_builtins_come_through_the_entry_point():
    registry = load_backends()
    assert BUILTINS <= set(registry.names())
    for name in BUILTINS:
        assert registry.get(name).origin.startswith("entry point builtins")


@pytest.mark.parametrize(
    "fields, named",
    [
        ({"name": "Bad Name"}, "name"),
        ({"name": ""}, "name"),
        ({"library": "tensorflow"}, "library"),
        ({"devices": ("tpu",)}, "devices"),
        ({"devices": ()}, "devices"),
        ({"dtypes": ("float8",)}, "dtypes"),
        ({"softmax": None}, "softmax"),
        ({"log_softmax": 3}, "log_softmax"),
    ],
)
def test_backend_validation_names_the_field(fields, named):
    base = dict(name="ok", library="numpy", devices=("cpu",), dtypes=("float32",), softmax=_softmax)
    with pytest.raises(BackendError, match=named):
        Backend(**{**base, **fields})


def test_plugin_file_registers_its_backend():
    registry = load_backends([plugin("good_numpy")])
    assert "plugin-good" in registry.names()
    assert registry.unavailable("plugin-good", "cpu") is None


def test_duplicate_name_warns_and_keeps_the_first():
    with pytest.warns(RegistryWarning, match="duplicate backend name 'max-shift'"):
        registry = load_backends([plugin("duplicate_name")])
    kept = registry.get("max-shift")
    assert kept.origin.startswith("entry point")
    x = np.array([[1.0, 2.0, 3.0]])
    assert np.all(kept.softmax(x) > 0)  # the real max-shift, not the plugin's zeros


@pytest.mark.parametrize("name, reason", [("broken_import", "broken on purpose"), ("bad_field", "library='tensorflow'")])
def test_broken_plugin_is_a_warning_not_a_crash(name, reason):
    with pytest.warns(RegistryWarning, match="failed to load"):
        registry = load_backends([plugin(name), plugin("good_numpy")])
    assert any(reason in w for w in registry.warnings)
    assert "plugin-good" in registry.names() and BUILTINS <= set(registry.names())


def test_cli_list_shows_plugins_and_warnings(cli):
    status, out, err = cli("list", "--plugin", plugin("good_numpy"), "--plugin", plugin("broken_import"))
    assert status == 0
    assert "plugin-good" in out and "max-shift" in out
    assert "warning:" in err and "broken on purpose" in err


def test_cli_list_json_reports_availability(cli):
    status, out, _ = cli("list", "--format", "json")
    entries = {e["name"]: e for e in json.loads(out)}
    assert BUILTINS <= set(entries)
    assert entries["max-shift"]["unavailable"] == {"cpu": None}
    cupy_cuda = entries["cupy"]["unavailable"]["cuda"]
    assert cupy_cuda is None or "cupy" in cupy_cuda  # available on a GPU machine, else says why


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["list", "--backend", "nosuch"], "unknown backend 'nosuch'; valid:"),
        (["list", "--format", "xml"], "invalid choice"),
        (["frobnicate"], "invalid choice"),
        (["list", "--plugin", "/no/such/plugin.py"], "no such file"),
    ],
)
def test_bad_arguments_give_one_line_and_exit_2(cli, argv, expected):
    status, out, err = cli(*argv)
    assert status == 2
    assert expected in err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_console_script_lists_builtins():
    proc = run_console("list", entry="softmax-bench")
    assert proc.returncode == 0, proc.stderr
    for name in BUILTINS:
        assert name in proc.stdout


def test_loading_the_registry_imports_no_heavy_library():
    code = textwrap.dedent(
        """
        import sys, softmax_bench
        registry = softmax_bench.load_backends()
        assert len(registry.names()) >= 7
        heavy = [m for m in ("torch", "jax", "cupy", "triton") if m in sys.modules]
        print(",".join(heavy))
        """
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == ""


def test_installed_third_party_package_shows_up(tmp_path):
    """A real package, pip-installed, with one entry point and no change to this repo."""
    pkg = tmp_path / "pkg"
    (pkg / "thirdparty_softmax").mkdir(parents=True)
    (pkg / "thirdparty_softmax" / "__init__.py").write_text(textwrap.dedent(
        """
        import numpy as np
        from softmax_bench import Backend

        def softmax(x, axis=-1):
            e = np.exp(x - x.max(axis=axis, keepdims=True))
            return e / e.sum(axis=axis, keepdims=True)

        def backends():
            return [Backend(name="thirdparty", library="numpy", devices=("cpu",), dtypes=("float64",), softmax=softmax)]
        """
    ))
    (pkg / "pyproject.toml").write_text(textwrap.dedent(
        """
        [build-system]
        requires = ["setuptools"]
        build-backend = "setuptools.build_meta"

        [project]
        name = "thirdparty-softmax"
        version = "1.0"

        [project.entry-points."softmax_bench.backends"]
        thirdparty = "thirdparty_softmax:backends"
        """
    ))
    site = tmp_path / "site"
    install = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index", "--target", str(site), str(pkg)],
        capture_output=True, text=True, timeout=300,
    )
    assert install.returncode == 0, install.stderr
    proc = run_console("list", "--format", "json", env={"PYTHONPATH": str(site)})
    assert proc.returncode == 0, proc.stderr
    entries = {e["name"]: e for e in json.loads(proc.stdout)}
    assert entries["thirdparty"]["origin"] == "entry point thirdparty = thirdparty_softmax:backends"
    assert entries["thirdparty"]["unavailable"] == {"cpu": None}
