"""The package type-checks under mypy --strict and its stubs match the compiled module."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], capture_output=True, text=True, cwd=ROOT)


def test_mypy_strict() -> None:
    r = run("mypy", "--strict", "python/adl")
    assert r.returncode == 0, r.stdout + r.stderr


def test_stubs_match_the_extension() -> None:
    r = run("mypy.stubtest", "adl._adl")
    assert r.returncode == 0, r.stdout + r.stderr
