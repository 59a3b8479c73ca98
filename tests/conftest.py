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
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "--target", str(target),
         *(str(p) for p in sorted(SAMPLES.iterdir()) if (p / "pyproject.toml").exists())],
        check=True,
    )
    yield target
    shutil.rmtree(target, ignore_errors=True)


@pytest.fixture
def third_party(third_party_dir, monkeypatch) -> Path:
    """Make the sample plugins visible to entry-point discovery for one test."""
    monkeypatch.syspath_prepend(str(third_party_dir))
    importlib.invalidate_caches()
    return third_party_dir
