"""Real data in, part two: string account ids in the engine (mapped and mapped back, through
snapshots and logs), datetime timestamps, column mappings and marks tables."""

from __future__ import annotations

import datetime as dt
import pickle
import zoneinfo
from pathlib import Path

import numpy as np
import pandas as pd
import polars as pl
import pytest

import adl

ALICE, BOB, CAROL = "5f0c6d2e-8a51-4c1e-9d0b-2f7f1a3c9e01", "b3e1f7a4-0c2d-4e9b-8f61-7a5d3c2b1e02", "carol"


def book(ids: list[object] | None = None) -> pl.DataFrame:
    """Long 10 @100 with 44 margin (bankrupt at 100 - 44/10 = 95.6) and short 10 @100 with 500."""
    return pl.DataFrame({"account": ids or [ALICE, BOB], "side": ["long", "short"], "qty": [10.0, 10.0],
                         "entry_price": [100.0, 100.0], "margin": [44.0, 500.0]})


@pytest.mark.parametrize("dtype", [pl.String, pl.Categorical, pl.Enum([BOB, ALICE])])
def test_string_ids_go_in_and_come_back_from_every_frame(dtype: pl.DataType) -> None:
    eng = adl.Engine(insurance_fund=0.0)
    eng.load(book().with_columns(pl.col("account").cast(dtype)),
             accounts=pl.DataFrame({"account": [CAROL], "cash": [5.0]}).with_columns(pl.col("account").cast(pl.String)))
    eng.set_marks(96.0)   # long: equity 44 - 40 = 4 < maintenance 0.005 * 960 = 4.8
    assert eng.positions().select("account", "side").rows() == [(ALICE, "long"), (BOB, "short")]
    assert dict(eng.accounts().select("account", "cash").rows()) == {ALICE: 0.0, BOB: 0.0, CAROL: 5.0}
    assert sorted(eng.indicator().select("account", "rank").rows()) == sorted([(ALICE, 1), (BOB, 1)])   # one per side
    assert eng.liquidatable()["account"].to_list() == [ALICE]
    assert eng.preview(side="short", account=BOB)["account"].to_list() == [BOB]
    # Fill at 95 < P_bk 95.6 with an empty fund: ADL closes 10 lots of the short at 95.6.
    res = eng.liquidate(ALICE, side="long", fill_price=95.0)
    assert res.fills.select("bankrupt_account", "account", "qty", "price", "kind").rows() == [
        (ALICE, BOB, 10.0, 95.6, "adl")]
    assert res.cancel_orders["account"].to_list() == [ALICE, BOB]
    assert eng.events().schema["account"] == pl.String and eng.events()["account"].to_list() == [BOB]
    with pytest.raises(adl.UnknownPositionError, match=f"account='{BOB}'"):   # ADL closed it
        eng.close_position(BOB, side="short")


def test_a_string_id_the_engine_does_not_hold_and_core_errors_name_labels() -> None:
    eng = adl.Engine()
    eng.load(book())
    eng.set_marks(96.0)
    with pytest.raises(adl.UnknownPositionError, match="'nobody' is not an account"):
        eng.liquidate("nobody", side="long")
    with pytest.raises(adl.UnknownPositionError) as e:
        eng.liquidate(BOB, side="long")       # BOB holds a short only
    assert f"account='{BOB}'" in str(e.value) and e.value.args[1] == BOB
    with pytest.raises(adl.InvalidInputError, match="account ids are strings"):
        eng.liquidate(1, side="long")


def test_passed_over_and_a_cross_account_by_label() -> None:
    # docs: liquidate_account's example with labels for accounts 1, 2, 3.
    eng = adl.Engine(markets={"X": adl.Market(0, 0, 0.1), "Y": adl.Market(0, 0, 0.06)})
    eng.load(pl.DataFrame({"account": ["u1", "u1", "u2", "u3"], "symbol": ["X", "Y", "X", "Y"],
                           "side": ["long", "short", "short", "long"], "qty": [10.0, 5.0, 10.0, 5.0],
                           "entry_price": [100.0, 200.0, 100.0, 190.0], "margin": [0.0, 0.0, 100.0, 100.0],
                           "margin_mode": ["cross", "cross", "isolated", "isolated"]}),
             accounts=pl.DataFrame({"account": ["u1"], "wallet": [50.0]}))
    eng.set_marks({"X": 90.0, "Y": 200.0})   # TNC = 50 - 100 = -50 against maintenance 90 + 60
    res = eng.liquidate_account("u1")
    assert res.fills.select("symbol", "bankrupt_account", "account", "qty", "price").rows() == [
        ("X", "u1", "u2", 10.0, 93.0), ("Y", "u1", "u3", 5.0, 196.0)]
    assert res.passed_over.schema["account"] == pl.String


def test_liquidate_many_and_upsert_take_labels() -> None:
    eng = adl.Engine()
    eng.load(book())
    # A new label in an upsert gets the next code; known labels keep theirs.
    assert eng.upsert(pl.DataFrame({"account": [CAROL, BOB], "side": ["short", "short"], "qty": [5.0, 10.0],
                                    "entry_price": [100.0, 100.0], "margin": [400.0, 500.0]})) == {
        "inserted": 1, "replaced": 1, "accounts": 0}
    assert eng._core.labels() == [ALICE, BOB, CAROL]
    eng.set_marks(96.0)
    res = eng.liquidate_many(pl.DataFrame({"account": [ALICE], "side": ["long"], "fill_price": [95.0]}))
    assert set(res.fills["account"].to_list()) <= {BOB, CAROL} and res.adl_qty == 10.0
    with pytest.raises(adl.UnknownPositionError, match=r"account\[row 1\]"):
        eng.liquidate_many(pl.DataFrame({"account": [BOB, "ghost"], "side": ["short", "short"]}))


def test_ties_go_to_the_first_loaded_label() -> None:
    # Two identical shorts: equal scores, so the queue orders them by code, i.e. by the order
    # the labels first appeared ("zed" before "amy"), not alphabetically.
    eng = adl.Engine()
    eng.load(pl.DataFrame({"account": ["zed", "amy"], "side": ["short", "short"], "qty": [10.0, 10.0],
                           "entry_price": [100.0, 100.0], "margin": [20.0, 20.0]}))
    eng.set_marks(96.0)
    assert eng.indicator().sort("rank")["account"].to_list() == ["zed", "amy"]


def test_ids_of_two_kinds_are_refused_naming_the_column_and_nothing_changes() -> None:
    ints = adl.Engine()
    ints.load(book([1, 2]))
    with pytest.raises(adl.InvalidInputError) as e:
        ints.upsert(book(["x", "y"]))
    assert e.value.field == "account" and "integers" in str(e.value)
    labelled = adl.Engine()
    labelled.load(book())
    with pytest.raises(adl.SchemaError) as e:
        labelled.upsert(book([1, 2]))
    assert e.value.field == "account"
    with pytest.raises(adl.SchemaError) as e:
        adl.Engine().load(book(), accounts=pl.DataFrame({"account": [3], "cash": [1.0]}))
    assert e.value.field == "accounts.account"
    # A refused load adds no labels: the bad row is refused in Rust after the labels were made.
    bad = book([CAROL, "dave"]).with_columns(qty=pl.Series([1.0, -1.0]))
    with pytest.raises(adl.InvalidInputError, match="qty"):
        labelled.upsert(bad)
    assert labelled._core.labels() == [ALICE, BOB]


def test_save_restore_replay_and_pickle_give_the_same_string_ids(tmp_path: Path) -> None:
    eng = adl.Engine(insurance_fund=0.0)
    eng.log_to(tmp_path / "ops.log")
    eng.load(book(), accounts=pl.DataFrame({"account": [CAROL], "cash": [5.0]}))
    eng.upsert(pl.DataFrame({"account": ["dave"], "side": ["short"], "qty": [1.0], "entry_price": [100.0],
                             "margin": [50.0]}))
    eng.set_marks(96.0, ts=dt.datetime(2025, 10, 10, 21, 15, tzinfo=dt.timezone.utc))
    eng.liquidate(ALICE, side="long", fill_price=95.0)
    eng.save(tmp_path / "engine.adl")
    copies = [adl.Engine.open(tmp_path / "engine.adl"), adl.Engine.restore(eng.snapshot()),
              adl.Engine.replay(tmp_path / "ops.log"), pickle.loads(pickle.dumps(eng))]
    for other in copies:
        assert other._core.labels() == [ALICE, BOB, CAROL, "dave"]
        for frame in ("positions", "accounts", "events", "indicator", "fund_history"):
            assert getattr(other, frame)().equals(getattr(eng, frame)()), frame
    assert copies[2].replay_info == {"ops": 4, "dropped_bytes": 0}
    # A replayed engine keeps mapping: the next label gets the next code.
    again = copies[2]
    again.upsert(pl.DataFrame({"account": ["erin"], "side": ["long"], "qty": [1.0], "entry_price": [100.0],
                               "margin": [50.0]}))
    assert again._core.labels()[-1] == "erin" and "erin" in again.positions()["account"].to_list()


# ----- datetimes --------------------------------------------------------------------------------

PARIS = zoneinfo.ZoneInfo("Europe/Paris")
# 21:15 in Paris on 10 Oct 2025 (UTC+2) is 19:15 UTC: 1_760_123_700 s after the epoch.
T_PARIS = dt.datetime(2025, 10, 10, 21, 15, tzinfo=PARIS)
T_MS = 1_760_123_700_000


@pytest.mark.parametrize(("ts", "zone"), [(T_PARIS, "Europe/Paris"), (T_PARIS.astimezone(dt.timezone.utc), "UTC"),
                                          (pd.Timestamp(T_PARIS), "Europe/Paris"), (np.datetime64(T_MS, "ms"), None)],
                         ids=["zoned", "utc", "pandas", "numpy"])
def test_set_marks_takes_datetimes_and_frames_give_them_back(ts: object, zone: str | None) -> None:
    eng = adl.Engine(insurance_fund=0.0)
    eng.load(book([1, 2]))
    eng.set_marks(96.0, ts=ts)
    eng.liquidate(1, side="long", fill_price=95.0)
    out = eng.events()["ts"]
    assert isinstance(out.dtype, pl.Datetime) and out.dtype.time_unit == "ms"
    assert out.dt.epoch("ms").to_list() == [T_MS]
    assert eng.fund_history()["ts"].dt.epoch("ms").to_list() == [T_MS]
    assert out.dtype.time_zone == zone
    assert adl.Engine.restore(eng.snapshot()).events()["ts"].equals(out)   # the clock is in the snapshot


def test_an_integer_clock_stays_integers() -> None:
    eng = adl.Engine(insurance_fund=0.0)
    eng.load(book([1, 2]))
    eng.set_marks(96.0, ts=5)
    eng.liquidate(1, side="long", fill_price=95.0)
    assert eng.events().schema["ts"] == pl.Int64 and eng.events()["ts"].to_list() == [5]
    with pytest.raises(adl.InvalidInputError, match="ts"):
        eng.set_marks(96.0, ts=dt.date(2025, 1, 1))


def test_simulate_on_a_datetime_path_matches_the_integer_path() -> None:
    # tests/test_simulate.py::test_one_step_by_hand on a path 10 ms apart from T_PARIS.
    positions = pl.DataFrame({"account": ["l", "s2", "s3"], "side": ["long", "short", "short"], "qty": [10.0, 6.0, 6.0],
                              "entry_price": [100.0] * 3, "margin": [50.0, 100.0, 300.0]})
    marks = [100.0, 97.0, 94.0, 90.0]
    ints = pl.DataFrame({"ts": [0, 10, 20, 30], "symbol": ["default"] * 4, "mark": marks})
    times = ints.with_columns(ts=pl.lit(T_PARIS) + pl.duration(milliseconds=pl.col("ts")))
    kw = {"insurance_fund": 0.0, "liquidation": adl.Slippage(0.0), "horizon": 10, "cash_decimals": 2,
          "qty_decimals": 0, "price_decimals": 0}
    a, b = adl.simulate(positions, ints, **kw), adl.simulate(positions, times, **kw)   # type: ignore[arg-type]
    assert b.liquidations.schema["ts"] == pl.Datetime("ms", "Europe/Paris")
    assert b.liquidations.select("ts", "account", "adl_qty").rows() == [(T_PARIS + dt.timedelta(milliseconds=20), "l", 10.0)]
    assert b.fills["ts"].to_list() == [T_PARIS + dt.timedelta(milliseconds=20)] * 2
    assert b.fund["ts"].dt.epoch("ms").to_list() == [T_MS + t for t in (0, 10, 20, 30)]
    assert b.timeline.schema["ts"] == b.fund.schema["ts"]
    assert b.summary.equals(a.summary) and b.accounts.equals(a.accounts)
    assert a.liquidations.drop("ts").equals(b.liquidations.drop("ts"))


def test_crash_path_from_a_datetime() -> None:
    p = adl.crash_path(steps=3, dt=500, noise=0.0, t0=T_PARIS)
    assert p["ts"].dt.epoch("ms").to_list() == [T_MS, T_MS + 500, T_MS + 1000]
    assert p.schema["ts"] == pl.Datetime("ms", "Europe/Paris")


# ----- column mappings and marks tables --------------------------------------------------------


def renamed() -> pl.DataFrame:
    return book([1, 2]).rename({"account": "user", "qty": "size", "entry_price": "entry"})


MAPPING = {"user": "account", "size": "qty", "entry": "entry_price"}


def test_a_column_mapping_on_every_frame_taking_entry_point(tmp_path: Path) -> None:
    plain = adl.rank(book([1, 2]), mark=96.0)
    assert adl.rank(renamed(), mark=96.0, columns=MAPPING).equals(plain)
    fills = adl.deleverage(renamed(), mark=96.0, side="long", qty=10.0, price=95.6, columns=MAPPING)
    assert fills.select("account", "qty").rows() == [(2, 10.0)]
    eng = adl.Engine(insurance_fund=0.0)
    eng.load(renamed(), accounts=pl.DataFrame({"user": [3], "wallet": [1.0]}), columns=MAPPING)
    assert eng.accounts()["account"].to_list() == [1, 2, 3]
    eng.set_marks(96.0)
    res = eng.liquidate_many(pl.DataFrame({"who": [1], "side": ["long"]}), columns={"who": "account"}, force=True)
    assert res.events == [0]
    path = pl.DataFrame({"time": [0, 1], "coin": ["default"] * 2, "px": [100.0, 94.0]})
    sim = adl.simulate(renamed(), path, insurance_fund=0.0, columns={**MAPPING, "time": "ts", "coin": "symbol", "px": "mark"})
    assert sim.liquidations["account"].to_list() == [1]
    renamed().write_csv(tmp_path / "book.csv")
    assert adl.read_positions(tmp_path / "book.csv", columns=MAPPING).equals(book([1, 2]).with_columns(
        pl.col("account").cast(pl.UInt64)))


def test_bad_column_mappings_name_what_is_wrong() -> None:
    with pytest.raises(adl.InvalidInputError, match=r"unknown target\(s\) \['quantity'\]") as e:
        adl.rank(renamed(), mark=96.0, columns={"size": "quantity"})
    assert e.value.field == "columns"
    with pytest.raises(adl.SchemaError, match=r"\['volume'\] is not a column"):
        adl.rank(renamed(), mark=96.0, columns={"volume": "qty"})
    with pytest.raises(adl.SchemaError, match="already has"):
        adl.rank(book([1, 2]).with_columns(size=pl.col("qty")), mark=96.0, columns={"size": "qty"})


def test_read_positions_keeps_uuid_ids_as_strings(tmp_path: Path) -> None:
    book().write_csv(tmp_path / "uuids.csv")
    assert adl.read_positions(tmp_path / "uuids.csv")["account"].to_list() == [ALICE, BOB]
    book([1, 2]).write_csv(tmp_path / "ints.csv")
    assert adl.read_positions(tmp_path / "ints.csv").schema["account"] == pl.UInt64


@pytest.mark.parametrize("make", [pl.DataFrame, pd.DataFrame], ids=["polars", "pandas"])
def test_set_marks_takes_a_marks_table(make: object) -> None:
    eng = adl.Engine(markets={"BTC": adl.Market(), "DOGE": adl.Market()})
    eng.set_marks(make({"symbol": ["BTC", "DOGE"], "mark": [60_000.0, 0.15]}))  # type: ignore[operator]
    assert eng.markets().select("symbol", "mark").rows() == [("BTC", 60_000.0), ("DOGE", 0.15)]
    with pytest.raises(adl.InvalidInputError, match="appears twice"):
        eng.set_marks(pl.DataFrame({"symbol": ["BTC", "BTC"], "mark": [1.0, 2.0]}))


def test_the_readme_real_data_example_runs() -> None:
    import re

    text = (Path(__file__).parent.parent / "README.md").read_text()
    section = text[text.index("## Real data in: string ids"):]
    block = re.search(r"```python\n(.*?)```", section, re.S)
    assert block is not None
    exec(compile(block.group(1), "README.md", "exec"), {})


def test_the_research_allocators_take_string_ids() -> None:
    ints = pl.DataFrame({"account": [1, 2, 3], "lots": [3, 3, 4], "lot_value": [10, 10, 10]})
    named = ints.with_columns(account=pl.Series(["ann", "bea", "cy"]))   # sorted like 1 < 2 < 3
    # B = 50 of U = 100: 1.5, 1.5, 2 lots -> 1, 1, 2; the last lot goes to the lower id of the
    # tied remainders, "ann" as it goes to 1.
    assert adl.lots.contract_pro_rata(named, 50)["closed"].to_list() == [2, 1, 2]
    assert adl.lots.contract_pro_rata(named, 50)["account"].to_list() == ["ann", "bea", "cy"]
    acc = pl.DataFrame({"account": [1, 2, 3], "cash": [0.0, 10.0, 10.0], "pnl": [-30.0, 40.0, 10.0]})
    by_name = adl.allocate(acc.with_columns(account=pl.Series(["ann", "bea", "cy"])), policy="queue", budget=15.0)
    assert by_name["seized"].to_list() == adl.allocate(acc, policy="queue", budget=15.0)["seized"].to_list() == [
        0.0, 15.0, 0.0]


def test_read_prices_reads_datetimes_from_csv(tmp_path: Path) -> None:
    f = tmp_path / "ticks.csv"
    f.write_text("ts,symbol,mark\n2025-10-10T19:15:00Z,BTC,60000.5\n2025-10-10T19:15:00.5Z,BTC,59990.0\n")
    prices = adl.read_prices(f)
    assert prices["ts"].dt.epoch("ms").to_list() == [T_MS, T_MS + 500]   # 19:15 UTC = 21:15 in Paris
    f.write_text("ts,symbol,mark\n5,BTC,1.0\nsoon,BTC,2.0\n")
    with pytest.raises(adl.SchemaError, match=r"ts\[row 1\]: 'soon'") as e:
        adl.read_prices(f)
    assert (e.value.field, e.value.row) == ("ts", 1)


def test_a_report_of_a_run_with_string_ids_and_datetimes(tmp_path: Path) -> None:
    pytest.importorskip("plotly")
    pytest.importorskip("great_tables")
    book = adl.synthetic_book(200, seed=1).with_columns(account=pl.lit("u-") + pl.col("account").cast(pl.String))
    path = adl.crash_path(drop=0.2, steps=50, duration=20, t0=T_PARIS)
    res = adl.simulate(book, path, insurance_fund=0.0)
    assert res.accounts.schema["account"] == pl.String and res.accounts.height > 0
    html = adl.report([res], tmp_path / "r.html").read_text()
    assert res.accounts["account"][0] in html   # the most-hit table shows the label


def test_per_request_reads_take_and_give_labels() -> None:
    eng = adl.Engine()
    eng.load(pl.DataFrame({"account": ["s1", "s2"], "side": ["short", "short"], "qty": [10.0, 10.0],
                           "entry_price": [100.0, 100.0], "margin": [20.0, 60.0]}))
    eng.set_marks(96.0)
    v = eng.position("s2", side="short")      # equity 60 + 10·(100 − 96) = 100, second in the queue
    assert (v.account, v.equity, v.queue.rank if v.queue else None) == ("s2", 100.0, 2)
    a = eng.account("s1")
    assert (a.account, [p.account for p in a.positions]) == ("s1", ["s1"])
    with pytest.raises(adl.UnknownPositionError, match="account='s1'"):
        eng.position("s1", side="long")


def test_threads_adding_new_ids_at_once_keep_every_position_on_its_account() -> None:
    # Two threads each upsert 200 positions under new ids: "a{i}" holds 2 contracts, "b{i}" 3.
    # New ids get codes counted from the label table, so two calls that overlap must not hand
    # out the same codes (that put positions on other accounts).
    import threading

    eng = adl.Engine()
    eng.load(pl.DataFrame({"account": ["seed"], "side": ["long"], "qty": [1.0], "entry_price": [100.0],
                           "margin": [50.0]}))

    def add(prefix: str, qty: float) -> None:
        for i in range(200):
            eng.upsert(pl.DataFrame({"account": [f"{prefix}{i}"], "side": ["short"], "qty": [qty],
                                     "entry_price": [100.0], "margin": [50.0]}))

    threads = [threading.Thread(target=add, args=("a", 2.0)), threading.Thread(target=add, args=("b", 3.0))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    p = eng.positions().filter(pl.col("account") != "seed")
    assert p.height == 400
    want = p["account"].str.slice(0, 1).replace_strict({"a": 2.0, "b": 3.0}, return_dtype=pl.Float64)
    assert (p["qty"] == want).all()
    assert adl.Engine.restore(eng.snapshot()).positions().equals(eng.positions())
