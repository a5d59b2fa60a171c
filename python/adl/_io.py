"""Polars <-> NumPy for the Rust core.

Columns cross into Rust as read-only NumPy views of single-chunk, null-free Polars columns
(``to_numpy(allow_copy=False)``: zero-copy, and a hidden copy raises instead of slowing
us down). Results come back as NumPy arrays that own Rust buffers and are wrapped into
Polars frames. No ``polars`` crate is compiled into the wheel (see the README).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any, Literal, get_args

import numpy as np
import polars as pl

from adl import _adl
from adl._args import Check, flag, integer, number, text
from adl.errors import InvalidInputError, SchemaError, UnknownMarketError

SIDE = pl.Enum(["long", "short"])
"""Dtype of every ``side`` column the library returns."""
KIND = pl.Enum(["external", "adl", "bad_debt"])
MARGIN_MODE = pl.Enum(["isolated", "cross"])
"""Dtype of every ``margin_mode`` column the library returns."""
DEFAULT_SYMBOL = "default"
"""Market name used when the positions frame has no ``symbol`` column."""

POSITION_COLUMNS = ("account", "side", "qty", "entry_price", "margin")

Policy = Literal[
    "bitmex", "binance", "capped_pro_rata", "custom", "dydx", "hyperliquid", "levered_pro_rata", "min_max_leverage",
    "size_pro_rata", "wealth_pro_rata",
]
"""The ADL policies (README "Policies"): the one list the API, the stubs and the CLI use."""
POLICIES: tuple[str, ...] = get_args(Policy)

Frame = pl.DataFrame | pl.LazyFrame | Mapping[str, Any] | Any
"""A table: a Polars DataFrame or LazyFrame, a pandas DataFrame, a pyarrow Table or
RecordBatch, any object with the Arrow PyCapsule stream interface, or a dict of columns."""


FeeConvention = Literal["surplus", "bankruptcy"]
LightsMethod = Literal["count", "quantity"]
TierRow = tuple[float, float] | tuple[float, float, float | None]
"""A risk-limit tier: ``(notional_floor, rate)`` or ``(notional_floor, rate, maintenance_amount)``."""


@dataclass(frozen=True)
class Market:
    """A market's grid, maintenance margin and venue parameters (docs/model.md §7).

    ``qty_decimals``: one lot is ``10**-qty_decimals`` contracts (default 4).
    ``price_decimals``: prices are held on a grid of ``10**-price_decimals`` (default 4).
    Every parameter left ``None`` takes the engine's default (its constructor's arguments).
    ``maintenance_rate``: a flat rate (given alone, it replaces tiers the engine has).
    ``multiplier``: base-asset units per contract (a linear contract is worth
    ``qty * multiplier * price``). The engine's ``cash_decimals`` must be at least
    ``qty_decimals + price_decimals`` + the multiplier's decimals.
    ``inverse``: an inverse contract (BitMEX's XBTUSD): a contract is ``multiplier`` quote
    units, worth ``qty * multiplier / price`` of the base coin, and margin, PnL and the
    engine's cash are in that coin (so an engine holds inverse markets of one coin). Prices
    are held as ``-1/price`` on a grid of ``10**-price_decimals`` (e.g. 8 for 1/50,000 =
    2e-5 to four digits, more for finer), where PnL ``qty * multiplier * (1/entry - 1/mark)``
    is exact; a price that is never reached (a short that cannot go bankrupt) is ``inf``.
    ``tiers``: risk-limit tiers ``(notional_floor, rate)`` or ``(notional_floor, rate,
    maintenance_amount)`` as Binance publishes them, notionals in the settlement currency
    (the coin for inverse markets); maintenance is ``rate * notional - amount`` in the tier
    holding the notional (the amount defaults to the one that keeps it continuous; a given
    one must be within one cash unit of it). ``[]``: one tier at ``maintenance_rate``.
    ``liquidation_fee``: rate on the liquidated notional, paid to the insurance fund;
    ``fee_convention``: ``"surplus"`` (taken from what is left after the close, when the
    book pays at least the bankruptcy price: BitMEX, Binance) or ``"bankruptcy"`` (reserved
    in the bankruptcy price, and an isolated position's maintenance includes this estimated
    fee to close, so it is liquidatable no later than bankrupt: Bybit). ``surplus_to_fund``:
    what is left after the fee goes to the fund (default) or back to the trader. ``adl_fee``:
    rate on the notional each ADL counterparty closes, paid to the venue (0 on Binance and
    Bitget; Bybit charges its maker fee). ``fund_pool``: the
    insurance-fund pool the market draws on (``None``: the shared ``"default"`` pool).
    The stateless :func:`adl.rank` and :func:`adl.deleverage` take every parameter, as
    :class:`adl.Engine` does.

    >>> import adl
    >>> adl.Market(qty_decimals=3, price_decimals=1).qty_decimals
    3
    >>> adl.Market(0, 1, tiers=[(0, 0.004), (50_000, 0.005, 50.0)]).tiers[1]
    (50000, 0.005, 50.0)
    """

    qty_decimals: int = 4
    price_decimals: int = 4
    maintenance_rate: float | None = None
    multiplier: float | None = None
    inverse: bool | None = None
    tiers: Sequence[TierRow] | None = None
    liquidation_fee: float | None = None
    fee_convention: FeeConvention | None = None
    surplus_to_fund: bool | None = None
    adl_fee: float | None = None
    fund_pool: str | None = None

    def __post_init__(self) -> None:
        for name, check in MARKET_CHECKS.items():
            object.__setattr__(self, name, check(name, getattr(self, name)))
        tier_rows(self.tiers)

    def spec(self) -> _adl.MarketSpec:
        """The parameters for the core engine (the same fields; ``None``: the engine's
        default), values checked and converted by ``__post_init__``."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        return _adl.MarketSpec(**{**values, "tiers": None if self.tiers is None else tier_rows(self.tiers)})


def market_checks(optional: bool) -> dict[str, Check]:
    """The checks of :class:`Market`'s fields (each converts to the plain Python type); with
    ``optional``, ``None`` passes every one but the grid's decimals (a market's "the
    engine's default"), else none (the engine's defaults themselves)."""
    return {
        "qty_decimals": integer(0, 18), "price_decimals": integer(0, 18),
        "maintenance_rate": number(0.0, 1.0, optional=optional), "multiplier": number(above=0.0, optional=optional),
        "inverse": flag(optional=optional), "liquidation_fee": number(0.0, 1.0, optional=optional),
        "fee_convention": text(optional=optional, choices=get_args(FeeConvention)),
        "surplus_to_fund": flag(optional=optional), "adl_fee": number(0.0, 1.0, optional=optional),
        "fund_pool": text(optional=optional),
    }


MARKET_CHECKS = market_checks(optional=True)


def tier_rows(tiers: Sequence[TierRow] | None) -> list[tuple[float, float, float | None]]:
    """Tiers as ``(floor, rate, amount or None)`` floats; a clear error for anything else."""
    if tiers is None:
        return []
    if isinstance(tiers, (str, bytes)) or not isinstance(tiers, Sequence):
        raise InvalidInputError(f"tiers: expected a list of (notional_floor, rate[, amount]), got {tiers!r}", "tiers", None)
    out = []
    for k, t in enumerate(tiers):
        try:
            if not 2 <= len(t) <= 3:
                raise ValueError
            out.append((float(t[0]), float(t[1]), None if len(t) < 3 or t[2] is None else float(t[2])))
        except (TypeError, ValueError):
            raise InvalidInputError(f"tiers: tier {k} is {t!r}, not (notional_floor, rate[, amount])", "tiers", None) from None
    return out


def collect(frame: Frame, what: str = "positions") -> pl.DataFrame:
    """Any supported table as a Polars DataFrame. Other libraries' tables go through Polars'
    own converters (``pl.from_pandas``, ``pl.from_arrow``, the Arrow C stream interface):
    the core reads Polars columns zero-copy anyway, so a dataframe-agnostic layer (narwhals)
    would add a dependency without saving the conversion."""
    if isinstance(frame, pl.LazyFrame):
        return frame.collect()
    if isinstance(frame, pl.DataFrame):
        return frame
    module = type(frame).__module__.split(".")[0]
    try:
        if isinstance(frame, Mapping):
            return pl.DataFrame(dict(frame))
        if module == "pandas":
            return pl.from_pandas(frame)
        if module == "pyarrow" or hasattr(frame, "__arrow_c_stream__"):
            out = pl.from_arrow(frame) if module == "pyarrow" else pl.DataFrame(frame)
            if isinstance(out, pl.DataFrame):
                return out
    except (TypeError, ValueError, pl.exceptions.PolarsError) as e:
        raise SchemaError(f"{what}: cannot read this {type(frame).__name__} as a table: {e}", what, None) from None
    raise SchemaError(
        f"{what}: expected a table (Polars, pandas, pyarrow, or a dict of columns), got {module}.{type(frame).__name__}",
        what,
        None,
    )


LIBRARY_COLUMNS = (
    "account", "symbol", "side", "qty", "entry_price", "margin", "margin_mode", "adl_cap", "ts", "mark", "cash", "wallet",
    "fill_price",
)
"""Every column name the library reads: the targets a ``columns=`` mapping may name."""

ColumnMap = Mapping[str, str] | None
"""``columns=``: the caller's column name -> the library's (``{"size": "qty", "user": "account"}``)."""


def column_map(columns: ColumnMap) -> dict[str, str]:
    """Checks a ``columns=`` mapping: string keys and values, known targets, one source per
    target."""
    if columns is None:
        return {}
    if not isinstance(columns, Mapping) or not all(isinstance(k, str) and isinstance(v, str) for k, v in columns.items()):
        raise InvalidInputError(f"columns: {columns!r} is not a mapping of column names (yours -> the library's)", "columns", None)
    unknown = sorted({v for v in columns.values() if v not in LIBRARY_COLUMNS})
    if unknown:
        raise InvalidInputError(f"columns: unknown target(s) {unknown}; the library's columns are {list(LIBRARY_COLUMNS)}",
                                "columns", None)
    targets = list(columns.values())
    twice = sorted({t for t in targets if targets.count(t) > 1})
    if twice:
        raise InvalidInputError(f"columns: several columns map to {twice}", "columns", None)
    return dict(columns)


def mapped(columns: ColumnMap, *frames: tuple[str, Frame | None]) -> list[pl.DataFrame | None]:
    """Collects each ``(what, frame)`` and renames the columns ``columns`` names (a frame
    without a source column keeps its columns; a source that no frame has is an error, as is a
    frame that already holds the target)."""
    cols = column_map(columns)
    out: list[pl.DataFrame | None] = []
    used: set[str] = set()
    for what, frame in frames:
        if frame is None:
            out.append(None)
            continue
        df = collect(frame, what)
        rename = {k: v for k, v in cols.items() if k in df.columns and k != v}
        clash = [v for v in rename.values() if v in df.columns and v not in rename]
        if clash:
            raise SchemaError(f"{what}: columns maps a column to {clash[0]!r}, which the table already has", clash[0], None)
        used.update(k for k in cols if k in df.columns)
        out.append(df.rename(rename) if rename else df)
    absent = [k for k in cols if k not in used]
    if absent:
        names = ", ".join(w for w, f in frames if f is not None)
        raise SchemaError(f"columns: {absent} is not a column of the {names} table", absent[0], None)
    return out


def is_text(dtype: pl.DataType) -> bool:
    """String, Categorical or Enum: ids and names given as text."""
    return dtype == pl.String or isinstance(dtype, (pl.Categorical, pl.Enum))


Zone = str | None
"""A clock: ``None`` for integer timestamps, else the time zone of datetimes (``""`` naive)."""


def ts_column(s: pl.Series, field: str = "ts") -> tuple[pl.Series, Zone]:
    """Int64 timestamps from integers (kept as they are: the caller's clock) or from Datetime
    of any unit and zone (ms since the Unix epoch, sub-ms parts truncated; naive datetimes
    read as UTC), with the clock they came in."""
    if isinstance(s.dtype, pl.Datetime):
        _no_nulls(s, field)
        return s.dt.epoch("ms").cast(pl.Int64).alias(s.name), s.dtype.time_zone or ""
    if s.dtype == pl.Date:
        return ts_column(s.cast(pl.Datetime("ms")), field)
    if not (s.dtype.is_integer() or s.dtype == pl.Null):
        raise SchemaError(f"{field}: dtype {s.dtype} is not a timestamp (integers or Datetime)", field, None)
    return cast_lossless(s, pl.Int64(), field), None


def ts_value(ts: Any, field: str = "ts") -> tuple[int | None, Zone]:
    """A scalar ``ts`` (int, ``datetime``, NumPy ``datetime64``, pandas ``Timestamp``) as
    integer ms (datetimes) or as given (ints), with its clock as :func:`ts_column`."""
    if ts is None:
        return None, None
    if isinstance(ts, (int, np.integer)) and not isinstance(ts, bool):
        return int(ts), None
    if hasattr(ts, "to_pydatetime"):
        ts = ts.to_pydatetime()
    try:
        s = pl.Series(field, np.array([ts])) if isinstance(ts, np.datetime64) else pl.Series(field, [ts])
    except (TypeError, ValueError, pl.exceptions.PolarsError):
        raise InvalidInputError(f"{field}: {ts!r} is not a timestamp (an integer or a datetime)", field, None) from None
    if not isinstance(s.dtype, pl.Datetime):
        raise InvalidInputError(f"{field}: {ts!r} is not a timestamp (an integer or a datetime)", field, None)
    out, zone = ts_column(s, field)
    return int(out.item()), zone


def ts_series(values: Any, zone: Zone, name: str = "ts") -> pl.Series:
    """Int64 ms (or the caller's integers) back as the caller gave them: Int64 for an integer
    clock, else ``Datetime("ms")`` in the clock's zone (naive for ``""``)."""
    s = values.cast(pl.Int64).alias(name) if isinstance(values, pl.Series) else pl.Series(name, values, dtype=pl.Int64)
    if zone is None:
        return s
    out = s.cast(pl.Datetime("ms"))
    return out if zone == "" else out.dt.replace_time_zone("UTC").dt.convert_time_zone(zone)


def symbol_like(s: pl.Series, dtype: pl.DataType | None) -> pl.Series:
    """A String symbol column in the dtype of the caller's symbol column (so results join back
    to the input): Categorical, or the same Enum when it lists every symbol; else String."""
    if dtype is None or dtype == pl.String:
        return s
    if isinstance(dtype, pl.Enum):
        cats = set(dtype.categories.to_list())
        return s.cast(dtype) if s.drop_nulls().is_in(list(cats)).all() else s
    if isinstance(dtype, pl.Categorical):
        return s.cast(pl.Categorical())
    return s


def _first(mask: pl.Series) -> int:
    return int(mask.arg_max() or 0)


def _no_nulls(s: pl.Series, field: str) -> None:
    if s.null_count():
        row = _first(s.is_null())
        raise SchemaError(f"{field}[row {row}]: null value", field, row)


def cast_lossless(s: pl.Series, dtype: pl.DataType, field: str) -> pl.Series:
    """Casts ``s`` to ``dtype`` or raises SchemaError naming the first row that would change."""
    _no_nulls(s, field)
    if s.dtype == dtype:
        return s
    if s.dtype == pl.Null and s.len() == 0:   # an empty frame built without a schema
        return s.cast(dtype)
    if not s.dtype.is_numeric() and s.dtype != pl.Boolean:
        raise SchemaError(f"{field}: dtype {s.dtype} cannot be cast losslessly to {dtype}", field, None)
    out = s.cast(dtype, strict=False)
    changed = out.is_null()
    if s.dtype.is_float() and dtype.is_integer():
        changed = changed | (out.cast(s.dtype) != s).fill_null(True)
    elif s.dtype.is_integer() and dtype.is_float():
        # Integers beyond 2**53 do not survive the trip to float64.
        changed = changed | (out.cast(s.dtype, strict=False) != s).fill_null(True)
    if changed.any():
        row = _first(changed)
        raise SchemaError(f"{field}[row {row}]: {s[row]!r} cannot be cast losslessly to {dtype}", field, row)
    return out


def side_codes(s: pl.Series, field: str = "side") -> pl.Series:
    """Int8 ±1 from Int8/ints or strings ("long"/"short", or a fill's "buy"/"sell" as most
    vendors write them; any case; Enum/Categorical too)."""
    _no_nulls(s, field)
    if s.dtype in (pl.String, pl.Categorical) or isinstance(s.dtype, pl.Enum):
        codes = s.cast(pl.String).str.to_lowercase().replace_strict(SIDE_NAMES, default=None, return_dtype=pl.Int8)
        if codes.null_count():
            row = _first(codes.is_null())
            raise InvalidInputError(
                f"{field}[row {row}]: {s[row]!r} is not a side (expected long/short, buy/sell or 1/-1)", field, row
            )
        return codes
    return cast_lossless(s, pl.Int8(), field)


SIDE_NAMES = {"long": 1, "buy": 1, "short": -1, "sell": -1}
"""Side names accepted on input (a long position is a net buy)."""


def side_value(side: Any) -> int:
    """A scalar side from 1/-1 or "long"/"short" ("buy"/"sell")."""
    if isinstance(side, str) and side.lower() in SIDE_NAMES:
        return SIDE_NAMES[side.lower()]
    if isinstance(side, (int, np.integer)) and not isinstance(side, bool) and int(side) in (1, -1):
        return int(side)
    raise InvalidInputError(f"side: {side!r} is not a side (expected 'long'/'short' or 1/-1)", "side", None)


def numpy_view(s: pl.Series) -> np.ndarray[Any, Any]:
    """Zero-copy read-only NumPy view of a null-free column."""
    return s.rechunk().to_numpy(allow_copy=False)


def symbol_codes(df: pl.DataFrame) -> tuple[np.ndarray[Any, Any], list[str]]:
    """UInt32 market codes and the symbol of each code (first-appearance order). Without a
    ``symbol`` column the codes array is empty: every row is in market 0."""
    if "symbol" not in df.columns:
        return np.empty(0, dtype=np.uint32), [DEFAULT_SYMBOL]
    s = df["symbol"]
    _no_nulls(s, "symbol")
    if isinstance(s.dtype, pl.Enum):
        names = list(s.dtype.categories)
    else:
        if s.dtype != pl.String and s.dtype != pl.Categorical:
            raise SchemaError(f"symbol: dtype {s.dtype} is not a string", "symbol", None)
        s = s.cast(pl.String)
        names = s.unique(maintain_order=True).to_list()
        s = s.cast(pl.Enum(names))
    return numpy_view(s.to_physical().cast(pl.UInt32)), names


@dataclass
class PositionArrays:
    account: np.ndarray[Any, Any]
    market: np.ndarray[Any, Any]
    side: np.ndarray[Any, Any]
    qty: np.ndarray[Any, Any]
    entry: np.ndarray[Any, Any]
    margin: np.ndarray[Any, Any]
    names: list[str]
    has_symbol: bool
    adl_cap: np.ndarray[Any, Any]
    """Optional ADL caps in [0, 1] (empty: no caps)."""
    account_ids: pl.Series | None = None
    """The caller's account ids when they are not integers (strings, UUIDs): ``account``
    then holds their codes, in the ids' sorted order (so ties still go to the lower id)."""

    def args(self) -> tuple[
        np.ndarray[Any, Any], np.ndarray[Any, Any], np.ndarray[Any, Any], np.ndarray[Any, Any],
        np.ndarray[Any, Any], np.ndarray[Any, Any], np.ndarray[Any, Any],
    ]:
        return (self.account, self.market, self.side, self.qty, self.entry, self.margin, self.adl_cap)


def account_codes(s: pl.Series, text_ids: bool) -> tuple[np.ndarray[Any, Any], pl.Series | None]:
    """UInt64 account ids; with ``text_ids``, string ids (String, Categorical, Enum) become
    codes 0..n-1 in their sorted order and are returned to be mapped back."""
    if not is_text(s.dtype):
        return numpy_view(cast_lossless(s, pl.UInt64(), "account")), None
    if not text_ids:
        raise SchemaError("account: string ids need the engine's label table (adl.Engine maps them)", "account", None)
    _no_nulls(s, "account")
    ids = s.cast(pl.String)
    return numpy_view((ids.rank("dense") - 1).cast(pl.UInt64)), ids


def position_arrays(df: pl.DataFrame, text_ids: bool = False) -> PositionArrays:
    """Validates dtypes and nulls of a positions frame; values are checked in Rust."""
    missing = [c for c in POSITION_COLUMNS if c not in df.columns]
    if missing:
        raise SchemaError(f"positions: missing column(s) {missing}; required {list(POSITION_COLUMNS)}", missing[0], None)
    market, names = symbol_codes(df)
    account, account_ids = account_codes(df["account"], text_ids)
    return PositionArrays(
        account=account,
        market=market,
        side=numpy_view(side_codes(df["side"])),
        qty=numpy_view(cast_lossless(df["qty"], pl.Float64(), "qty")),
        entry=numpy_view(cast_lossless(df["entry_price"], pl.Float64(), "entry_price")),
        margin=numpy_view(cast_lossless(df["margin"], pl.Float64(), "margin")),
        names=names,
        has_symbol="symbol" in df.columns,
        adl_cap=(
            numpy_view(cast_lossless(df["adl_cap"], pl.Float64(), "adl_cap"))
            if "adl_cap" in df.columns
            else np.empty(0, dtype=np.float64)
        ),
        account_ids=account_ids,
    )


def marks_mapping(marks: Any) -> Any:
    """A ``(symbol, mark)`` table (Polars, pandas, pyarrow) as a mapping symbol -> mark; any
    other value as it is."""
    if isinstance(marks, (int, float, np.number, Mapping)) or marks is None:
        return marks
    df = collect(marks, "marks")
    missing = [c for c in ("symbol", "mark") if c not in df.columns]
    if missing:
        raise SchemaError(f"marks: a marks table needs columns symbol and mark; missing {missing}", missing[0], None)
    again = ~df["symbol"].is_first_distinct()
    if again.any():
        row = _first(again)
        raise InvalidInputError(f"marks[row {row}]: symbol {df['symbol'][row]!r} appears twice", "symbol", row)
    _no_nulls(df["mark"], "mark")
    return dict(zip(df["symbol"].cast(pl.String).to_list(), df["mark"].cast(pl.Float64).to_list(), strict=True))


def marks_for(names: list[str], mark: float | Mapping[str, float] | Frame) -> list[float]:
    """One mark per market: a mapping (or a ``symbol, mark`` table) must name every market; a
    float only prices a book of one symbol (pricing BTC and DOGE at one number is never
    meant, so it is refused)."""
    mark = marks_mapping(mark)
    if isinstance(mark, Mapping):
        out = []
        for n in names:
            if n not in mark:
                raise UnknownMarketError(f"mark: no mark given for symbol {n!r}", n)
            out.append(float(mark[n]))
        return out
    try:
        value = float(mark)
    except (TypeError, ValueError):
        raise InvalidInputError(f"mark: {mark!r} is not a price or a mapping symbol -> price", "mark", None) from None
    if len(names) > 1:
        raise InvalidInputError(
            f"mark: one price for {len(names)} symbols ({', '.join(names[:5])}{', ...' if len(names) > 5 else ''}); "
            "give a mapping symbol -> price",
            "mark",
            None,
        )
    return [value] * len(names)


def markets_for(names: list[str], markets: Market | Mapping[str, Market] | None) -> dict[str, Market]:
    """Each market's spec from a single Market, a mapping (missing ones: the defaults), or the
    defaults."""
    return {n: (markets.get(n, Market()) if isinstance(markets, Mapping) else (markets or Market())) for n in names}


def market_specs(specs: Mapping[str, Market], default_rate: float = 0.005) -> tuple[list[int], list[int], list[float]]:
    """qty/price decimals and maintenance rates of ``markets_for``'s specs, in order (for the
    stateless column path, which models linear markets with a flat rate)."""
    rates = [default_rate if s.maintenance_rate is None else float(s.maintenance_rate) for s in specs.values()]
    return [s.qty_decimals for s in specs.values()], [s.price_decimals for s in specs.values()], rates


def side_series(codes: np.ndarray[Any, Any], name: str = "side") -> pl.Series:
    """Enum long/short from Int8 ±1 (a gather from the two categories: no query plan)."""
    return _SIDES.gather((codes < 0).view(np.uint8)).alias(name)


_SIDES = pl.Series("side", ["long", "short"], dtype=SIDE)
_KINDS = pl.Series("kind", ["external", "adl", "bad_debt"], dtype=KIND)


def kind_series(codes: np.ndarray[Any, Any]) -> pl.Series:
    """Enum external/adl/bad_debt from the core's codes 0/1/2."""
    return _KINDS.gather(codes)


def symbol_series(codes: np.ndarray[Any, Any], names: list[str], name: str = "symbol") -> pl.Series:
    return pl.Series(name, names, dtype=pl.String).gather(codes.astype(np.uint32, copy=False))


ScoreSpec = str | pl.Expr | None


def custom_scores(df: pl.DataFrame, policy: str, score: ScoreSpec) -> np.ndarray[Any, Any] | None:
    """The ``custom`` policy's scores: a column name or a Polars expression on the positions."""
    if policy != "custom":
        if score is not None:
            raise InvalidInputError("score: only the custom policy takes a score", "score", None)
        return None
    if score is None:
        raise InvalidInputError("score: policy custom needs score= (a column name or an expression)", "score", None)
    expr = pl.col(score) if isinstance(score, str) else score
    try:
        values = df.select(expr.cast(pl.Float64).alias("score"))["score"]
    except pl.exceptions.PolarsError as e:
        raise InvalidInputError(f"score: cannot evaluate on the positions: {e}", "score", None) from None
    if values.null_count():
        row = int(values.is_null().arg_max() or 0)
        raise InvalidInputError(f"score[row {row}]: null score", "score", row)
    return numpy_view(values)


MARGIN_MODES = ("isolated", "cross")


def margin_mode_codes(df: pl.DataFrame) -> np.ndarray[Any, Any] | None:
    """The optional ``margin_mode`` column as codes (0 isolated, 1 cross); None when absent."""
    if "margin_mode" not in df.columns:
        return None
    s = df["margin_mode"]
    if not (s.dtype == pl.String or isinstance(s.dtype, (pl.Categorical, pl.Enum))):
        raise InvalidInputError(f"margin_mode: dtype {s.dtype} (expected strings 'isolated'/'cross')", "margin_mode", None)
    s = s.cast(pl.String)
    bad = ~s.is_in(MARGIN_MODES) | s.is_null()
    if bad.any():
        row = _first(bad)
        raise InvalidInputError(f"margin_mode[row {row}]: {s[row]!r} is not 'isolated' or 'cross'", "margin_mode", row)
    return numpy_view((s == "cross").cast(pl.UInt8))
