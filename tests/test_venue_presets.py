"""Venue fidelity of the presets (docs/model.md §3, §5): BitMEX lights by cumulative quantity,
Bybit's maintenance with the fee to close, the drawdown trigger's cap within one event and
Bybit's per-symbol form, with hand-computed numbers."""

from __future__ import annotations

import polars as pl
import pytest

import adl
from adl.errors import InvalidInputError

WHOLE = dict(qty_decimals=0, price_decimals=0)


def book(rows: list[tuple[int, str, float, float, float]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=["account", "side", "qty", "entry_price", "margin"], orient="row")


# Six longs @ 100 holding 10, 20, 30, 10, 10, 20 at mark 110 (u = 10 per lot). Margins
# q·(110·r − 10) give e/N = r = 0.2, 0.3, ..., 0.7, so the BitMEX score pnl%·N/e = 0.1/r
# falls in row order: the queue is the rows in order.
LONGS = book([
    (1, "long", 10, 100, 120), (2, "long", 20, 100, 460), (3, "long", 30, 100, 1_020),
    (4, "long", 10, 100, 450), (5, "long", 10, 100, 560), (6, "long", 20, 100, 1_340),
])


def test_bitmex_lights_by_cumulative_quantity() -> None:
    out = adl.rank(LONGS, mark=110.0, markets=adl.Market(**WHOLE))
    assert out["rank"].to_list() == [1, 2, 3, 4, 5, 6]
    # Cumulative 10, 30, 60, 70, 80, 100 of 100: lights 6 - ceil(5·cum/100).
    assert out["lights"].to_list() == [5, 4, 3, 2, 2, 1]
    assert out["percentile"].to_list() == [0.1, 0.3, 0.6, 0.7, 0.8, 1.0]
    # By count: 6 - ceil(5·r/6).
    count = adl.rank(LONGS, mark=110.0, markets=adl.Market(**WHOLE), lights="count")
    assert count["lights"].to_list() == [5, 4, 3, 2, 1, 1]
    # Other presets count unless told otherwise.
    assert adl.rank(LONGS, mark=110.0, policy="binance", markets=adl.Market(**WHOLE))["lights"].to_list() == [5, 4, 3, 2, 1, 1]
    # The engine's indicator uses the same method (bitmex: quantity), and can be switched.
    eng = adl.Engine("bitmex", cash_decimals=2, **WHOLE)
    eng.load(LONGS)
    eng.set_marks(110.0)
    assert eng.lights == "quantity"
    assert eng.indicator()["lights"].to_list() == [5, 4, 3, 2, 2, 1]
    eng = adl.Engine("bitmex", cash_decimals=2, lights="count", **WHOLE)
    eng.load(LONGS)
    eng.set_marks(110.0)
    assert eng.indicator()["lights"].to_list() == [5, 4, 3, 2, 1, 1]
    assert adl.Engine.restore(eng.snapshot()).lights == "count"


def test_equal_scores_share_the_end_of_their_group() -> None:
    # Accounts 2 and 3 score exactly the same (custom 5.0): ranks 2 and 3 by account, and
    # by quantity both take the cumulative 60 of 100 → lights 3.
    out = adl.rank(LONGS.with_columns(s=pl.Series([6.0, 5.0, 5.0, 3.0, 2.0, 1.0])), mark=110.0, policy="custom",
                   score="s", markets=adl.Market(**WHOLE), lights="quantity")
    assert out["rank"].to_list() == [1, 2, 3, 4, 5, 6]
    assert out["lights"].to_list() == [5, 3, 3, 2, 2, 1]


def test_bybit_maintenance_includes_the_fee_to_close() -> None:
    # Long 10 @ 100 margin 100, MMR 0.5 %, fee 1 % in the bankruptcy price: fee to close
    # ceil(0.01·900/0.99) = 9.10, P_bk = 90.91. At 90.9 the equity is 9.00 (bankrupt once the
    # fee is reserved); maintenance 4.55 alone would not liquidate it, 4.55 + 9.10 = 13.65 does.
    eng = adl.Engine(maintenance_rate=0.005, liquidation_fee=0.01, fee_convention="bankruptcy", cash_decimals=2,
                     qty_decimals=0, price_decimals=1)
    eng.load(book([(1, "long", 10, 100, 100), (2, "short", 10, 100, 1_000)]))
    eng.set_marks(90.9)
    row = eng.liquidatable().row(0, named=True)
    assert (row["account"], row["equity"], row["maintenance"], row["bankruptcy_price"]) == (1, 9.0, 13.65, 90.91)
    # Liquidation price (1,000 - 90.90)/(10·0.995) = 91.3668, above P_bk.
    assert row["liquidation_price"] == pytest.approx(909.1 / 9.95, abs=1e-9)


def drawdown_engine(trigger: str, rows: list[tuple[int, str, float, float, float]], **kw: object) -> adl.Engine:
    # Whole units; longs at 10 with margin = size (P_bk 9) at mark 8: a deficit of 1 per lot.
    eng = adl.Engine(insurance_fund=1_000_000.0, trigger=trigger, cash_decimals=0, **WHOLE, **kw)  # type: ignore[arg-type]
    eng.load(book([*rows, (90, "short", 1_000_000, 10, 1_000_000)]))
    eng.set_marks(8.0, ts=0)
    return eng


def test_drawdown_pays_down_to_minus_30_percent_within_one_event() -> None:
    # Bybit's example: a 350K loss against a 1M fund at its 8 h maximum: the fund pays 300K,
    # ADL covers 50K, and the trigger arms.
    eng = drawdown_engine("drawdown", [(1, "long", 350_000, 10, 350_000)])
    res = eng.liquidate(1, side="long", force=True)
    assert (res.from_fund, res.external_qty, res.adl_qty, res.bad_debt) == (300_000.0, 300_000.0, 50_000.0, 0.0)
    assert eng.insurance_fund == 700_000.0
    assert eng.adl_state().armed
    # fund_empty pays it all.
    eng = drawdown_engine("fund_empty", [(1, "long", 350_000, 10, 350_000)])
    assert eng.liquidate(1, side="long", force=True).from_fund == 350_000.0


def test_symbol_drawdown_only_above_the_minimum_balance() -> None:
    # One symbol: its room is its own drawdown + 30 % of the pool's 8 h maximum (1M) = 300K,
    # as above; with a minimum balance of 2M the pool (1M) is below it and pays all 350K.
    rows = [(1, "long", 350_000, 10, 350_000)]
    eng = drawdown_engine("symbol_drawdown", rows, trigger_min_balance=0.0)
    res = eng.liquidate(1, side="long", force=True)
    assert (res.from_fund, res.adl_qty) == (300_000.0, 50_000.0)
    assert eng.adl_state() == adl.AdlState(trigger="symbol_drawdown", state="armed", armed=True, level=-0.3)
    eng = drawdown_engine("symbol_drawdown", rows, trigger_min_balance=2_000_000.0)
    assert eng.liquidate(1, side="long", force=True).from_fund == 350_000.0


def test_bad_fidelity_options_name_the_field() -> None:
    with pytest.raises(InvalidInputError, match="lights") as e:
        adl.Engine(lights="moon")  # type: ignore[arg-type]
    assert e.value.field == "lights"
    with pytest.raises(InvalidInputError, match="lights"):
        adl.rank(LONGS, mark=110.0, lights="moon")  # type: ignore[arg-type]
    with pytest.raises(InvalidInputError) as e:
        adl.Engine(trigger="drawdown", trigger_min_balance=5.0)
    assert e.value.field == "trigger_min_balance"
    with pytest.raises(InvalidInputError) as e:
        adl.Engine(trigger="symbol_drawdown", trigger_min_balance=-1.0)
    assert e.value.field == "trigger_min_balance"
