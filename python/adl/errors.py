"""Exceptions raised by :mod:`adl`. All derive from :class:`AdlError`.

Exception state lives in ``args`` so every error pickles. Errors about input name the
field (column) and, where there is one, the first bad row::

    >>> import adl, polars as pl
    >>> bad = pl.DataFrame({"account": [1], "side": [1], "qty": [-1.0],
    ...                     "entry_price": [100.0], "margin": [10.0]})
    >>> try:
    ...     adl.rank(bad, mark=100.0)
    ... except adl.InvalidInputError as e:
    ...     print(e.field, e.row)
    qty 0
"""

from __future__ import annotations


class AdlError(Exception):
    """Base class of every error raised by adl (panics in the core surface as this too)."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class InvalidInputError(AdlError, ValueError):
    """A value is invalid. ``field`` names the column or parameter, ``row`` the first bad row
    (``None`` for parameters)."""

    @property
    def field(self) -> str:
        return str(self.args[1]) if len(self.args) > 1 else ""

    @property
    def row(self) -> int | None:
        return self.args[2] if len(self.args) > 2 else None


class SchemaError(InvalidInputError):
    """A column is missing, null, or has a dtype that cannot be cast losslessly."""


class UnknownPositionError(AdlError, KeyError):
    """No open position has this (account, symbol, side)."""


class UnknownMarketError(AdlError, KeyError):
    """No market has this symbol."""


class NotLiquidatableError(AdlError):
    """The position's equity is at or above maintenance; pass ``force=True`` to liquidate it."""


class InsufficientLiquidityError(AdlError):
    """The opposite side holds less than the quantity to deleverage.

    ``requested``, ``available`` and ``missing`` are quantities in the market's units.
    """

    @property
    def requested(self) -> float:
        return float(self.args[1])

    @property
    def available(self) -> float:
        return float(self.args[2])

    @property
    def missing(self) -> float:
        return float(self.args[3])


class CorruptDataError(AdlError):
    """A snapshot or operation log is truncated, corrupted or of an unknown version. ``what``
    names it (``"snapshot"``, ``"log"``)."""

    @property
    def what(self) -> str:
        return str(self.args[1]) if len(self.args) > 1 else ""


class StorageError(AdlError, OSError):
    """Reading or writing a snapshot or log file failed. ``path`` names the file."""

    @property
    def path(self) -> str:
        return str(self.args[1]) if len(self.args) > 1 else ""


__all__ = [
    "AdlError",
    "CorruptDataError",
    "StorageError",
    "InsufficientLiquidityError",
    "InvalidInputError",
    "NotLiquidatableError",
    "SchemaError",
    "UnknownMarketError",
    "UnknownPositionError",
]
