"""What one request reads (an exchange's position screen): one position, one account, as
frozen records built without whole-book frames (:meth:`adl.Engine.position`,
:meth:`adl.Engine.account`). Amounts in the settlement currency, prices in quote."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

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


T = TypeVar("T")


def _builder(cls: type[T]) -> Callable[..., T]:
    """A fast constructor of the frozen slots dataclass ``cls``, for the request path. A
    frozen dataclass's ``__init__`` sets each field through ``object.__setattr__`` (about 4 µs
    for a position's 12 fields, a fifth of a read's budget); a plain slots twin with the same
    fields sets them directly, and the instance then becomes a ``cls`` (the same slot
    layout): equal, hashable and frozen as one built by ``cls(...)``."""
    twin: Any = dataclass(slots=True)(type(f"_{cls.__name__}", (), {"__annotations__": dict(cls.__annotations__)}))

    def build(*values: Any) -> T:
        obj = twin(*values)
        obj.__class__ = cls
        return obj  # type: ignore[no-any-return]

    return build


_queue_place = _builder(QueuePlace)
_position_view = _builder(PositionView)
_account_view = _builder(AccountView)

RawQueue = tuple[int, float, int, float, float]
RawView = tuple[int, str, int, float, float, float, bool, float | None, float | None, float | None, float | None,
                RawQueue | None]


def position_view(raw: RawView, label: Callable[[int], int | str] = int) -> PositionView:
    """A :class:`PositionView` from the core's tuple (``label`` maps the core's account code
    to the caller's id)."""
    q = raw[11]
    return _position_view(
        label(raw[0]), raw[1], "long" if raw[2] > 0 else "short", raw[3], raw[4], raw[5], "cross" if raw[6] else "isolated",
        raw[7], raw[8], raw[9], raw[10], None if q is None else _queue_place(*q),
    )


def account_view(account: int | str, cash: float, equity: float, cross: tuple[float, float] | None,
                 rows: list[RawView], label: Callable[[int], int | str] = int) -> AccountView:
    """An :class:`AccountView` from the core's parts (``cross``: TNC and TMMR, or None)."""
    tnc, tmmr = cross if cross is not None else (None, None)
    return _account_view(account, cash, equity, tnc, tmmr, tuple([position_view(r, label) for r in rows]))
