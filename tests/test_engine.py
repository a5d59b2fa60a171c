"""Hand-computed engine cases through the Python API (mark 96, maintenance 0.5 %)."""

from __future__ import annotations

import pickle

import polars as pl
import pytest
from conftest import book, conserved_value, whole_units_engine

import adl


def loaded(rows: list[tuple[int, str, float, float, float]], fund: float = 0.0) -> adl.Engine:
    eng = whole_units_engine(fund)
    eng.load(book(rows))
    eng.set_marks(96.0, ts=1_000)
    return eng


def test_queue_partial_last_fill_losers_after_winners() -> None:
    # Bankrupt long 30 @100 m60: P_bk = 100 - 60/30 = 98. Shorts by score: #2 (0.64),
    # #3 (0.384), #4 (a loser, 20 @95). Fills 10, 10 and 10 of #4's 20, all at 98.
    eng = loaded([(1, "long", 30, 100, 60), (2, "short", 10, 100, 20), (3, "short", 10, 100, 60), (4, "short", 20, 95, 100)])
    before = conserved_value(eng)
    res = eng.liquidate(1, side="long")
    f = res.fills
    assert f.select("account", "side", "qty", "price", "rank", "kind").rows() == [
        (2, "short", 10.0, 98.0, 1, "adl"),
        (3, "short", 10.0, 98.0, 2, "adl"),
        (4, "short", 10.0, 98.0, 3, "adl"),
    ]
    assert f["ts"].to_list() == [1_000] * 3
    assert f["bankrupt_side"].to_list() == ["long"] * 3
    # #2: margin 20 + 10 * (100 - 98) = 40; #3: 60 + 20 = 80; #4: 50 + 10 * (95 - 98) = 20.
    cash = dict(eng.accounts().select("account", "cash").iter_rows())
    assert cash == {2: 40.0, 3: 80.0, 4: 20.0}
    assert eng.positions().select("account", "qty", "margin").rows() == [(4, 10.0, 50.0)]
    assert conserved_value(eng) == before
    assert res.cancel_orders["account"].to_list() == [1, 2, 3, 4]


def test_surplus_goes_to_fund_when_book_pays_above_bankruptcy() -> None:
    eng = loaded([(1, "long", 10, 100, 44), (2, "short", 10, 100, 500)])
    res = eng.liquidate(1, side="long", fill_price=97.0)   # surplus 44 + 10 * (97 - 100) = 14
    assert (res.to_fund, res.from_fund, res.external_qty, res.adl_qty) == (14.0, 0.0, 10.0, 0.0)
    assert eng.insurance_fund == 14.0
    assert res.fills["kind"].to_list() == ["external"]
    assert res.fills["account"].to_list() == [None]


def test_fund_covers_lots_then_adl() -> None:
    # Deficit at 95: 0.60 per lot; fund 3 covers 5 lots; 5 lots ADL at 95.6.
    eng = loaded([(1, "long", 10, 100, 44), (2, "short", 10, 100, 500)], fund=3.0)
    before = conserved_value(eng)
    res = eng.liquidate(1, side="long", fill_price=95.0)
    assert (res.from_fund, res.external_qty, res.adl_qty, res.bad_debt) == (3.0, 5.0, 5.0, 0.0)
    assert res.fills["price"].to_list() == pytest.approx([95.0, 95.6], abs=1e-12)
    assert eng.insurance_fund == 0.0
    assert conserved_value(eng) == before


def test_bad_debt_when_counterparties_run_out() -> None:
    eng = loaded([(1, "long", 10, 100, 44), (2, "short", 2, 100, 100)], fund=3.0)
    res = eng.liquidate(1, side="long", fill_price=95.0)
    assert res.fills.select("kind", "qty").rows() == [("external", 5.0), ("adl", 2.0), ("bad_debt", 3.0)]
    assert res.bad_debt == pytest.approx(1.8, abs=1e-9)
    assert eng.bad_debt == pytest.approx(1.8, abs=1e-9)


def test_hedge_mode_never_self_matches() -> None:
    eng = loaded([(1, "long", 10, 100, 44), (1, "short", 5, 100, 10), (2, "short", 10, 100, 50)])
    res = eng.liquidate(1, side="long", fill_price=95.0)
    assert res.fills.select("account", "rank").rows() == [(2, 2)]


def test_dry_run_changes_nothing_and_matches() -> None:
    eng = loaded([(1, "long", 30, 100, 60), (2, "short", 10, 100, 20), (3, "short", 25, 100, 60)], fund=1.0)
    t0 = eng.totals()
    preview = eng.liquidate(1, side="long", fill_price=95.5, dry_run=True)
    assert eng.totals() == t0 and eng.events().height == 0
    real = eng.liquidate(1, side="long", fill_price=95.5)
    assert preview.fills.equals(real.fills)
    assert (preview.from_fund, preview.adl_qty) == (real.from_fund, real.adl_qty)


def test_liquidatable_worst_first_and_refusal() -> None:
    eng = loaded([(1, "long", 10, 100, 45), (2, "long", 10, 100, 41), (3, "long", 10, 100, 43), (4, "short", 30, 100, 900)])
    # equities 5 (healthy: MM 4.80), 1 and 3.
    assert eng.liquidatable()["account"].to_list() == [2, 3]
    with pytest.raises(adl.NotLiquidatableError):
        eng.liquidate(1, side="long")
    assert eng.liquidate(1, side="long", force=True).to_fund == 5.0


def test_liquidate_many_all_or_nothing() -> None:
    eng = loaded([(1, "long", 10, 100, 44), (2, "long", 10, 100, 44), (3, "short", 30, 100, 900)])
    t0 = eng.totals()
    bad = pl.DataFrame({"account": [1, 9], "side": ["long", "long"]})
    with pytest.raises(adl.UnknownPositionError):
        eng.liquidate_many(bad)
    assert eng.totals() == t0
    twice = pl.DataFrame({"account": [1, 1], "side": ["long", "long"]})
    with pytest.raises(adl.InvalidInputError, match="twice"):
        eng.liquidate_many(twice)
    res = eng.liquidate_many(pl.DataFrame({"account": [1, 2], "side": ["long", "long"], "fill_price": [95.0, None]}))
    assert res.events == [0, 1]
    assert res.fills.select("event", "kind").rows() == [(0, "adl"), (1, "external")]


def test_indicator_ranks_and_notional_ahead() -> None:
    eng = loaded([(1, "short", 10, 100, 20), (2, "short", 10, 100, 60), (3, "short", 10, 90, 10), (4, "long", 1, 90, 5)])
    ind = eng.indicator().sort("symbol", "side", "rank")
    assert ind.select("account", "side", "rank", "lights", "quantile", "notional_ahead").rows() == [
        (4, "long", 1, 1, 0, 0.0),
        (1, "short", 1, 3, 2, 0.0),
        (2, "short", 2, 1, 0, 960.0),
    ]


def test_unknown_market_and_missing_mark() -> None:
    eng = adl.Engine()
    eng.add_market("BTC-PERP")
    eng.load(book([(1, "long", 1, 100, 1)], symbol="BTC-PERP"))
    with pytest.raises(adl.InvalidInputError, match="no mark"):
        eng.liquidate(1, "BTC-PERP", "long")
    with pytest.raises(adl.UnknownMarketError):
        eng.set_marks({"ETH-PERP": 1.0})
    with pytest.raises(adl.InvalidInputError, match="mark"):
        eng.set_marks({"BTC-PERP": float("nan")})


def test_errors_pickle() -> None:
    try:
        adl.rank(book([(1, "long", -1, 100, 1)]), mark=1.0)
    except adl.InvalidInputError as e:
        again = pickle.loads(pickle.dumps(e))
        assert (type(again), again.field, again.row) == (adl.InvalidInputError, "qty", 0)
    else:
        pytest.fail("no error")


def test_redefining_a_market_keeps_its_mark_on_the_new_grid() -> None:
    eng = adl.Engine()
    eng.add_market("BTC-PERP", price_decimals=4)
    eng.set_marks({"BTC-PERP": 96.5})
    eng.add_market("BTC-PERP", price_decimals=1)
    assert eng.markets()["mark"].to_list() == [96.5]
