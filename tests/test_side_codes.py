"""Side codes at the binding boundary. The bindings take a side as its code (+1 long, −1
short) and parse it once, before anything runs; a code that is not a side raises the error
the engine raised when it checked sides itself (the field, and row 0 where a single request
is a row), and changes nothing, not even the log."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import polars as pl
import pytest

import adl


def engine() -> adl.Engine:
    eng = adl.Engine(insurance_fund=0.0)
    eng.load(pl.DataFrame({"account": [1, 2], "side": ["long", "short"], "qty": [10.0, 10.0],
                           "entry_price": [100.0, 100.0], "margin": [44.0, 500.0]}))
    eng.set_marks(96.0)
    return eng


def calls(core: Any) -> list[tuple[str, Callable[[], object], int | None]]:
    """(what, a raw call with a bad side code, the row the error names)."""
    many = (np.array([1, 2], np.uint64), np.array([0, 0], np.uint32), np.array([1, 7], np.int8),
            np.array([np.nan, np.nan]), ["default"])
    return [
        ("liquidate", lambda: core.liquidate(1, "default", 3), 0),
        ("close_position", lambda: core.close_position(1, "default", 0), 0),
        ("position_view", lambda: core.position_view(1, "default", 2), 0),
        ("adl_dry_run", lambda: core.adl_dry_run("default", -2, 1.0, 95.0), None),
        ("adl_marks", lambda: core.adl_marks("default", 5, 0.01, 0.5), None),
        ("liquidate_many", lambda: core.liquidate_many(*many), 1),
    ]


@pytest.mark.parametrize("at", range(6))
def test_a_code_that_is_not_a_side_is_refused_by_name_and_changes_nothing(tmp_path: Path, at: int) -> None:
    eng = engine()
    eng.log_to(tmp_path / "ops.log")
    before, log = eng.snapshot(), (tmp_path / "ops.log").read_bytes()
    what, call, row = calls(eng._core)[at]
    with pytest.raises(adl.InvalidInputError) as e:
        call()
    code = {"liquidate": 3, "close_position": 0, "position_view": 2, "adl_dry_run": -2, "adl_marks": 5,
            "liquidate_many": 7}[what]
    where = "side" if row is None else f"side[row {row}]"
    assert str(e.value) == f"{where}: {code} is not a side (expected 1/-1 or long/short)", what
    assert (e.value.field, e.value.row) == ("side", row), what
    assert eng.snapshot() == before, what
    assert (tmp_path / "ops.log").read_bytes() == log, what


def test_both_codes_and_both_names_still_reach_the_engine() -> None:
    eng = engine()
    core = eng._core
    # The raw views give the side back as its code.
    assert core.position_view(1, "default", 1)[:3] == (1, "default", 1)
    assert core.position_view(2, "default", -1)[:3] == (2, "default", -1)
    # The Python API takes names or codes: the long (equity 44 − 40 = 4 < maintenance 4.8)
    # is liquidated against the short either way.
    for side in ("long", 1):
        e = engine()
        out = e.liquidate(account=1, side=side, fill_price=95.0)
        assert out.fills.select("account", "qty").rows() == [(2, 10.0)]
    assert engine().position(2, side="short").qty == engine().position(2, side=-1).qty == 10.0


@pytest.mark.parametrize(("batch", "error", "message"), [
    # An earlier row's own error is reported before a later row's bad side code.
    ({"account": [99, 2], "side": [1, 0]}, adl.UnknownPositionError, "row 0: unknown position (account=99"),
    ({"account": [2, 1], "side": [-1, 7]}, adl.NotLiquidatableError, "row 0: position (account=2"),
    ({"account": [1, 2], "side": [1, 7]}, adl.InvalidInputError, "side[row 1]: 7 is not a side"),
])
def test_a_batch_reports_the_lowest_rows_error_first(batch: dict[str, list[int]], error: type, message: str) -> None:
    eng = engine()
    before = eng.totals()
    with pytest.raises(error) as raised:
        eng.liquidate_many(pl.DataFrame(batch))
    assert str(raised.value).startswith(message)
    assert eng.totals() == before


def test_the_constructor_checks_maintenance_rate_before_the_decimals() -> None:
    for later in ({"cash_decimals": 99}, {"seed": -1}):
        with pytest.raises(adl.InvalidInputError, match="^maintenance_rate: 2.0 is out of range"):
            adl.Engine(maintenance_rate=2.0, **later)
