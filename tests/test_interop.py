"""Real data in: pandas, pyarrow and dict tables, buy/sell sides."""

from __future__ import annotations

import pandas as pd
import polars as pl
import pyarrow as pa
import pytest

import adl

COLUMNS = {"account": [1, 2, 3], "side": ["long", "short", "short"], "qty": [30.0, 10.0, 25.0],
           "entry_price": [100.0, 100.0, 100.0], "margin": [60.0, 20.0, 60.0]}


@pytest.mark.parametrize("make", [pl.DataFrame, pd.DataFrame, pa.table, dict, lambda c: pl.DataFrame(c).lazy()],
                         ids=["polars", "pandas", "pyarrow", "dict", "lazy"])
def test_every_table_kind_gives_the_same_answer(make: object) -> None:
    table = make(COLUMNS)  # type: ignore[operator]
    ranked = adl.rank(table, mark=96.0)
    assert ranked.equals(adl.rank(pl.DataFrame(COLUMNS), mark=96.0))
    eng = adl.Engine(qty_decimals=0, price_decimals=0, cash_decimals=2)
    eng.load(table)
    eng.set_marks(96.0)
    # Long 30 @100 m60 at 96: e = -60, P_bk = 98; shorts #2 (rank 1, 10) and #3 (20 of 25).
    res = eng.liquidate(1, side="long")
    assert res.fills.select("account", "qty").rows() == [(2, 10.0), (3, 20.0)]


def test_buy_and_sell_are_sides() -> None:
    book = pl.DataFrame({**COLUMNS, "side": ["BUY", "sell", "Sell"]})
    # rank ranks the sells as shorts and returns the sides as the one side Enum.
    assert adl.rank(book, mark=96.0)["rank"].equals(adl.rank(pl.DataFrame(COLUMNS), mark=96.0)["rank"])
    fills = adl.deleverage(book, mark=96.0, side="buy", qty=30.0, price=98.0)
    assert fills["account"].to_list() == [2, 3]


def test_an_unreadable_object_names_what_it_got() -> None:
    with pytest.raises(adl.SchemaError, match=r"expected a table .* got builtins.list"):
        adl.rank([1, 2, 3], mark=96.0)  # type: ignore[arg-type]
    with pytest.raises(adl.SchemaError, match="positions"):
        adl.rank({"account": [1, 2], "qty": [1.0]}, mark=96.0)


def test_marks_as_a_symbol_mark_table() -> None:
    book = pl.DataFrame({**COLUMNS, "symbol": ["BTC", "BTC", "ETH"]})
    marks = pd.DataFrame({"symbol": ["ETH", "BTC"], "mark": [3_000.0, 96.0]})
    assert adl.rank(book, mark=marks).equals(adl.rank(book, mark={"BTC": 96.0, "ETH": 3_000.0}))
    with pytest.raises(adl.InvalidInputError) as info:
        adl.rank(book, mark=pl.DataFrame({"symbol": ["BTC", "BTC"], "mark": [1.0, 2.0]}))
    assert (info.value.field, info.value.row) == ("symbol", 1)


def test_string_account_ids_and_the_input_symbol_dtype_survive() -> None:
    # Same book as COLUMNS with ids "carol" < "dave" < "erin" in the same order as 1 < 2 < 3.
    book = pl.DataFrame({**COLUMNS, "account": ["carol", "dave", "erin"]}).with_columns(
        symbol=pl.lit("BTC").cast(pl.Categorical))
    fills = adl.deleverage(book, mark=96.0, side="long", qty=30.0, price=98.0)
    assert fills.select("account", "qty").rows() == [("dave", 10.0), ("erin", 20.0)]
    assert fills.schema["symbol"] == pl.Categorical
    assert fills.join(book, on=["account", "symbol"]).height == 2   # joins back to the book
    ranked = adl.rank(book, mark=96.0)
    assert ranked["rank"].to_list() == adl.rank(pl.DataFrame(COLUMNS), mark=96.0)["rank"].to_list()
    eng = adl.Engine()   # the engine maps them too (tests/test_ids.py)
    eng.load(book)
    assert eng.positions().schema["account"] == pl.String and eng.positions().schema["symbol"] == pl.Categorical
