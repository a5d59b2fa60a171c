"""Bad input raises an adl error naming the field and first bad row, and changes nothing."""

from __future__ import annotations

import math

import polars as pl
import pytest
from conftest import book, whole_units_engine

import adl

GOOD = [(1, "long", 10.0, 100.0, 44.0), (2, "short", 10.0, 100.0, 500.0), (3, "short", 5.0, 99.0, 50.0)]


def with_value(column: str, row: int, value: object) -> pl.DataFrame:
    df = book(GOOD)
    values = df[column].to_list()
    values[row] = value
    return df.with_columns(pl.Series(column, values, dtype=df[column].dtype, strict=False))


CASES = [
    ("qty", 1, float("nan"), adl.InvalidInputError),
    ("qty", 2, 0.0, adl.InvalidInputError),
    ("qty", 1, -3.0, adl.InvalidInputError),
    ("qty", 2, float("inf"), adl.InvalidInputError),
    ("qty", 1, 1e30, adl.InvalidInputError),        # beyond the fixed-point range
    ("entry_price", 2, 0.0, adl.InvalidInputError),
    ("entry_price", 1, float("nan"), adl.InvalidInputError),
    ("margin", 2, -0.01, adl.InvalidInputError),
    ("margin", 1, float("inf"), adl.InvalidInputError),
    ("qty", 1, None, adl.SchemaError),
    ("account", 2, None, adl.SchemaError),
    ("side", 1, "sideways", adl.InvalidInputError),
    ("side", 2, None, adl.SchemaError),
]


@pytest.mark.parametrize(("field", "row", "value", "error"), CASES)
def test_engine_load_rejects_and_keeps_state(field: str, row: int, value: object, error: type[Exception]) -> None:
    eng = whole_units_engine(5.0)
    eng.load(book([(9, "long", 1.0, 10.0, 1.0)]))
    before = (eng.positions(), eng.totals())
    with pytest.raises(error) as info:
        eng.load(with_value(field, row, value))
    assert isinstance(info.value, adl.AdlError)
    assert (info.value.field, info.value.row) == (field, row)  # type: ignore[attr-defined]
    assert f"row {row}" in str(info.value)
    assert eng.positions().equals(before[0]) and eng.totals() == before[1]


@pytest.mark.parametrize(("field", "row", "value", "error"), CASES)
def test_rank_rejects_the_same_rows(field: str, row: int, value: object, error: type[Exception]) -> None:
    with pytest.raises(error) as info:
        adl.rank(with_value(field, row, value), mark=96.0)
    assert (info.value.field, info.value.row) == (field, row)  # type: ignore[attr-defined]


def test_integer_side_codes() -> None:
    df = book(GOOD).with_columns(side=pl.Series([1, -1, 2], dtype=pl.Int8))
    with pytest.raises(adl.InvalidInputError) as info:
        adl.rank(df, mark=96.0)
    assert (info.value.field, info.value.row) == ("side", 2)


def test_missing_column_and_lossy_dtypes() -> None:
    with pytest.raises(adl.SchemaError, match="margin"):
        adl.rank(book(GOOD).drop("margin"), mark=96.0)
    lossy = book(GOOD).with_columns(account=pl.Series([1.0, 2.5, 3.0]))
    with pytest.raises(adl.SchemaError) as info:
        adl.rank(lossy, mark=96.0)
    assert (info.value.field, info.value.row) == ("account", 1)
    negative = book(GOOD).with_columns(account=pl.Series([1, -2, 3]))
    with pytest.raises(adl.SchemaError) as info:
        adl.rank(negative, mark=96.0)
    assert (info.value.field, info.value.row) == ("account", 1)
    text = book(GOOD).with_columns(qty=pl.Series(["1", "2", "3"]))
    with pytest.raises(adl.SchemaError, match="qty"):
        adl.rank(text, mark=96.0)


def test_integer_columns_are_accepted() -> None:
    df = book(GOOD).with_columns(pl.col("qty", "entry_price", "margin").cast(pl.Int64), side=pl.Series([1, -1, -1]))
    assert adl.rank(df, mark=96.0)["rank"].to_list() == adl.rank(book(GOOD), mark=96.0)["rank"].to_list()


@pytest.mark.parametrize("mark", [0.0, -1.0, float("nan"), float("inf")])
def test_bad_marks(mark: float) -> None:
    with pytest.raises(adl.InvalidInputError, match="mark"):
        adl.rank(book(GOOD), mark=mark)
    eng = whole_units_engine()
    eng.load(book(GOOD))
    eng.set_marks(96.0)
    with pytest.raises(adl.InvalidInputError, match="mark"):
        eng.set_marks(mark)
    assert eng.markets()["mark"].to_list() == [96.0]


def test_duplicate_keys() -> None:
    eng = whole_units_engine()
    eng.load(book(GOOD))
    dup = book(GOOD + [(2, "short", 1.0, 1.0, 1.0)])
    with pytest.raises(adl.InvalidInputError) as info:
        eng.load(dup)
    assert info.value.row == 3 and "first seen at row 1" in str(info.value)
    assert eng.positions().height == 3
    # The stateless calls treat rows independently: duplicates are fine there.
    assert adl.rank(dup, mark=96.0).height == 4


def test_duplicate_accounts_in_accounts_frame() -> None:
    eng = whole_units_engine()
    with pytest.raises(adl.InvalidInputError) as info:
        eng.load(book(GOOD), accounts=pl.DataFrame({"account": [1, 1], "cash": [1.0, 2.0]}))
    assert (info.value.field, info.value.row) == ("account", 1)
    with pytest.raises(adl.InvalidInputError) as info:
        eng.load(book(GOOD), accounts=pl.DataFrame({"account": [1, 2], "cash": [1.0, math.nan]}))
    assert (info.value.field, info.value.row) == ("cash", 1)


def test_unknown_position_and_side() -> None:
    eng = whole_units_engine()
    eng.load(book(GOOD))
    eng.set_marks(96.0)
    with pytest.raises(adl.UnknownPositionError):
        eng.liquidate(7, side="long")
    with pytest.raises(adl.UnknownPositionError):
        eng.liquidate(1, side="short")
    with pytest.raises(adl.InvalidInputError, match="side"):
        eng.liquidate(1, side="up")
    with pytest.raises(adl.InvalidInputError, match="fill_price"):
        eng.liquidate(1, side="long", fill_price=float("nan"))
    assert eng.events().height == 0


def test_lazyframe_and_empty_inputs() -> None:
    assert adl.rank(book(GOOD).lazy(), mark=96.0).height == 3
    empty = book(GOOD).clear()
    assert adl.rank(empty, mark=96.0).height == 0
    eng = whole_units_engine()
    eng.load(empty)
    assert eng.positions().height == 0


def test_insufficient_liquidity_says_how_much_is_missing() -> None:
    with pytest.raises(adl.InsufficientLiquidityError) as info:
        adl.deleverage(book(GOOD), mark=96.0, side="long", qty=20.0, price=95.6)
    assert (info.value.requested, info.value.available, info.value.missing) == (20.0, 15.0, 5.0)
    assert "missing 5" in str(info.value)
