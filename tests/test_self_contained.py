"""The repository is self-contained: nothing at install, run or test time reads outside it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import adl

ROOT = Path(__file__).resolve().parents[1]


def test_no_tracked_file_reads_outside_the_repository() -> None:
    tracked = subprocess.run(
        ["git", "ls-files", "tests", "python", "rust", "benches", "fuzz", ".ci", "pyproject.toml"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout.split()
    assert tracked, "git ls-files listed nothing"
    offenders = [
        path for path in tracked
        if path.endswith((".py", ".rs", ".toml", ".sh", "run"))
        and any(s in (ROOT / path).read_text(errors="ignore") for s in ("../shared", "parents[2]"))
        and path != "tests/test_self_contained.py"
    ]
    assert offenders == []


def test_the_installed_package_ships_the_10_oct_2025_tables_and_their_license() -> None:
    data = Path(adl.__file__).resolve().parent / "data" / "hl_oct10"
    assert (data / "LICENSE.upstream-MIT").read_text().startswith("MIT License")
    assert (data / "policy_per_wave_metrics.csv").stat().st_size > 10_000
