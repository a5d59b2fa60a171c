"""The fill log: read after a cursor (`events(since=)`), drained (`drain_events`) or switched
off (`keep_fills`), as logged state that snapshots and replays carry, with results unchanged."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
import workload
from conftest import book

import adl

# Two longs to liquidate against three shorts of 10, 20 and 30 lots (whole lots and ticks).
ROWS = [(1, "long", 10.0, 100.0, 44.0), (2, "long", 12.0, 100.0, 50.0),
        (3, "short", 10.0, 100.0, 500.0), (4, "short", 20.0, 100.0, 500.0), (5, "short", 30.0, 100.0, 500.0)]


def pro_rata(**kwargs: object) -> adl.Engine:
    eng = adl.Engine("size_pro_rata", cash_decimals=2, qty_decimals=0, price_decimals=0, **kwargs)  # type: ignore[arg-type]
    eng.load(book(ROWS))
    eng.set_marks(96.0)
    return eng


def liquidate_both(eng: adl.Engine) -> list[adl.LiquidationResult]:
    return [eng.liquidate(1, side="long", fill_price=95.0), eng.liquidate(2, side="long", fill_price=95.0)]


def test_events_since_a_cursor_and_drains_up_to_one() -> None:
    eng = pro_rata()
    liquidate_both(eng)
    # Event 0: 10 lots over 10:20:30 (Σ 60) -> 1.67, 3.33, 5 -> floors 1, 3, 5 and the lot
    # left to the largest remainder (.67, account 3): 2, 3, 5. Event 1: 12 lots over what is
    # left, 8:17:25 (Σ 50) -> 1.92, 4.08, 6 -> 1, 4, 6 and one to .92 (account 3): 2, 4, 6.
    rows = [(0, 3, 2.0), (0, 4, 3.0), (0, 5, 5.0), (1, 3, 2.0), (1, 4, 4.0), (1, 5, 6.0)]
    assert eng.events().select("event", "account", "qty").rows() == rows
    assert eng.events(since=1).select("event", "account", "qty").rows() == rows[3:]
    assert eng.events(since=2).height == 0 and eng.events(since=2).columns == eng.events().columns
    assert eng.drained_upto == 0
    assert eng.drain_events(upto=1) == 3
    assert eng.events().select("event", "account", "qty").rows() == rows[3:]
    assert eng.events(since=0).equals(eng.events(since=1))   # drained records are gone for every cursor
    assert eng.drained_upto == 1
    # A cursor below the last one drops nothing more and does not move back.
    assert eng.drain_events(upto=0) == 0 and eng.drained_upto == 1
    assert eng.drain_events(upto=2) == 3 and eng.events().height == 0 and eng.drained_upto == 2


def test_a_cursor_past_the_next_event_is_refused_and_changes_nothing(tmp_path: Path) -> None:
    eng = pro_rata()
    eng.log_to(tmp_path / "ops.log")
    liquidate_both(eng)
    before, logged = eng.snapshot(), eng.log_status
    with pytest.raises(adl.InvalidInputError, match="past the next event id 2") as e:
        eng.drain_events(upto=3)
    assert e.value.field == "upto"
    for bad, field in ((-1, "upto"), (True, "upto"), (1.0, "upto")):
        with pytest.raises(adl.InvalidInputError) as e:
            eng.drain_events(upto=bad)  # type: ignore[arg-type]
        assert e.value.field == field
    with pytest.raises(adl.InvalidInputError) as e:
        eng.events(since=-1)
    assert e.value.field == "since"
    with pytest.raises(adl.InvalidInputError) as e:
        eng.keep_fills = 0  # type: ignore[assignment]
    with pytest.raises(adl.InvalidInputError):
        adl.Engine(keep_fills="no")  # type: ignore[arg-type]
    assert eng.snapshot() == before and eng.log_status == logged   # and nothing was logged


def test_results_do_not_depend_on_keeping_fills() -> None:
    kept, off = pro_rata(), pro_rata(keep_fills=False)
    assert (kept.keep_fills, off.keep_fills) == (True, False)
    for a, b in zip(liquidate_both(kept), liquidate_both(off)):
        assert a.fills.equals(b.fills) and a.events == b.events
    assert kept.totals() == off.totals()
    assert kept.positions().equals(off.positions()) and kept.accounts().equals(off.accounts())
    assert kept.events().height == 6 and off.events().height == 0
    assert kept.fund_history().equals(off.fund_history())


def test_switching_mid_run_keeps_what_was_held_and_records_from_then_on() -> None:
    eng = pro_rata()
    eng.liquidate(1, side="long", fill_price=95.0)
    eng.keep_fills = False
    assert eng.config is not None and eng.config.keep_fills is False   # the option as it now is
    eng.liquidate(2, side="long", fill_price=95.0)
    assert eng.events()["event"].to_list() == [0, 0, 0]    # event 1 kept no records
    eng.keep_fills = True
    eng.set_marks(104.0)                                      # now the shorts are in trouble
    res = eng.liquidate(3, side="short", force=True)
    assert eng.events(since=2).equals(res.fills)


def test_the_switch_and_the_cursor_survive_snapshots_and_replay(tmp_path: Path) -> None:
    path = tmp_path / "ops.log"
    eng = pro_rata()
    eng.log_to(path)
    eng.liquidate(1, side="long", fill_price=95.0)
    eng.drain_events(upto=1)
    eng.keep_fills = False
    eng.liquidate(2, side="long", fill_price=95.0)
    assert eng.log_status == {"logged": 4, "durable": 4}
    for other in (adl.Engine.restore(eng.snapshot()), adl.Engine.replay(path)):
        assert other.snapshot() == eng.snapshot()
        assert (other.keep_fills, other.drained_upto, other.events().height) == (False, 1, 0)
    again = adl.Engine.replay(path)
    assert again.replay_info == {"ops": 4, "dropped_bytes": 0}
    # The replayed engine goes on as the original does: no records until switched on.
    eng.keep_fills = again.keep_fills = True
    eng.set_marks(104.0)
    again.set_marks(104.0)
    a, b = eng.liquidate(3, side="short", force=True), again.liquidate(3, side="short", force=True)
    assert a.fills.equals(b.fills) and eng.events().equals(again.events()) and eng.snapshot() == again.snapshot()


def test_draining_as_a_workload_runs_keeps_the_same_ledgers_and_replays(tmp_path: Path) -> None:
    """The crash test's workload with a reader that drains after every operation: the engine
    holds no record it has handed out, and its ledgers and positions are the undrained one's."""
    plain, drained = workload.new_engine(), workload.new_engine()
    drained.log_to(tmp_path / "ops.log", sync="none")
    ops_plain, ops_drained = workload.operations(plain, seed=5), workload.operations(drained, seed=5)
    cursor, shipped = 0, []
    for _ in range(150):
        assert next(ops_plain) == next(ops_drained)
        new = drained.events(since=cursor)
        if new.height:
            shipped.append(new)
            cursor = new["event"].max() + 1
        drained.drain_events(upto=cursor)
        assert drained.events().height == 0
    assert cursor > 5, "the workload liquidated"
    assert pl.concat(shipped).equals(plain.events())   # every record read exactly once
    assert drained.totals() == plain.totals() and drained.positions().equals(plain.positions())
    drained.sync()
    assert adl.Engine.replay(tmp_path / "ops.log").snapshot() == drained.snapshot()
