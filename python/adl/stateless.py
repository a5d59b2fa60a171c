"""Stateless calls: rank a book, or deleverage one quantity against it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import get_args

import numpy as np
import polars as pl

from adl import _adl
from adl._io import (
    SIDE, ColumnMap, Frame, LightsMethod, Market, Policy, ScoreSpec, custom_scores, mapped, isolated_only, market_specs, marks_for, position_arrays,
    side_series, side_value,
)
from adl._args import U64, checked, integer, number, price_or_mapping, text
from adl.errors import InvalidInputError, UnknownMarketError

CASH_DECIMALS = 8


@checked(mark=price_or_mapping(tables=True), policy=text(choices=get_args(Policy)))
def rank(
    positions: Frame,
    mark: float | Mapping[str, float] | Frame,
    *,
    policy: Policy = "bitmex",
    markets: Market | Mapping[str, Market] | None = None,
    score: ScoreSpec = None,
    lights: LightsMethod | None = None,
    columns: ColumnMap = None,
) -> pl.DataFrame:
    """Ranks every position in its ADL queue (per symbol and side).

    Returns the rows (``side`` as :data:`adl.SIDE`) plus ``score`` (Float64, null when not eligible), ``rank`` (UInt32,
    1 = first to be deleveraged, null when not eligible: bankrupt, equity <= 0),
    ``percentile`` and ``lights`` (UInt8, ``6 - ceil(5 * percentile)``; 5 = first 20 %).
    ``lights="count"``: percentile = rank / n; ``"quantity"`` (BitMEX, the default for
    ``bitmex``; ``"count"`` for the others): the queue's quantity up to and including the
    position over its total, positions with exactly equal scores sharing their group's end.
    Ties: ascending account, then row order. Values are rounded to the market grid first.
    With ``policy="custom"``, ``score`` (a column name or a Polars expression evaluated on
    the positions) gives the scores; bankrupt positions are still not eligible.
    ``columns`` renames the caller's columns (``{"size": "qty"}``); the result keeps them
    renamed. Account ids may be integers or strings (ties then go to the lower string).

    >>> import adl, polars as pl
    >>> book = pl.DataFrame({"account": [1, 2, 3], "side": ["short"] * 3,
    ...     "qty": [10.0, 10.0, 10.0], "entry_price": [100.0, 100.0, 90.0],
    ...     "margin": [20.0, 60.0, 10.0]})
    >>> adl.rank(book, mark=96.0)["rank"].to_list()
    [1, 2, None]
    """
    (df,) = mapped(columns, ("positions", positions))
    assert df is not None
    isolated_only(df)
    a = position_arrays(df, text_ids=True)
    qd, pd, rates = market_specs(a.names, markets)
    custom = custom_scores(df, policy, score)
    out = _adl.rank(a.args(), (a.names, marks_for(a.names, mark), qd, pd, rates, CASH_DECIMALS), policy, custom, lights)
    eligible = pl.Series(out["rank"]) > 0
    return df.with_columns(
        side_series(a.side),   # long/short as the Enum every frame uses (buy/sell, 1/-1 read as sides)
        pl.Series("score", out["score"]).fill_nan(None),
        pl.when(eligible).then(pl.Series(out["rank"])).alias("rank"),
        pl.when(eligible).then(pl.Series(out["percentile"])).alias("percentile"),
        pl.when(eligible).then(pl.Series(out["lights"])).alias("lights"),
    )


@checked(mark=price_or_mapping(tables=True), qty=number(above=0.0), price=number(above=0.0), symbol=text(optional=True),
         policy=text(choices=get_args(Policy)), seed=integer(0, U64))
def deleverage(
    positions: Frame,
    mark: float | Mapping[str, float] | Frame,
    *,
    side: str | int,
    qty: float,
    price: float,
    symbol: str | None = None,
    policy: Policy = "bitmex",
    markets: Market | Mapping[str, Market] | None = None,
    seed: int = 0,
    score: ScoreSpec = None,
    columns: ColumnMap = None,
) -> pl.DataFrame:
    """Closes ``qty`` of a bankrupt ``side`` position against the opposite side's queue.

    Returns the ADL fills in queue order with columns ``account, symbol, side`` (the
    counterparty's side), ``qty, price, rank, score``; Σ qty = ``qty`` in whole lots.
    ``price`` is the ADL price (the bankrupt position's bankruptcy price). Under ``dydx`` the
    walk starts at a position drawn from ``seed``; under ``size_pro_rata`` and ``dydx``
    ``rank`` and ``score`` are null.
    Raises :class:`adl.InsufficientLiquidityError` when the opposite side holds less.
    ``account`` and ``symbol`` keep the input's dtypes (string ids too), so fills join back
    to the book; ``columns`` renames the caller's columns as in :func:`adl.rank`.

    >>> import adl, polars as pl
    >>> book = pl.DataFrame({"account": [1, 2], "side": ["short", "short"],
    ...     "qty": [10.0, 10.0], "entry_price": [100.0, 100.0], "margin": [20.0, 60.0]})
    >>> adl.deleverage(book, mark=96.0, side="long", qty=15.0, price=95.0)["qty"].to_list()
    [10.0, 5.0]
    """
    (df,) = mapped(columns, ("positions", positions))
    assert df is not None
    isolated_only(df)
    a = position_arrays(df, text_ids=True)
    if symbol is None:
        if len(a.names) > 1:
            raise InvalidInputError("symbol: required when positions hold several symbols", "symbol", None)
        target = 0
    else:
        if symbol not in a.names:
            raise UnknownMarketError(f"symbol: {symbol!r} does not occur in positions", symbol)
        target = a.names.index(symbol)
    qd, pd, rates = market_specs(a.names, markets)
    out = _adl.deleverage(
        a.args(), (a.names, marks_for(a.names, mark), qd, pd, rates, CASH_DECIMALS), policy,
        target, side_value(side), float(qty), float(price), int(seed), custom_scores(df, policy, score),
    )
    rows = out["row"]
    n = len(rows)
    # Every fill is on the side opposite the bankrupt one: constant columns, built directly.
    # Account ids (when not integers) and symbols keep the input's dtype, so fills join back.
    return pl.DataFrame(
        {
            "account": a.account[rows] if a.account_ids is None else df["account"].gather(rows),
            "symbol": (df["symbol"].gather(rows) if a.has_symbol
                       else pl.Series("symbol", [None], dtype=pl.String).new_from_index(0, n)),
            "side": pl.Series("side", ["short" if side_value(side) > 0 else "long"], dtype=SIDE).new_from_index(0, n),
            "qty": out["qty"],
            "price": np.full(n, float(price)),
            "rank": pl.Series(out["rank"], dtype=pl.UInt32),
            "score": out["score"],
        }
    ).with_columns(
        # Pro-rata policies rank nobody: rank 0 and NaN score from the core become nulls.
        pl.when(pl.col("rank") > 0).then(pl.col("rank")).alias("rank"),
        pl.col("score").fill_nan(None),
    )
