"""The README's API block and the runnable examples in examples/ run as written (each checks
its own hand-computed numbers with asserts)."""

from __future__ import annotations

import re
import runpy
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_the_readme_api_block_runs_as_written() -> None:
    text = (ROOT / "README.md").read_text()
    block = re.search(r"## The API\n\n```python\n(.*?)```", text, re.S)
    assert block is not None
    exec(compile(block.group(1), "README.md", "exec"), {})


@pytest.mark.parametrize("example", sorted(p.name for p in (ROOT / "examples").glob("*.py")))
def test_example_runs(example: str) -> None:
    runpy.run_path(str(ROOT / "examples" / example), run_name="__main__")
