"""The dtype rules of every frame the library returns, checked on one book: one Enum for
``side`` and one for ``kind``, the input's ``symbol`` and ``account`` dtypes kept (results
join back to the book), null and never NaN for undefined numbers, no column that repeats
another under a second name."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import polars as pl
import pytest

import adl

SIDE_COLUMNS = ("side", "bankrupt_side")
ACCOUNT_COLUMNS = ("account", "bankrupt_account")
DUPLICATES = (("bad_debt", "residual"),)
"""Pairs of names for one number: a frame may have the first, never both."""
READERS = ("read_positions",)
"""Readers return the caller's file as it is (sides as written: "BUY", 1, ...)."""


def the_book(symbol_dtype: pl.DataType, ids: str) -> pl.DataFrame:
    accounts = {"int": [1, 1, 2, 3, 4, 5], "str": ["a1", "a1", "b2", "c3", "d4", "e5"]}[ids]
    return pl.DataFrame({
        "account": accounts,
        "symbol": ["BTC", "ETH", "BTC", "ETH", "BTC", "BTC"],
        "side": ["long", "short", "short", "long", "short", "long"],
        "qty": [1.0, 10.0, 1.0, 10.0, 2.0, 1.0],
        "entry_price": [100.0, 50.0, 100.0, 49.0, 100.0, 100.0],
        "margin": [0.0, 0.0, 10.0, 50.0, 10.0, 5.5],
        "margin_mode": ["cross", "cross", "isolated", "isolated", "isolated", "isolated"],
    }).with_columns(pl.col("symbol").cast(symbol_dtype))


def frames(book: pl.DataFrame, tmp: Path) -> Iterator[tuple[str, pl.DataFrame]]:
    """Every public frame-returning call on ``book``, by name."""
    iso = book.filter(pl.col("margin_mode") == "isolated").drop("margin_mode")
    marks = {"BTC": 95.0, "ETH": 50.0}
    yield "rank", adl.rank(iso, mark=marks)
    yield "deleverage", adl.deleverage(iso, mark=marks, symbol="BTC", side="long", qty=1.0, price=95.0)
    eng = adl.Engine(insurance_fund=0.0, qty_decimals=0, price_decimals=1, cash_decimals=3)
    eng.load(book, accounts=pl.DataFrame({"account": book["account"][:1], "wallet": [30.0]}))
    eng.set_marks(marks, ts=10)
    calls: dict[str, Callable[[], pl.DataFrame]] = {
        "markets": eng.markets, "positions": eng.positions, "liquidatable": eng.liquidatable, "accounts": eng.accounts,
        "indicator": eng.indicator, "funds": eng.funds, "preview": lambda: eng.preview("BTC", "short"),
        "tiers": lambda: eng.tiers("BTC"),
    }
    for name, call in calls.items():
        yield f"Engine.{name}", call()
    res = eng.liquidate(book["account"][5], "BTC", "long", fill_price=94.0, force=True)
    for name in ("fills", "cancel_orders", "passed_over"):
        yield f"LiquidationResult.{name}", getattr(res, name)
    yield "Engine.events", eng.events()
    yield "Engine.fund_history", eng.fund_history()
    path = adl.crash_path(start=marks, drop=0.3, steps=20, duration=10, noise=0.0)
    yield "crash_path", path
    sim = adl.simulate(book, path, insurance_fund=0.0, qty_decimals=0, price_decimals=1, cash_decimals=3,
                       accounts=pl.DataFrame({"account": book["account"][:1], "wallet": [30.0]}))
    for name in ("liquidations", "fills", "fund", "accounts", "summary", "timeline"):
        yield f"SimulationResult.{name}", getattr(sim, name)
    yield "compare", adl.compare(book, path, policies=["bitmex", "size_pro_rata"], insurance_fund=0.0,
                                 qty_decimals=0, price_decimals=1, cash_decimals=3)
    yield "synthetic_book", adl.synthetic_book(10)
    yield "venue_book", adl.venue_book(50).positions
    book.write_parquet(tmp / "book.parquet")
    yield "read_positions", adl.read_positions(tmp / "book.parquet")


@pytest.mark.parametrize("ids", ["int", "str"])
@pytest.mark.parametrize("symbol_dtype", [pl.String(), pl.Categorical(), pl.Enum(["BTC", "ETH"])],
                         ids=["String", "Categorical", "Enum"])
def test_every_frame_follows_the_dtype_rules(symbol_dtype: pl.DataType, ids: str, tmp_path: Path) -> None:
    book = the_book(symbol_dtype, ids)
    seen = []
    for name, df in frames(book, tmp_path):
        seen.append(name)
        schema = df.schema
        for c in SIDE_COLUMNS if name not in READERS else ():
            if c in schema:
                assert schema[c] == adl.SIDE, (name, c, schema[c])
        if "kind" in schema:
            assert schema["kind"] == adl.KIND, (name, schema["kind"])
        floats = [c for c, t in schema.items() if t.is_float()]
        nan = df.select(pl.col(floats).is_nan().any()).row(0) if floats and df.height else ()
        assert not any(nan), (name, [c for c, x in zip(floats, nan) if x])
        for keep, twin in DUPLICATES:
            assert not (keep in schema and twin in schema), (name, twin)
        if "margin_mode" in schema and name not in READERS:
            assert schema["margin_mode"] == pl.Enum(["isolated", "cross"]), (name, schema["margin_mode"])
        if name in ("synthetic_book", "venue_book", "crash_path", "compare"):
            continue   # not built from the book
        if "symbol" in schema:
            assert schema["symbol"] == book.schema["symbol"], (name, schema["symbol"])
        for c in ACCOUNT_COLUMNS:
            if c in schema:
                want = {"int": (pl.UInt64, pl.Int64), "str": (pl.String,)}[ids]
                assert schema[c] in want, (name, c, schema[c])
        keys = [c for c in ("account", "symbol") if c in schema]
        rows = df.drop_nulls(keys) if keys else df.clear()
        if rows.height:   # joins back to the book: every row finds its account and symbol
            assert rows.join(book.select(keys).unique(), on=keys, how="semi").height == rows.height, name
    assert len(seen) == 26
