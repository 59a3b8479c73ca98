"""Shared fixtures of the kernel's own tests (the kernel test kit itself comes from mes_kernel.testing)."""

from __future__ import annotations

import importlib
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

SAMPLES = Path(__file__).parent / "sample_plugins"


@pytest.fixture(scope="session")
def third_party_dir() -> Path:
    """The sample third-party plugins, pip-installed from their own directories into a private target.

    Not under pytest's numbered temp dirs: other pytest runs on the machine rotate those away.
    """
    target = Path(tempfile.mkdtemp(prefix="mes-third-party-"))
    # built from private copies: setuptools writes build/ and *.egg-info into the source folder, and
    # the pytest processes of `make test` (xdist) build these at the same moment
    sources = Path(tempfile.mkdtemp(prefix="mes-third-party-src-"))
    copies = []
    for p in sorted(SAMPLES.iterdir()):
        if (p / "pyproject.toml").exists():
            copies.append(sources / p.name)
            shutil.copytree(p, copies[-1], ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target", str(target),
         *(str(c) for c in copies)],
        check=True,
    )
    shutil.rmtree(sources, ignore_errors=True)
    yield target
    shutil.rmtree(target, ignore_errors=True)


@pytest.fixture
def third_party(third_party_dir, monkeypatch) -> Path:
    """Make the sample plugins visible to entry-point discovery for one test."""
    monkeypatch.syspath_prepend(str(third_party_dir))
    importlib.invalidate_caches()
    return third_party_dir
