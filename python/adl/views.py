"""What one request reads (an exchange's position screen): one position, one account, as
frozen records built without whole-book frames (:meth:`adl.Engine.position`,
:meth:`adl.Engine.account`). Amounts in the settlement currency, prices in quote."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

Side = Literal["long", "short"]


@dataclass(frozen=True, slots=True)
class QueuePlace:
    """A position's place in its (symbol, side) ADL queue, as :meth:`adl.Engine.indicator`
    gives it: exact ``rank`` (1 = deleveraged first), ``percentile`` and ``lights`` (5 = first
    20 %) by the engine's lights method, ``score``, and ``notional_ahead`` (the value queued
    before it)."""

    rank: int
    percentile: float
    lights: int
    score: float
    notional_ahead: float


@dataclass(frozen=True, slots=True)
class PositionView:
    """One position: as :meth:`adl.Engine.positions` shows it (``equity`` and
    ``maintenance`` at the mark, None while its market has no mark; a cross position's equity
    is its share of the account's TNC) and its ``queue`` place (None when it is not queued:
    a pro-rata policy, no mark, or not eligible). ``account`` is the engine's id: an integer,
    or the string a labelled engine was given."""

    account: int | str
    symbol: str
    side: Side
    qty: float
    entry_price: float
    margin: float
    margin_mode: Literal["isolated", "cross"]
    equity: float | None
    maintenance: float | None
    bankruptcy_price: float | None
    liquidation_price: float | None
    queue: QueuePlace | None


@dataclass(frozen=True, slots=True)
class AccountView:
    """One account: free ``cash`` (a cross account's wallet), ``equity`` (cash + Σ position
    equity at the marks), ``tnc``/``tmmr`` (total net collateral and total maintenance of a
    cross account; None without cross positions) and its ``positions`` (market order, longs
    first)."""

    account: int | str
    cash: float
    equity: float
    tnc: float | None
    tmmr: float | None
    positions: tuple[PositionView, ...]


RawQueue = tuple[int, float, int, float, float]
RawView = tuple[int, str, int, float, float, float, bool, float | None, float | None, float | None, float | None,
                RawQueue | None]


def position_view(raw: RawView, label: Callable[[int], int | str] = int) -> PositionView:
    """A :class:`PositionView` from the core's tuple (``label`` maps the core's account code
    to the caller's id)."""
    q = raw[11]
    return PositionView(
        label(raw[0]), raw[1], "long" if raw[2] > 0 else "short", raw[3], raw[4], raw[5], "cross" if raw[6] else "isolated",
        raw[7], raw[8], raw[9], raw[10], None if q is None else QueuePlace(*q),
    )
