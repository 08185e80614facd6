"""The README and the docs site hang together: every page is in the nav, no link is broken.

``mkdocs build --strict`` (run by ``.ci/run``, and here where mkdocs is installed)
is the full check; the two tests before it need nothing but the standard
library, so a missing page or a broken README link fails even without the
``docs`` extra.
"""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys

import pytest

from helpers import ROOT

LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")


def nav_pages() -> set[str]:
    """The pages named in mkdocs.yml's nav (``- Title: page.md`` lines)."""
    text = (ROOT / "mkdocs.yml").read_text()
    return set(re.findall(r"^\s*-\s[^\n]*?:\s*([\w./-]+\.md)\s*$", text, flags=re.M))


def test_every_docs_page_is_in_the_nav_and_every_nav_entry_exists():
    pages = {p.relative_to(ROOT / "docs").as_posix() for p in (ROOT / "docs").rglob("*.md")}
    nav = nav_pages()
    assert pages - nav == set(), f"docs pages missing from mkdocs.yml's nav: {sorted(pages - nav)}"
    assert nav - pages == set(), f"mkdocs.yml's nav names pages that do not exist: {sorted(nav - pages)}"


def test_the_readme_links_resolve():
    readme = (ROOT / "README.md").read_text()
    targets = [t for t in LINK.findall(readme) if not re.match(r"[a-z]+:", t)]
    assert targets, "the README links to its docs"
    missing = [t for t in targets if not (ROOT / t).exists()]
    assert missing == [], f"README.md links to missing files: {missing}"


def test_the_readme_is_short():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 250


@pytest.mark.skipif(importlib.util.find_spec("mkdocs") is None,
                    reason="mkdocs is not installed (the docs extra); .ci/run installs it")
def test_mkdocs_build_strict_passes(tmp_path):
    done = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                          cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
