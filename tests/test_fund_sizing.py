"""Sweeps over the user's own book and price paths, and the fund-sizing answer (hand-computed)."""

from __future__ import annotations

import polars as pl
import pytest

import adl

# Long 10 @100 m20 and a short that absorbs it; whole lots and ticks, no slippage.
BOOK = pl.DataFrame({"account": [1, 2], "side": ["long", "short"], "qty": [10.0, 10.0],
                     "entry_price": [100.0, 100.0], "margin": [20.0, 200.0]})
KW = dict(liquidation=adl.Slippage(0.0), qty_decimals=0, price_decimals=0, cash_decimals=2)


def path(to: float) -> pl.DataFrame:
    return pl.DataFrame({"ts": [0, 1], "symbol": ["default"] * 2, "mark": [100.0, to]})


def test_the_smallest_fund_that_keeps_adl_below_the_target() -> None:
    # At 90 the long's deficit is 20 - 100 = -80: a fund of 80 covers all 10 lots (8 each),
    # 79 covers 9 and ADL takes the last. At 95 the deficit is 30: 79 is enough.
    # P(ADL or bad debt) over the two paths: fund 0 -> 1, 79 -> 1/2, 80 -> 0, 1,000 -> 0.
    paths = {"gap 10 %": path(90.0), "gap 5 %": path(95.0)}
    answer = adl.size_fund(BOOK, paths, funds=[1_000.0, 80.0, 79.0, 0.0], max_probability=0.5, **KW)
    assert answer.table.select("insurance_fund", "runs", "adl_runs", "probability").rows() == [
        (0.0, 2, 2, 1.0), (79.0, 2, 1, 0.5), (80.0, 2, 0, 0.0), (1_000.0, 2, 0, 0.0)]
    assert answer.fund == 80.0
    assert adl.size_fund(BOOK, paths, funds=[0.0, 79.0, 80.0], max_probability=0.6, **KW).fund == 79.0
    assert adl.size_fund(BOOK, paths, funds=[0.0, 79.0], max_probability=0.5, **KW).fund is None
    with pytest.raises(adl.InvalidInputError):
        adl.size_fund(BOOK, paths, funds=[], **KW)


def test_a_sweep_over_the_users_book_labels_each_run() -> None:
    runs = adl.scenario_grid(book=BOOK, paths={"a": path(90.0), "b": path(95.0)}, insurance_fund=[0.0, 80.0],
                             liquidation=[adl.Slippage(0.0)], qty_decimals=[0], price_decimals=[0], cash_decimals=[2])
    table = adl.sweep(runs, ["bitmex", "size_pro_rata"], workers=2)
    assert table.select("scenario_path", "scenario_insurance_fund", "policy").rows()[:3] == [
        ("a", 0.0, "bitmex"), ("a", 0.0, "size_pro_rata"), ("a", 80.0, "bitmex")]
    # The user's data never lands in the table; each run equals a single simulation.
    assert "scenario_book" not in table.columns and "scenario_prices" not in table.columns
    one = adl.simulate(BOOK, path(95.0), policy="size_pro_rata", insurance_fund=0.0, keep_fills=False, **KW).summary
    row = table.filter((pl.col("scenario_path") == "b") & (pl.col("scenario_insurance_fund") == 0.0)
                       & (pl.col("policy") == "size_pro_rata"))
    assert row.select(one.columns).equals(one)
