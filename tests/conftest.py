"""Shared helpers for the Python tests."""

from __future__ import annotations

import polars as pl

import adl


def book(rows: list[tuple[int, str, float, float, float]], symbol: str | None = None) -> pl.DataFrame:
    """Positions frame from (account, side, qty, entry_price, margin) rows."""
    df = pl.DataFrame(
        rows, schema=["account", "side", "qty", "entry_price", "margin"], orient="row"
    ).with_columns(pl.col("account").cast(pl.UInt64))
    if symbol is not None:
        df = df.with_columns(symbol=pl.lit(symbol))
    return df


def whole_units_engine(insurance_fund: float = 0.0) -> adl.Engine:
    """Engine on a grid of whole lots and whole-quote ticks with cash in cents, so the
    hand-computed numbers in the tests are exact."""
    return adl.Engine(insurance_fund=insurance_fund, cash_decimals=2, qty_decimals=0, price_decimals=0)


def conserved_value(eng: adl.Engine) -> int:
    """Σ cash + Σ position equity + fund + value passed to the book + ADL fees − bad debt
    (cash units; `Engine.totals`)."""
    t = eng.totals()
    return t.cash + t.position_equity + t.fund + t.book_value + t.fees - t.bad_debt
