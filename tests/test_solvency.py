"""Issue reproducers for solvency at the ADL price (docs/model.md §2 step 4) and the input
checks that came with it. Hand-computed; whole lots and ticks, cash in cents."""

from __future__ import annotations

import polars as pl
import pytest

import adl


def gapped_engine(**kw: object) -> adl.Engine:
    eng = adl.Engine("bitmex", 0.0, 0.005, cash_decimals=2, qty_decimals=0, price_decimals=0, **kw)  # type: ignore[arg-type]
    eng.load(pl.DataFrame({"account": [1, 2], "side": ["long", "short"], "qty": [10.0, 10.0],
                           "entry_price": [100.0, 88.0], "margin": [20.0, 25.0]}))
    eng.set_marks(90.0)
    return eng


def test_adl_never_pushes_a_solvent_counterparty_below_zero() -> None:
    # Account 2 has equity 25 - 20 = 5 at the mark 90, but at the long's P_bk = 98 it would
    # receive 25 + 10*(88 - 98) = -75. It is passed over; the 10 lots close on the book at 90
    # with their margin 20: 20 - 100 = -80 of bad debt (the fund is empty).
    eng = gapped_engine()
    res = eng.liquidate(1, side="long")
    assert res.fills.select("kind", "qty", "price").rows() == [("bad_debt", 10.0, 90.0)]
    assert (res.adl_qty, res.bad_debt) == (0.0, 80.0)
    assert res.passed_over.select("event", "account", "symbol", "side", "reason").rows() == [
        (0, 2, "default", "short", "beyond_bankruptcy")
    ]
    assert eng.accounts().select("account", "cash", "equity").rows() == [(2, 0.0, 5.0)]


def test_stateless_deleverage_checks_counterparties_at_its_price() -> None:
    book = pl.DataFrame({"account": [2, 3], "side": ["short", "short"], "qty": [10.0, 5.0],
                         "entry_price": [88.0, 99.0], "margin": [25.0, 10.0]})
    # Queue (pnl% x leverage): #3 a winner first, #2 a loser (88 < 90) second.
    # At 98: #3 receives 10 + 5*1 = 15 >= 0; #2 would receive 25 - 100 = -75: passed over.
    fills = adl.deleverage(book, mark=90.0, side="long", qty=5.0, price=98.0)
    assert fills.select("account", "qty", "rank").rows() == [(3, 5.0, 1)]
    with pytest.raises(adl.InsufficientLiquidityError) as info:
        adl.deleverage(book, mark=90.0, side="long", qty=10.0, price=98.0)
    assert (info.value.requested, info.value.available, info.value.missing) == (10.0, 5.0, 5.0)
    # At 90 (the mark) both can pay: #3 takes 5, then #2 5.
    assert adl.deleverage(book, mark=90.0, side="long", qty=10.0, price=90.0)["account"].to_list() == [3, 2]


def test_one_scalar_mark_for_several_symbols_is_refused() -> None:
    book = pl.DataFrame({"account": [1, 2], "symbol": ["BTC", "DOGE"], "side": ["long", "short"],
                         "qty": [1.0, 1.0], "entry_price": [60_000.0, 0.15], "margin": [600.0, 1.0]})
    with pytest.raises(adl.InvalidInputError, match="one price for 2 symbols") as info:
        adl.rank(book, mark=60_000.0, markets=adl.Market(3, 5))
    assert info.value.field == "mark"
    with pytest.raises(adl.InvalidInputError, match="mapping symbol -> price"):
        adl.deleverage(book, mark=60_000.0, side="long", qty=1.0, price=59_000.0, symbol="BTC", markets=adl.Market(3, 5))
    ranked = adl.rank(book, mark={"BTC": 60_000.0, "DOGE": 0.15}, markets=adl.Market(3, 5))
    assert ranked.height == 2


def test_inverse_prices_the_grid_cannot_resolve_are_refused() -> None:
    # 1/41,000 = 2.439e-5 is 24 ticks of 1e-6, i.e. 41,666.67: refused. Within 1 bp needs
    # 0.5*P/10^d <= 1e-4, 10^d >= 2.05e8: 9 decimals.
    eng = adl.Engine(cash_decimals=8, qty_decimals=0, price_decimals=6, inverse=True)
    before = eng.positions()
    with pytest.raises(adl.AdlError, match="price_decimals must be at least 9") as info:
        eng.load(pl.DataFrame({"account": [1], "side": ["long"], "qty": [100.0], "entry_price": [41_000.0],
                               "margin": [0.001]}))
    assert (info.value.field, info.value.row) == ("entry_price", 0)
    assert eng.positions().equals(before)
    fine = adl.Engine(cash_decimals=10, qty_decimals=0, price_decimals=9, inverse=True)
    fine.load(pl.DataFrame({"account": [1], "side": ["long"], "qty": [100.0], "entry_price": [41_000.0],
                            "margin": [0.001]}))
    # A mark or a fill price is checked the same way (100 is 10,000 ticks: exact).
    eng.load(pl.DataFrame({"account": [1], "side": ["long"], "qty": [100.0], "entry_price": [100.0], "margin": [0.5]}))
    with pytest.raises(adl.AdlError, match="price_decimals must be at least 9") as info:
        eng.set_marks(41_000.0)
    assert info.value.field == "mark"
