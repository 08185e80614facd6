"""The numba kernels' on-disk cache lives in the user's cache directory, never in the installed package.

Issue #26: with numba's default (``cache=True`` writes ``*.nbi``/``*.nbc``
next to the source, in ``site-packages/softmax_bench/backends/__pycache__``),
uninstalling a regular install left those files behind, pip kept the
directory, and the leftover ``site-packages/softmax_bench`` (a namespace
package, no ``__init__.py``) shadowed a later editable install: the README's
second Quick start line failed at collection. This test does what a newcomer
does, on a small scale: build the wheel, install it (not editable) into a
fresh environment, run one compiled kernel, uninstall, and look at what is
left where.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
from pathlib import Path

import pytest

from helpers import ROOT

pytestmark = pytest.mark.skipif(
    importlib.util.find_spec("numba") is None,
    reason="numba is not installed (pip install 'softmax-bench[numba]'): no compiled kernel to cache")

# What the wheel is built from (copied, so that the build's build/ and
# *.egg-info never land in the checkout).
SOURCES = ("pyproject.toml", "README.md", "bench", "backends")

KERNEL = textwrap.dedent(
    """
    import numpy as np
    import softmax_bench
    from softmax_bench.backends import numba_kernels

    assert softmax_bench.__file__.startswith({site!r}), softmax_bench.__file__
    backend = next(b for b in numba_kernels.backends if b.name == "numba-2pass")
    x = np.linspace(-3.0, 3.0, 64, dtype=np.float32).reshape(2, 32)
    y = backend.softmax(x)
    assert y.dtype == np.float32 and abs(float(y.sum()) - 2.0) < 1e-5, y
    print("ok")
    """
)


def _run(argv, **kw):
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=300, **kw)
    assert proc.returncode == 0, f"{argv}\n{proc.stdout}\n{proc.stderr}"
    return proc


def _parent_site_paths() -> list[str]:
    """The site-packages directories this interpreter imports numba, numpy and pip from."""
    paths = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    return [p for p in sorted(paths) if os.path.isdir(p)]


def _fresh_env(tmp_path: Path) -> tuple[Path, Path]:
    """A new virtual environment (its python, its site-packages) that sees this
    environment's packages (numba, numpy, pip) after its own.

    ``--system-site-packages`` would give the base interpreter's packages, not
    this virtual environment's; a .pth line adds this one's site-packages as a
    plain path, so its own .pth files (the editable install's finder) are not
    run and ``softmax_bench`` imports only from the new environment.
    """
    env = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", str(env)])
    python = env / ("Scripts/python.exe" if os.name == "nt" else "bin/python")
    site = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                     env=_clean_env(tmp_path)).stdout.strip())
    (site / "_parent_env.pth").write_text("".join(p + "\n" for p in _parent_site_paths()))
    return python, site


def _clean_env(tmp_path: Path, **extra: str) -> dict:
    """The environment of the subprocesses: HOME and XDG_CACHE_HOME under tmp_path,
    nothing that points imports or numba's cache elsewhere."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "NUMBA_CACHE_DIR", "VIRTUAL_ENV", "PIP_TARGET", "PIP_PREFIX")}
    home = tmp_path / "home"
    home.mkdir(exist_ok=True)
    env.update({"HOME": str(home), "XDG_CACHE_HOME": str(tmp_path / "cache"), "PIP_DISABLE_PIP_VERSION_CHECK": "1",
                "PIP_NO_INPUT": "1", **extra})
    return env


def _numba_files(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.suffix in (".nbi", ".nbc")) if root.exists() else []


@pytest.mark.slow
def test_installed_kernels_cache_outside_the_package_and_uninstall_leaves_nothing(tmp_path):
    src = tmp_path / "src"
    for name in SOURCES:
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__", "*.nbi", "*.nbc"))
        else:
            src.mkdir(exist_ok=True)
            shutil.copy2(ROOT / name, src / name)
    wheels = tmp_path / "wheels"
    env = _clean_env(tmp_path)
    _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
          "-w", str(wheels), str(src)], env=env, cwd=tmp_path)
    (wheel,) = wheels.glob("softmax_bench-*.whl")

    python, site = _fresh_env(tmp_path)
    _run([str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", str(wheel)], env=env, cwd=tmp_path)
    package = site / "softmax_bench"
    assert (package / "__init__.py").is_file()

    proc = _run([str(python), "-c", KERNEL.format(site=str(site))], env=env, cwd=tmp_path)
    assert proc.stdout.strip() == "ok", proc.stdout + proc.stderr

    _run([str(python), "-m", "pip", "uninstall", "--yes", "softmax-bench"], env=env, cwd=tmp_path)
    assert not package.exists(), f"left behind after uninstall: {sorted(map(str, package.rglob('*')))}"
    assert not list(site.glob("softmax_bench*")), sorted(map(str, site.glob("softmax_bench*")))

    cached = _numba_files(tmp_path / "cache" / "softmax-bench" / "numba")
    assert {p.suffix for p in cached} == {".nbi", ".nbc"}, (
        f"no numba cache under $XDG_CACHE_HOME/softmax-bench/numba; numba files in {tmp_path}: "
        f"{_numba_files(tmp_path)}")


@pytest.mark.slow
def test_without_a_writable_cache_directory_the_kernels_compile_in_memory_with_one_warning(tmp_path):
    """A read-only home (here: the cache path runs through a regular file, which
    no user, root included, can create a directory under): no error, one
    warning, the kernels run, and numba is told not to cache them at all."""
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    code = textwrap.dedent(
        """
        import numpy as np
        from softmax_bench.backends import numba_kernels, _numba_common

        backend = next(b for b in numba_kernels.backends if b.name == "numba-3pass")
        y = backend.softmax(np.zeros((3, 8), np.float32))
        assert abs(float(y.sum()) - 3.0) < 1e-6, y
        backend.softmax(np.zeros((3, 8), np.float32))
        print(_numba_common.CACHE_DIR, type(_numba_common._drive_shipped._cache).__name__)
        """
    )
    env = _clean_env(tmp_path, XDG_CACHE_HOME=str(blocker / "cache"))
    env.pop("PYTHONWARNINGS", None)
    proc = _run([sys.executable, "-c", code], env=env, cwd=tmp_path)
    assert proc.stdout.split() == ["None", "NullCache"], proc.stdout + proc.stderr
    assert proc.stderr.count("RuntimeWarning: softmax-bench: no on-disk cache for the numba kernels") == 1, proc.stderr
    assert str(blocker / "cache") in proc.stderr
    assert not (tmp_path / "home" / ".cache").exists()
