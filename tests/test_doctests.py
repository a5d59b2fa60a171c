"""Every public docstring example runs."""

from __future__ import annotations

import doctest
import importlib

import pytest

MODULES = ["adl", "adl.engine", "adl.stateless", "adl._io", "adl.errors", "adl.demo", "adl.wealth", "adl.cascade", "adl.scenario", "adl.sweeps", "adl.lots", "adl.severity", "adl.severity_sim", "adl.reporting", "adl.inequality"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name: str) -> None:
    if name == "adl.reporting":   # the report extra
        pytest.importorskip("plotly")
        pytest.importorskip("great_tables")
    result = doctest.testmod(importlib.import_module(name))
    assert result.attempted > 0
    assert result.failed == 0
