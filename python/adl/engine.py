"""The stateful engine: a book of isolated and cross positions, account cash, the insurance
fund, and the liquidation waterfall (docs/model.md §2) with ADL by the chosen policy."""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields, replace
from functools import cached_property
from typing import Any, Literal, get_args

import numpy as np
import polars as pl

from adl import _adl
from adl._io import (
    ColumnMap,
    MARGIN_MODE,
    Policy,
    Frame,
    FeeConvention,
    LightsMethod,
    Market,
    ScoreSpec,
    TierRow,
    cast_lossless,
    collect,
    custom_scores,
    margin_mode_codes,
    kind_series,
    market_checks,
    numpy_view,
    position_arrays,
    side_codes,
    side_series,
    side_value,
    SIDE,
    symbol_codes,
    symbol_series,
    tier_rows,
    Zone,
    _no_nulls,
    is_text,
    mapped,
    marks_mapping,
    symbol_like,
    ts_series,
    ts_value,
)
from adl._args import I64, U64, account_id, blob, checked, flag, integer, number, price_or_mapping, text, timestamp
from adl._args import path as fs_path
from adl.errors import AdlError, InvalidInputError, SchemaError, UnknownPositionError
from adl.views import AccountView, PositionView, account_view, position_view
from adl._adl import AdlState, Totals

AdlPrice = Literal["bankruptcy", "mark", "mark_capped"]
SyncPolicy = Literal["always", "group", "none"]
Trigger = Literal["fund_empty", "drawdown", "symbol_drawdown", "fund_drop"]

PASS_REASON = pl.Enum(["beyond_bankruptcy", "collateral"])
FUND_SCHEMA = {"pool": pl.String, "balance": pl.Float64, "state": pl.String, "level": pl.Float64}
"""Columns of :meth:`Engine.funds`."""

# Checks of the scalar parameters shared by several methods.
DECIMALS = integer(0, 18)
# The engine's market defaults: Market's checks, None refused (an engine has no fund_pool option).
MARKET_ARGS = {k: check for k, check in market_checks(optional=False).items() if k != "fund_pool"}
ACCOUNT = account_id()
FUND = number(0.0)

FILL_COLUMNS = (
    "event", "ts", "symbol", "bankrupt_account", "bankrupt_side",
    "account", "side", "qty", "price", "rank", "score", "kind",
)


@dataclass(frozen=True)
class Shown:
    """How the engine's integer keys are shown to the caller: account ``labels`` (String, the
    label of code i at row i; empty for integer ids), the clock's ``zone`` (None: integer
    ``ts``) and the dtype of the caller's ``symbol`` column (None: String)."""

    labels: pl.Series
    zone: Zone
    symbol_dtype: pl.DataType | None = None

    def account(self, codes: Any, name: str = "account") -> pl.Series:
        """Account ids: UInt64, or the labels (String) of a labelled engine."""
        s = pl.Series(name, codes, dtype=pl.UInt64)
        return s if self.labels.is_empty() else self.labels.gather(s).alias(name)

    def ts(self, values: Any, name: str = "ts") -> pl.Series:
        return ts_series(values, self.zone, name)

    def symbol(self, codes: Any, names: list[str], name: str = "symbol") -> pl.Series:
        return symbol_like(symbol_series(codes, names, name), self.symbol_dtype)

    def label(self, code: int) -> int | str:
        """One account id: the code, or its label in a labelled engine."""
        return int(code) if self.labels.is_empty() else str(self.labels[int(code)])

    def account_dtype(self) -> pl.DataType:
        return pl.UInt64() if self.labels.is_empty() else pl.String()

    def error(self, e: AdlError) -> AdlError:
        """``e`` with the account codes its message names replaced by their labels."""
        if self.labels.is_empty():
            return e
        n = self.labels.len()

        def label(m: re.Match[str]) -> str:
            code = int(m.group(1))
            return f"account={self.labels[code]!r}" if code < n else m.group(0)

        args = list(e.args)
        if args and isinstance(args[0], str):
            args[0] = re.sub(r"account=(\d+)", label, args[0])
        if isinstance(e, UnknownPositionError) and len(args) > 1 and isinstance(args[1], int) and args[1] < n:
            args[1] = self.labels[args[1]]
        e.args = tuple(args)
        return e


def fills_frame(cols: Mapping[str, Any], names: list[str], shown: Shown) -> pl.DataFrame:
    """Fill records (docs/model.md §5) from the core's columns. ``account``, ``side``, ``rank``
    and ``score`` are null for book fills (kinds ``external`` and ``bad_debt``)."""
    kind = kind_series(cols["kind"])
    adl_fill = pl.Series(cols["kind"]) == 1
    return pl.DataFrame(
        {
            "event": pl.Series(cols["event"], dtype=pl.UInt64),
            "ts": shown.ts(cols["ts"]),
            "symbol": shown.symbol(cols["market"], names),
            "bankrupt_account": shown.account(cols["bankrupt_account"], "bankrupt_account"),
            "bankrupt_side": side_series(cols["bankrupt_side"]),
            "account": shown.account(cols["account"]),
            "side": side_series(cols["side"]),
            "qty": cols["qty"],
            "price": cols["price"],
            "rank": pl.Series(cols["rank"], dtype=pl.UInt32),
            "score": cols["score"],
            "kind": kind,
        }
    ).with_columns(
        pl.when(pl.Series(cols["has_ts"])).then(pl.col("ts")).alias("ts"),
        *(pl.when(adl_fill).then(pl.col(c)).alias(c) for c in ("account", "side")),
        # Pro-rata fills are ADL fills with no rank (0) or score (NaN) in the core.
        pl.when(adl_fill & (pl.col("rank") > 0)).then(pl.col("rank")).alias("rank"),
        pl.when(adl_fill).then(pl.col("score").fill_nan(None)).alias("score"),
    )


class LiquidationResult:
    """What one liquidation (or a batch) did. Amounts are in quote units.

    ``to_fund``: paid into the insurance fund; ``from_fund``: paid out of it;
    ``bad_debt``: deficit nobody covered; ``adl_qty`` / ``external_qty``: quantity closed
    against counterparties / against the book; ``remaining_qty``: what a partial liquidation
    left open; ``fee``: liquidation fee (part of ``to_fund``); ``returned``: what was left
    after the close and went back to the trader (``surplus_to_fund=False``); ``adl_fees``:
    ADL fees the counterparties paid to the venue; ``events``: event ids; ``skipped``: batch
    rows whose position an earlier row had already closed through ADL.
    ``fills``, ``cancel_orders`` and ``passed_over`` are Polars frames built on first access.
    """

    def __init__(self, raw: _adl.LiquidationOutcome, shown: Shown) -> None:
        # Plain values only (the core's object does not pickle).
        self._fills, self._passed = raw.fills, raw.passed
        self._cancel = (raw.cancel_account, raw.cancel_market, raw.cancel_side)
        self._names = raw.names
        self._shown = shown
        self.to_fund = raw.to_fund
        self.from_fund = raw.from_fund
        self.bad_debt = raw.bad_debt
        self.adl_qty = raw.adl_qty
        self.external_qty = raw.external_qty
        self.remaining_qty = raw.remaining_qty
        self.fee = raw.fee
        self.returned = raw.returned
        self.adl_fees = raw.adl_fees
        self.events = raw.events
        self.skipped = raw.skipped

    @cached_property
    def fills(self) -> pl.DataFrame:
        """Fill records in execution order (columns as :data:`FILL_COLUMNS`)."""
        return fills_frame(self._fills, self._names, self._shown)

    @cached_property
    def cancel_orders(self) -> pl.DataFrame:
        """Positions whose open orders a venue cancels: the liquidated one and each counterparty."""
        account, market, side = self._cancel
        return pl.DataFrame(
            {
                "account": self._shown.account(account),
                "symbol": self._shown.symbol(market, self._names),
                "side": side_series(side),
            }
        )

    @cached_property
    def passed_over(self) -> pl.DataFrame:
        """Counterparties the queue passed over because they could not pay at the ADL price
        (docs/model.md §2 step 4): ``event, account, symbol, side, reason`` in the order met.
        ``reason``: ``beyond_bankruptcy`` (isolated: the ADL price lies beyond its own
        bankruptcy price) or ``collateral`` (cross: its account's TNC cannot pay for a lot).
        They keep their place in the queue for later events."""
        rows = self._passed
        return pl.DataFrame(
            {
                "event": pl.Series([r[0] for r in rows], dtype=pl.UInt64),
                "account": self._shown.account([r[1] for r in rows]),
                "symbol": self._shown.symbol(np.array([r[2] for r in rows], dtype=np.uint32), self._names),
                "side": side_series(np.array([r[3] for r in rows], dtype=np.int8)),
                "reason": pl.Series([r[4] for r in rows], dtype=PASS_REASON),
            }
        )

    def __repr__(self) -> str:
        return (
            f"LiquidationResult(events={len(self.events)}, fills={len(self._fills['event'])}, "
            f"external_qty={self.external_qty}, "
            f"adl_qty={self.adl_qty}, to_fund={self.to_fund}, from_fund={self.from_fund}, "
            f"bad_debt={self.bad_debt})"
        )


@dataclass(frozen=True)
class EngineConfig:
    """Every option of :class:`Engine`'s constructor as one value (the same names, defaults
    and meaning), so that a cascade gets any of them: :func:`adl.simulate`,
    :func:`adl.compare` and :func:`adl.sweep` take ``engine=EngineConfig(...)``, and
    :attr:`Engine.config` gives an engine's own. ``Engine.from_config(config)`` builds one.

    >>> import adl
    >>> cfg = adl.EngineConfig("binance", 1_000.0, trigger="drawdown", liquidation_fee=0.001)
    >>> eng = adl.Engine.from_config(cfg)
    >>> eng.config == cfg, eng.adl_state().trigger
    (True, 'drawdown')
    """

    policy: Policy = "bitmex"
    insurance_fund: float = 0.0
    maintenance_rate: float = 0.005
    cash_decimals: int = 8
    qty_decimals: int = 4
    price_decimals: int = 4
    multiplier: float = 1.0
    inverse: bool = False
    tiers: Sequence[TierRow] | None = None
    liquidation_fee: float = 0.0
    fee_convention: FeeConvention = "surplus"
    surplus_to_fund: bool = True
    adl_fee: float = 0.0
    markets: Mapping[str, Market] | None = None
    adl_price: AdlPrice | None = None
    seed: int = 0
    trigger: Trigger = "fund_empty"
    trigger_window: int | None = None
    trigger_arm: float | None = None
    trigger_disarm: float | None = None
    trigger_min_balance: float | None = None
    lights: LightsMethod | None = None
    score: ScoreSpec = None
    max_ts_step: int | None = None
    keep_fills: bool = True

    def __post_init__(self) -> None:
        # Held as values, not the caller's objects: tiers as a tuple, markets as a copy.
        if self.tiers is not None and not isinstance(self.tiers, (str, bytes)) and isinstance(self.tiers, Sequence):
            object.__setattr__(self, "tiers", tuple(tuple(t) if isinstance(t, Sequence) else t for t in self.tiers))
        if isinstance(self.markets, Mapping):
            object.__setattr__(self, "markets", dict(self.markets))

    def options(self) -> dict[str, Any]:
        """The options as keyword arguments of :class:`Engine` (values as given, not copied)."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


class Engine:
    """An ADL engine holding a book of isolated and cross positions.

    Money is exact: quantities are whole lots, prices and cash fixed point (see the README,
    "Units and rounding"). ``maintenance_rate`` and the decimals are defaults for markets
    created implicitly by :meth:`load`; use :meth:`add_market` or ``markets=`` to set them
    per market. ``adl_price`` overrides the policy's ADL price: ``"bankruptcy"`` (default,
    ``"mark"`` for hyperliquid), ``"mark"`` or ``"mark_capped"`` (the mark, never better for the
    bankrupt position than its bankruptcy price). At the mark, the bankrupt lots' loss beyond
    their margin is paid by the fund as far as it can and the rest is bad debt. ``seed`` draws
    the start of the ``dydx`` walk (with the event id), so runs are reproducible.

    ``trigger`` decides when ADL bypasses the fund (docs/model.md §5): ``"fund_empty"`` (default:
    the fund covers what it can first), ``"drawdown"`` (armed when the fund is more than
    30 % below its maximum over the last ``trigger_window`` = 8 h of the ``ts`` clock in ms;
    disarmed above -25 %), ``"symbol_drawdown"`` (Bybit's form: each symbol's PnL drawdown
    against the pool's 8 h maximum balance, only while the pool holds more than
    ``trigger_min_balance``) or ``"fund_drop"`` (Bitget: armed below 70 % of the fund's peak,
    disarmed at 90 %); ``trigger_arm``/``trigger_disarm`` override the thresholds. While
    armed the fund pays nothing, and the drawdown triggers cap the fund within one event at
    the arming level: it pays down to -30 % and ADL covers the rest. :meth:`adl_state` shows
    the state.

    ``lights`` buckets the queue indicator (docs/model.md §3): ``"count"`` (percentile = rank / n)
    or ``"quantity"`` (BitMEX: the cumulative quantity of the queue up to the position over the
    queue's total); default: ``"quantity"`` for ``bitmex``, ``"count"`` for the others.

    ``policy="custom"`` ranks by the caller's ``score``: a column name or a Polars expression
    evaluated on the positions frame at each :meth:`load` (bankrupt positions stay out).

    Venue parameters (docs/model.md §7): ``multiplier``, ``inverse``, ``tiers`` (risk-limit
    tiers), ``liquidation_fee`` with its ``fee_convention``, ``surplus_to_fund`` and
    ``adl_fee`` are defaults for the markets, as described for :class:`adl.Market`; each
    market may override them (:meth:`add_market`) and draw on its own insurance-fund pool
    (:meth:`set_fund`). ``liquidate(..., partial=True)`` closes only what brings a position
    back to maintenance; :meth:`preview` shows users their prices, rank and ADL mark.

    Cross margin (docs/model.md §6): rows with ``margin_mode = "cross"`` hold no margin of their
    own; they share the account's wallet (``cash`` or ``wallet`` in the accounts frame). See
    :meth:`liquidate_account`.

    ``keep_fills=False`` keeps no fill records (:meth:`events` stays empty; results, ledgers
    and event ids are the same): a pro-rata event records a fill per counterparty, and an
    engine that only needs the results need not hold them. See :attr:`keep_fills` and
    :meth:`drain_events` to switch them off later or drop those already read.

    Account ids are integers or strings (UUIDs, names): string ids are mapped to codes in the
    order they first appear, the table travels in snapshots and logs, and every frame and
    ``account=`` argument uses the strings (see :meth:`load`). ``ts`` may be a datetime: the
    frames then show ``ts`` as ``Datetime("ms")`` in its zone (see :meth:`set_marks`).

    >>> import adl, polars as pl
    >>> eng = adl.Engine(insurance_fund=0.0)
    >>> eng.load(pl.DataFrame({"account": [1, 2], "side": ["long", "short"],
    ...     "qty": [10.0, 10.0], "entry_price": [100.0, 100.0], "margin": [44.0, 500.0]}))
    >>> eng.set_marks(96.0)   # long: equity 44 - 40 = 4 < maintenance 4.8
    >>> res = eng.liquidate(account=1, side="long", fill_price=95.0)
    >>> res.fills.select("account", "qty", "price", "kind").rows()
    [(2, 10.0, 95.6, 'adl')]
    """

    @checked(
        policy=text(choices=get_args(Policy)), insurance_fund=FUND,
        maintenance_rate=MARKET_ARGS["maintenance_rate"], cash_decimals=DECIMALS,
        adl_price=text(optional=True, choices=get_args(AdlPrice)), seed=integer(0, U64),
        trigger=text(choices=get_args(Trigger)), trigger_window=integer(1, I64, optional=True),
        trigger_arm=number(optional=True), trigger_disarm=number(optional=True),
        max_ts_step=integer(0, I64, optional=True), keep_fills=flag(),
        **{k: check for k, check in MARKET_ARGS.items() if k != "maintenance_rate"},  # checked 3rd, as it always was
    )
    def __init__(
        self,
        policy: Policy = "bitmex",
        insurance_fund: float = 0.0,
        maintenance_rate: float = 0.005,
        *,
        cash_decimals: int = 8,
        qty_decimals: int = 4,
        price_decimals: int = 4,
        multiplier: float = 1.0,
        inverse: bool = False,
        tiers: Sequence[TierRow] | None = None,
        liquidation_fee: float = 0.0,
        fee_convention: FeeConvention = "surplus",
        surplus_to_fund: bool = True,
        adl_fee: float = 0.0,
        markets: Mapping[str, Market] | None = None,
        adl_price: AdlPrice | None = None,
        seed: int = 0,
        trigger: Trigger = "fund_empty",
        trigger_window: int | None = None,
        trigger_arm: float | None = None,
        trigger_disarm: float | None = None,
        trigger_min_balance: float | None = None,
        lights: LightsMethod | None = None,
        score: ScoreSpec = None,
        max_ts_step: int | None = None,
        keep_fills: bool = True,
    ) -> None:
        # The options as given (checked), before any other local is bound: EngineConfig's
        # fields are these parameters, in order (tests/test_simulate_options.py pins it).
        options = {k: v for k, v in locals().items() if k != "self"}
        if (policy == "custom") != (score is not None):
            raise InvalidInputError("score: policy custom needs score= (a column name or an expression), no other policy takes one",
                                    "score", None)
        if markets is not None and not (isinstance(markets, Mapping) and all(isinstance(m, Market) for m in markets.values())):
            raise InvalidInputError(f"markets: {markets!r} is not a mapping symbol -> adl.Market", "markets", None)
        self._policy: str = policy
        self._score = score
        self._symbol_dtype: pl.DataType | None = None
        self.replay_info: dict[str, int] | None = None
        self._book_lock = threading.Lock()
        # The market defaults are the options that are Market fields.
        defaults = Market(**{f.name: options[f.name] for f in fields(Market) if f.name in options})
        self._core = _adl.Engine(
            policy, float(insurance_fund), cash_decimals, defaults.spec(), adl_price=adl_price, seed=int(seed),
            trigger=trigger, trigger_window=trigger_window, trigger_arm=trigger_arm, trigger_disarm=trigger_disarm,
            trigger_min_balance=trigger_min_balance, lights=lights, keep_fills=keep_fills,
        )
        for symbol, m in (markets or {}).items():
            self._core.add_market(symbol, m.spec())
        self._core.set_max_ts_step(max_ts_step)
        # Recorded once every option has been checked by the core.
        self._config: EngineConfig | None = EngineConfig(**options)

    @property
    def max_ts_step(self) -> int | None:
        """How far a ``ts`` given to :meth:`set_marks` may jump ahead of the engine's clock;
        beyond it the call is refused (``InvalidInputError``, field ``ts``). ``None`` (the
        default) means one ``trigger_window`` under a drawdown trigger and no limit under the
        others. A setting of this object, not of its state: not in snapshots or logs.

        >>> import adl
        >>> eng = adl.Engine(trigger="drawdown", trigger_window=1_000, markets={"BTC": adl.Market()})
        >>> eng.set_marks(96.0, ts=0)
        >>> eng.set_marks(96.0, ts=5_000)
        Traceback (most recent call last):
        ...
        adl.errors.InvalidInputError: ts: 5000 is more than max_ts_step = 1000 ahead of the engine's clock 0 (a stray future ts would hold the clock there)
        >>> eng.max_ts_step = 10_000
        >>> eng.set_marks(96.0, ts=5_000)
        """
        step: int | None = self._core.max_ts_step
        return step

    @max_ts_step.setter
    def max_ts_step(self, step: int | None) -> None:
        if step is not None and (isinstance(step, bool) or not isinstance(step, int) or not 0 <= step < 2**63):
            raise InvalidInputError(f"max_ts_step: {step!r} must be an integer in [0, 2^63) or None", "max_ts_step", None)
        self._core.set_max_ts_step(step)
        if self._config is not None:
            self._config = replace(self._config, max_ts_step=step)

    def __repr__(self) -> str:
        """The policy, markets, book size, fund and bad debt, for a REPL or a log line.

        >>> import adl
        >>> adl.Engine("size_pro_rata", insurance_fund=1_500.0)
        Engine(policy='size_pro_rata', markets=[], positions=0, insurance_fund=1,500.00, bad_debt=0.00)
        """
        names = self._names()
        shown = names if len(names) <= 5 else [*names[:5], f"... {len(names) - 5} more"]
        positions = len(self._core.positions("all")["account"])
        return (f"Engine(policy={self._policy!r}, markets={shown}, positions={positions:,}, "
                f"insurance_fund={self.insurance_fund:,.2f}, bad_debt={self.bad_debt:,.2f})")

    # ----- markets -----------------------------------------------------------------

    @checked(symbol=text())
    def add_market(
        self,
        symbol: str,
        *,
        qty_decimals: int | None = None,
        price_decimals: int | None = None,
        maintenance_rate: float | None = None,
        multiplier: float | None = None,
        inverse: bool | None = None,
        tiers: Sequence[TierRow] | None = None,
        liquidation_fee: float | None = None,
        fee_convention: FeeConvention | None = None,
        surplus_to_fund: bool | None = None,
        adl_fee: float | None = None,
        fund_pool: str | None = None,
    ) -> None:
        """Adds a market, or redefines one that has no open positions. Parameters not given
        take the engine's defaults; see :class:`adl.Market` for their meaning.

        >>> import adl
        >>> eng = adl.Engine()
        >>> eng.add_market("BTC-PERP", qty_decimals=3, price_decimals=1, maintenance_rate=0.004)
        >>> eng.markets().select("symbol", "qty_decimals", "price_decimals", "maintenance_rate").row(0)
        ('BTC-PERP', 3, 1, 0.004)
        >>> eng.add_market("BTCUSDT", qty_decimals=3, price_decimals=1, tiers=[(0, 0.004), (50_000, 0.005)],
        ...                liquidation_fee=0.0005, fee_convention="bankruptcy")
        >>> eng.tiers("BTCUSDT").rows()
        [(0.0, 0.004, 0.0), (50000.0, 0.005, 50.0)]
        """
        # One Market (checked there) is both the core's spec and this engine's recorded option.
        # Its fields are the keywords (tests/test_simulate_options.py pins it); the grid's
        # decimals not given are the engine's.
        given = {k: v for k, v in locals().items() if k not in ("self", "symbol")}
        default = self._core.default_spec()
        for grid in ("qty_decimals", "price_decimals"):
            if given[grid] is None:
                given[grid] = getattr(default, grid)
        market = Market(**given)
        self._core.add_market(symbol, market.spec())
        if self._config is not None:   # the options now include this market
            self._config = replace(self._config, markets={**(self._config.markets or {}), symbol: market})

    def markets(self) -> pl.DataFrame:
        """Markets: ``symbol, qty_decimals, price_decimals, maintenance_rate`` (the first
        tier's), ``multiplier, inverse, tiers`` (how many), ``liquidation_fee, fee_convention,
        surplus_to_fund, adl_fee, fund_pool, mark`` (null = no mark).

        Examples
        --------
        >>> import adl
        >>> adl.Engine().markets().columns[:5]
        ['symbol', 'qty_decimals', 'price_decimals', 'maintenance_rate', 'multiplier']
        """
        m = self._core.markets()
        return pl.DataFrame(
            {
                "symbol": symbol_like(pl.Series(m["symbol"], dtype=pl.String), self._symbol_dtype),
                "qty_decimals": pl.Series(m["qty_decimals"], dtype=pl.UInt32),
                "price_decimals": pl.Series(m["price_decimals"], dtype=pl.UInt32),
                "maintenance_rate": pl.Series(m["maintenance_rate"], dtype=pl.Float64),
                "multiplier": pl.Series(m["multiplier"], dtype=pl.Float64),
                "inverse": pl.Series(m["inverse"], dtype=pl.Boolean),
                "tiers": pl.Series(m["tiers"], dtype=pl.UInt32),
                "liquidation_fee": pl.Series(m["liquidation_fee"], dtype=pl.Float64),
                "fee_convention": pl.Series(m["fee_convention"], dtype=pl.String),
                "surplus_to_fund": pl.Series(m["surplus_to_fund"], dtype=pl.Boolean),
                "adl_fee": pl.Series(m["adl_fee"], dtype=pl.Float64),
                "fund_pool": pl.Series(m["fund_pool"], dtype=pl.String),
                "mark": pl.Series(m["mark"], dtype=pl.Float64).fill_nan(None),
            }
        )

    @checked(symbol=text())
    def tiers(self, symbol: str) -> pl.DataFrame:
        """A market's maintenance tiers: ``floor`` (notional, quote units), ``rate`` and
        ``maintenance_amount``; maintenance is ``rate * notional - maintenance_amount`` in the
        tier holding the notional.

        >>> import adl
        >>> eng = adl.Engine(maintenance_rate=0.01)
        >>> eng.add_market("X")
        >>> eng.tiers("X").rows()
        [(0.0, 0.01, 0.0)]
        """
        t = self._core.tiers(symbol)
        return pl.DataFrame({"floor": t["floor"], "rate": t["rate"], "maintenance_amount": t["maintenance_amount"]})

    def _names(self) -> list[str]:
        # Not cached: another thread may add markets at any time. Frames of market codes
        # come with the names read under the same lock instead.
        return list(self._core.symbols())

    # ----- account ids and clock (how the caller's values map to the core's) ---------

    def _labels(self) -> pl.Series:
        """The label table (String; code i at row i). Labels are only ever appended, so the
        cache is extended, never rebuilt."""
        cache: pl.Series | None = self.__dict__.get("_label_cache")
        n = self._core.label_count()
        if cache is None or cache.len() < n:
            start = 0 if cache is None else cache.len()
            new = pl.Series("account", self._core.labels(start), dtype=pl.String)
            cache = new if cache is None else pl.concat([cache, new])
            self._label_cache = cache
        return cache

    def _labeller(self, held: int) -> Callable[[int], int | str]:
        """Account id from code, for an engine holding ``held`` labels (per-request reads)."""
        if not held:
            return int
        labels = self._labels()
        return lambda code: str(labels[int(code)])

    def _shown(self) -> Shown:
        """Read after the core call whose codes it maps (labels only grow)."""
        return Shown(self._labels(), self._core.clock(), self._symbol_dtype)

    @contextmanager
    def _labelled_errors(self) -> Iterator[None]:
        """Core errors name accounts by code: a labelled engine names them by label."""
        try:
            yield
        except AdlError as e:
            raise self._shown().error(e) from None

    def _account_codes(self, columns: Sequence[tuple[str, pl.Series]]) -> tuple[list[pl.Series], list[str] | None]:
        """UInt64 account codes for the ``(field, column)`` pairs of one operation, and the
        labels it adds (None for integer ids). String ids (String, Categorical, Enum) map
        through the label table; ids it does not hold yet get the next codes in order of
        first appearance (positions first, then the accounts table). Integer and string ids
        are never mixed: an engine's ids are of the kind it first held."""
        text_ids = [is_text(s.dtype) for _, s in columns]
        held = self._core.label_count()
        if not any(text_ids):
            if held:
                field = columns[0][0] if columns else "account"
                raise SchemaError(f"{field}: this engine's account ids are strings; got integers", field, None)
            return [cast_lossless(s, pl.UInt64(), f) for f, s in columns], None
        if not all(text_ids):
            field = columns[text_ids.index(False)][0]
            raise SchemaError(f"{field}: integer account ids in a book of string ids", field, None)
        for f, s in columns:
            _no_nulls(s, f)
        table = self._labels()
        ids = [s.cast(pl.String) for _, s in columns]
        every = pl.concat(ids) if ids else pl.Series(dtype=pl.String)
        new = every.filter(~every.is_in(table)).unique(maintain_order=True)
        codes = pl.DataFrame({"account": pl.concat([table, new])}).with_row_index("code")
        out = [pl.DataFrame({"account": s}).join(codes, on="account", how="left", maintain_order="left")["code"]
               .cast(pl.UInt64) for s in ids]
        return out, new.to_list()

    def _account_in(self, account: int | str, held: int | None = None) -> int:
        """The core's code of a scalar account id (``held``: the engine's label count, if read)."""
        held = self._core.label_count() if held is None else held
        if isinstance(account, str):
            code = self._labels().index_of(account) if held else None
            if code is None:
                raise UnknownPositionError(f"account: {account!r} is not an account of this engine", account, None, None)
            return int(code)
        if held:
            raise InvalidInputError(f"account: this engine's account ids are strings; got {account!r}", "account", None)
        return int(account)

    # ----- book --------------------------------------------------------------------

    def load(self, positions: Frame, accounts: Frame | None = None, *, columns: ColumnMap = None) -> None:
        """Replaces the book with ``positions`` (keys (account, symbol, side) must be unique)
        and account cash with ``accounts`` (columns ``account`` and ``cash``, or ``wallet``;
        none = zero cash). An optional ``margin_mode`` column (``"isolated"``/``"cross"``)
        marks cross positions: their ``margin`` must be 0, their collateral is the wallet.
        All or nothing: on error the engine is unchanged.

        Account ids are integers (UInt64) or strings (String, Categorical, Enum: UUIDs,
        names). String ids get codes in the order they first appear (positions, then
        ``accounts``), kept in a label table that snapshots and logs carry; every frame
        gives them back as strings. An engine's ids are all of one kind, the kind it first
        held: the other is refused (:class:`adl.SchemaError` naming the column). ``columns``
        renames the caller's columns (``{"size": "qty", "user": "account"}``) in both tables.
        The ``symbol`` column's dtype (Categorical, Enum) is kept in the frames this engine
        returns, so they join back to the book.

        >>> import adl, polars as pl
        >>> eng = adl.Engine()
        >>> eng.load(pl.DataFrame({"account": [7], "side": [1], "qty": [2.0],
        ...     "entry_price": [50.0], "margin": [10.0]}),
        ...     accounts=pl.DataFrame({"account": [7], "cash": [100.0]}))
        >>> eng.accounts()["cash"].to_list()
        [100.0]
        """
        with self._book_lock:   # new labels' codes are counted from the table as it is now
            args, dtype = self._book_args(positions, accounts, columns)
            with self._labelled_errors():
                self._core.load(*args)
        self._keep_symbol_dtype(dtype)

    def _keep_symbol_dtype(self, dtype: pl.DataType | None) -> None:
        """Frames give ``symbol`` in the dtype of the last book that had the column (not
        kept in snapshots: a restored engine gives String until the next load)."""
        if dtype is not None:
            self._symbol_dtype = None if dtype == pl.String else dtype

    def _book_args(self, positions: Frame, accounts: Frame | None, columns: ColumnMap) -> tuple[tuple[Any, ...], Any]:
        """Arguments of the core's load/upsert (columns, market names, accounts, modes, scores,
        new labels) and the dtype of the positions' symbol column."""
        df, acc = mapped(columns, ("positions", positions), ("accounts", accounts))
        assert df is not None
        if "account" not in df.columns:
            raise SchemaError("positions: missing column 'account'", "account", None)
        cash = ""
        if acc is not None:
            cash = "wallet" if "wallet" in acc.columns and "cash" not in acc.columns else "cash"
            for c in ("account", cash):
                if c not in acc.columns:
                    raise SchemaError(f"accounts: missing column {c!r}", c, None)
        pairs = [("account", df["account"])] + ([("accounts.account", acc["account"])] if acc is not None else [])
        codes, labels = self._account_codes(pairs)
        a = position_arrays(df.with_columns(codes[0].alias("account")))
        modes = margin_mode_codes(df)
        scores = custom_scores(df, self._policy, self._score)
        acc_ids = acc_cash = None
        if acc is not None:
            acc_ids = numpy_view(codes[1])
            acc_cash = numpy_view(cast_lossless(acc[cash], pl.Float64(), cash))
        dtype = df["symbol"].dtype if "symbol" in df.columns else None
        return (a.args(), a.names, acc_ids, acc_cash, modes, scores, labels), dtype

    def upsert(self, positions: Frame, accounts: Frame | None = None, *, columns: ColumnMap = None) -> dict[str, int]:
        """Inserts positions with new keys and replaces the size, entry, margin, margin mode and
        cap of existing ones (same columns, ids and ``columns`` mapping as :meth:`load`);
        ``accounts`` sets the cash of the accounts it lists. Unknown symbols become markets
        with the defaults. Validated as a batch: on error nothing changes. Returns the counts.

        >>> import adl, polars as pl
        >>> eng = adl.Engine()
        >>> eng.load(pl.DataFrame({"account": [1], "side": ["long"], "qty": [1.0],
        ...     "entry_price": [100.0], "margin": [10.0]}))
        >>> eng.upsert(pl.DataFrame({"account": [1, 2], "side": ["long", "short"], "qty": [3.0, 2.0],
        ...     "entry_price": [99.0, 101.0], "margin": [30.0, 20.0]}))
        {'inserted': 1, 'replaced': 1, 'accounts': 0}
        >>> eng.positions()["qty"].to_list()
        [3.0, 2.0]
        """
        with self._book_lock:   # new labels' codes are counted from the table as it is now
            args, dtype = self._book_args(positions, accounts, columns)
            with self._labelled_errors():
                ins, rep, acc = self._core.upsert(*args)
        self._keep_symbol_dtype(dtype)
        return {"inserted": ins, "replaced": rep, "accounts": acc}

    @checked(account=ACCOUNT, symbol=text(optional=True), price=number(above=0.0, optional=True))
    def close_position(
        self, account: int | str, symbol: str | None = None, side: str | int = "long", price: float | None = None
    ) -> float:
        """Closes a position outside ADL (the trader's own close) at ``price`` (None = mark):
        its margin plus its PnL at that price goes to the account's cash (returned).

        >>> import adl, polars as pl
        >>> eng = adl.Engine()
        >>> eng.load(pl.DataFrame({"account": [1], "side": ["long"], "qty": [2.0],
        ...     "entry_price": [100.0], "margin": [10.0]}))
        >>> eng.set_marks(103.0)
        >>> eng.close_position(1, side="long")          # 10 + 2 * (103 - 100)
        16.0
        """
        code = self._account_in(account)
        with self._labelled_errors():
            return float(self._core.close_position(
                code, self._symbol(symbol), side_value(side), None if price is None else float(price)
            ))

    # ----- persistence -------------------------------------------------------------

    @classmethod
    def _from_core(cls, core: _adl.Engine, score: ScoreSpec) -> Engine:
        eng = cls.__new__(cls)
        eng._core, eng._policy, eng._score = core, core.policy, score
        eng._config = None
        eng._symbol_dtype = None
        eng.replay_info = None
        eng._book_lock = threading.Lock()
        if (eng._policy == "custom") != (score is not None):
            raise InvalidInputError("score: give score= exactly when the restored engine's policy is custom", "score", None)
        return eng

    def snapshot(self) -> bytes:
        """The whole state (positions, accounts, ledgers, markets, trigger, fill log and event
        ids) as versioned, checksummed bytes; :meth:`restore` rebuilds an identical engine.

        >>> import adl
        >>> eng = adl.Engine(insurance_fund=5.0)
        >>> adl.Engine.restore(eng.snapshot()).insurance_fund
        5.0
        """
        return self._core.snapshot()

    @classmethod
    @checked(data=blob())
    def restore(cls, data: bytes, *, score: ScoreSpec = None) -> Engine:
        """An engine from :meth:`snapshot` bytes. Truncated, corrupted or unknown-version data
        raises :class:`adl.CorruptDataError`. A custom-policy engine needs its ``score`` again
        (an expression is not stored).

        >>> import adl
        >>> try:
        ...     adl.Engine.restore(adl.Engine().snapshot()[:-1])
        ... except adl.CorruptDataError as e:
        ...     print(e.what)
        snapshot
        """
        return cls._from_core(_adl.Engine.restore(bytes(data)), score)

    @checked(path=fs_path())
    def save(self, path: str | os.PathLike[str]) -> None:
        """Writes :meth:`snapshot` to ``path`` atomically: a temporary file with a unique name
        in the same directory, fsync, rename, fsync of the directory (concurrent saves never
        mix; symlinks and other non-regular targets are refused).

        >>> import adl, tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "engine.adl")
        >>> adl.Engine(insurance_fund=2.5).save(path)
        >>> adl.Engine.open(path).insurance_fund
        2.5
        """
        self._core.save(os.fspath(path))

    @classmethod
    @checked(path=fs_path())
    def open(cls, path: str | os.PathLike[str], *, score: ScoreSpec = None) -> Engine:
        """An engine from a file written by :meth:`save`."""
        return cls._from_core(_adl.Engine.open(os.fspath(path)), score)

    def __getstate__(self) -> dict[str, Any]:
        return {"snapshot": self.snapshot(), "score": self._score, "symbol_dtype": self._symbol_dtype, "config": self._config}

    def __setstate__(self, state: dict[str, Any]) -> None:
        other = Engine.restore(state["snapshot"], score=state["score"])
        other._symbol_dtype = state.get("symbol_dtype")
        other._config = state.get("config")
        self.__dict__.update(other.__dict__)

    @checked(path=fs_path(), sync=text(choices=get_args(SyncPolicy)), group_ms=integer(0, I64))
    def log_to(self, path: str | os.PathLike[str], *, sync: SyncPolicy = "always", group_ms: int = 10) -> None:
        """Starts an append-only operation log at ``path`` (replacing any file there): a
        snapshot of the current state, then every state-changing call (load, upsert, marks,
        fund, liquidations, closes) that returns; a call that raises is not in it. ``sync``:
        ``"always"`` (fsync before the call takes effect: a returned call is durable),
        ``"group"`` (fsync when the last one is ``group_ms`` old, and on :meth:`sync`; durable
        = ``log_status["durable"]``) or ``"none"`` (the OS decides: survives a process crash,
        not a power loss). The file is locked while the engine logs to it: another engine's
        ``log_to`` of the same path raises :class:`adl.StorageError`, as do symlinks and other
        non-regular files. If writing the log fails, the call raises ``StorageError`` and
        changes nothing, and every later state-changing call raises ``StorageError`` until
        ``log_to`` starts a new log. The format is in the README. :meth:`replay` rebuilds the
        engine.

        >>> import adl, tempfile, os
        >>> path = os.path.join(tempfile.mkdtemp(), "ops.log")
        >>> eng = adl.Engine()
        >>> eng.log_to(path)
        >>> eng.insurance_fund = 7.0
        >>> eng.log_status
        {'logged': 1, 'durable': 1}
        >>> adl.Engine.replay(path).insurance_fund
        7.0
        """
        self._core.log_to(os.fspath(path), sync, int(group_ms))

    def sync(self) -> None:
        """Forces the operation log to disk (no-op without a log)."""
        self._core.sync()

    def close_log(self) -> None:
        """Syncs and stops the operation log."""
        self._core.close_log()

    @property
    def log_status(self) -> dict[str, int] | None:
        """Operations ``logged`` and known ``durable`` since :meth:`log_to`; None without a log."""
        s = self._core.log_status()
        return None if s is None else {"logged": s[0], "durable": s[1]}

    @classmethod
    @checked(path=fs_path())
    def replay(cls, path: str | os.PathLike[str], *, score: ScoreSpec = None) -> Engine:
        """Rebuilds the engine an operation log describes. A torn last record (a write cut
        short by a crash, or an operation the crash interrupted) is dropped; ``replay_info``
        says how many operations were replayed and how many bytes were dropped. Damage
        anywhere before the last record raises :class:`adl.CorruptDataError` (every record
        header is checksummed). Call :meth:`log_to` on the result to log again."""
        core, ops, dropped = _adl.Engine.replay(os.fspath(path))
        eng = cls._from_core(core, score)
        eng.replay_info = {"ops": ops, "dropped_bytes": dropped}
        return eng

    @checked(marks=price_or_mapping(tables=True), ts=timestamp(optional=True))
    def set_marks(self, marks: float | Mapping[str, float] | Frame, ts: int | Any | None = None) -> None:
        """Moves marks (all validated first). It liquidates nothing. ``marks``: a price (when
        the engine has exactly one market), a mapping symbol -> price, or a ``(symbol, mark)``
        table. ``ts`` is the caller's clock, stamped on later fills: an integer (any unit),
        or a ``datetime`` (Python, NumPy, pandas), stored as ms since the Unix epoch (naive
        ones read as UTC). The first datetime sets the engine's clock: from then on the
        ``ts`` columns of :meth:`events` and :meth:`fund_history` are ``Datetime("ms")`` in its
        time zone (integers given later are read as ms); the clock survives save, restore
        and replay.

        >>> import adl
        >>> eng = adl.Engine()
        >>> eng.add_market("BTC-PERP")
        >>> eng.set_marks({"BTC-PERP": 96.5}, ts=1_700_000_000_000)
        >>> eng.markets()["mark"].to_list()
        [96.5]
        """
        marks = marks_mapping(marks)
        ms, zone = ts_value(ts)
        if isinstance(marks, Mapping):
            names, prices = list(marks.keys()), [float(v) for v in marks.values()]
        else:
            known = self._names()
            if len(known) != 1:
                raise InvalidInputError(
                    f"marks: a single price needs exactly one market, the engine has {len(known)}; pass a mapping",
                    "marks",
                    None,
                )
            names, prices = known, [float(marks)]
        self._core.set_marks(names, prices, ms, zone)

    @classmethod
    def from_config(cls, config: EngineConfig) -> Engine:
        """An engine with every option of ``config`` (see :class:`EngineConfig`)."""
        if not isinstance(config, EngineConfig):
            raise InvalidInputError(f"config: {config!r} is not an adl.EngineConfig", "config", None)
        return cls(**config.options())

    @property
    def config(self) -> EngineConfig | None:
        """The options this engine was built with, markets added since and ``max_ts_step``
        included (its ``insurance_fund`` is the one it started with); ``None`` for an engine
        restored from a snapshot or a log (its options are part of that state)."""
        return self._config

    @property
    def adl_price(self) -> str:
        """The price of ADL fills in use: ``adl_price=`` as given, else the policy's
        (``"mark"`` for hyperliquid, ``"bankruptcy"`` for the others).

        >>> import adl
        >>> adl.Engine("hyperliquid").adl_price, adl.Engine("bitmex").adl_price
        ('mark', 'bankruptcy')
        """
        return str(self._core.adl_price)

    @property
    def lights(self) -> str:
        """How the queue indicator buckets lights: ``"count"`` or ``"quantity"``.

        >>> import adl
        >>> adl.Engine("bitmex").lights, adl.Engine("binance").lights
        ('quantity', 'count')
        """
        return str(self._core.lights)

    @property
    def insurance_fund(self) -> float:
        """Insurance fund balance (settlement currency): the sum over every pool. Setting it
        sets the ``"default"`` pool and is refused when there are others (see :meth:`set_fund`)."""
        return float(self._core.insurance_fund)

    @insurance_fund.setter
    @checked(amount=FUND)
    def insurance_fund(self, amount: float) -> None:
        # The sum cannot be set when there are several pools: say which one.
        if len(self._core.funds()) > 1:
            raise InvalidInputError("insurance_fund: the engine has several fund pools; use set_fund(amount, pool=...)",
                                    "insurance_fund", None)
        self._core.set_insurance_fund(float(amount))

    @checked(amount=FUND, pool=text())
    def set_fund(self, amount: float, pool: str = "default") -> None:
        """Sets the balance of an insurance-fund pool: ``"default"`` or one that a market names
        with ``fund_pool`` (an unknown name is refused). Markets draw on the
        ``"default"`` pool unless given ``fund_pool=`` (one pool per market, or one shared by
        a group of markets as Bybit does); each pool covers only its own markets' deficits
        and has its own ADL trigger.

        >>> import adl
        >>> eng = adl.Engine(insurance_fund=10.0)
        >>> eng.add_market("BTC", fund_pool="BTC")
        >>> eng.set_fund(250.0, pool="BTC")
        >>> eng.funds().select("pool", "balance").rows()
        [('default', 10.0), ('BTC', 250.0)]
        """
        self._core.set_insurance_fund(float(amount), pool)

    def funds(self) -> pl.DataFrame:
        """Fund pools: ``pool``, ``balance`` (quote units), trigger ``state`` and ``level``.

        >>> import adl
        >>> adl.Engine(insurance_fund=5.0).funds().rows()
        [('default', 5.0, 'normal', 0.0)]
        """
        rows = [(p.pool, p.balance, p.adl_state.state, p.adl_state.level) for p in self._core.funds()]
        return pl.DataFrame(rows, schema=FUND_SCHEMA, orient="row")

    def fund_history(self) -> pl.DataFrame:
        """Every change of a pool's balance, in order: ``ts`` (the clock of the marks; null
        before any), ``event`` (the liquidation; null when set by the caller), ``pool``,
        ``change`` (``set`` or ``liquidation``) and ``balance`` after it. The drawdown trigger
        and the cascade reports read the fund's path from here.

        >>> import adl, polars as pl
        >>> eng = adl.Engine(insurance_fund=3.0)
        >>> eng.load(pl.DataFrame({"account": [1, 2], "side": ["long", "short"],
        ...     "qty": [10.0, 10.0], "entry_price": [100.0, 100.0], "margin": [44.0, 500.0]}))
        >>> eng.set_marks(96.0, ts=5)
        >>> _ = eng.liquidate(1, side="long", fill_price=95.0)
        >>> eng.fund_history().rows()
        [(5, 0, 'default', 'liquidation', 0.0)]
        """
        h = self._core.fund_history()
        names = pl.Series(h["names"], dtype=pl.String)
        return pl.DataFrame(
            {
                "ts": self._shown().ts(h["ts"]),
                "event": pl.Series(h["event"], dtype=pl.Int64),
                "pool": names.gather(pl.Series(h["pool"], dtype=pl.UInt32)),
                "change": pl.Series(["set", "liquidation"], dtype=pl.String).gather(pl.Series(h["change"], dtype=pl.UInt32)),
                "balance": pl.Series(h["balance"], dtype=pl.Float64),
            }
        ).with_columns(
            pl.when(pl.Series(h["has_ts"])).then(pl.col("ts")).alias("ts"),
            pl.when(pl.col("event") >= 0).then(pl.col("event").cast(pl.UInt64)).alias("event"),
        )

    @checked(pool=text())
    def adl_state(self, pool: str = "default") -> AdlState:
        """The ADL trigger of a fund pool as a venue's feed shows it, a frozen record:
        ``trigger``, ``state`` (``normal``, ``soon`` inside the hysteresis band, ``armed``),
        ``armed`` and ``level`` (the drawdown ratio, or fund / peak); ``_asdict()`` gives a dict.

        >>> import adl
        >>> eng = adl.Engine(insurance_fund=100.0, trigger="fund_drop")
        >>> eng.insurance_fund = 65.0
        >>> eng.adl_state()
        AdlState(trigger='fund_drop', state='armed', armed=True, level=0.65)
        >>> eng.adl_state().level
        0.65
        """
        return self._core.adl_state(pool)

    @property
    def bad_debt(self) -> float:
        """Cumulative bad debt (quote units)."""
        return float(self._core.bad_debt)

    def totals(self) -> Totals:
        """Exact ledger totals in cash units (Python ints, however large) and open interest in
        lots, for audits, as a frozen record (``==`` compares every field; ``_asdict()`` gives
        a dict): ``cash + position_equity + fund + book_value + fees - bad_debt`` is conserved
        at fixed marks (``fees``: ADL fees paid to the venue).

        >>> import adl
        >>> adl.Engine(insurance_fund=1.5).totals().fund
        150000000
        """
        return self._core.totals()

    # ----- views -------------------------------------------------------------------

    def _positions(self, which: str) -> pl.DataFrame:
        p = self._core.positions(which)
        names, shown = p["names"], self._shown()
        return pl.DataFrame(
            {
                "account": shown.account(p["account"]),
                "symbol": shown.symbol(p["market"], names),
                "side": side_series(p["side"]),
                "qty": p["qty"],
                "entry_price": p["entry_price"],
                "margin": p["margin"],
                "margin_mode": pl.Series(np.where(p["cross"], "cross", "isolated"), dtype=MARGIN_MODE),
                "equity": p["equity"],
                "maintenance": p["maintenance"],
                "bankruptcy_price": p["bankruptcy_price"],
                "liquidation_price": p["liquidation_price"],
            }
        ).with_columns(pl.col("equity", "maintenance", "bankruptcy_price", "liquidation_price").fill_nan(None))

    def positions(self) -> pl.DataFrame:
        """Open positions with equity and maintenance at the marks (null without a mark),
        bankruptcy and liquidation prices. A cross position's equity is its share of its
        account's net collateral by maintenance, and its prices are docs/model.md §6's with the
        account's other marks held.

        >>> import adl, polars as pl
        >>> eng = adl.Engine()
        >>> eng.load(pl.DataFrame({"account": [1], "side": ["long"], "qty": [10.0],
        ...     "entry_price": [100.0], "margin": [50.0]}))
        >>> eng.set_marks(96.0)
        >>> eng.positions().select("equity", "maintenance", "bankruptcy_price").row(0)
        (10.0, 4.8, 95.0)
        """
        return self._positions("all")

    @checked(symbol=text(optional=True), account=account_id(optional=True), step=number(above=0.0),
             max_move=number(above=0.0))
    def preview(
        self,
        symbol: str | None = None,
        side: str | int | None = None,
        *,
        account: int | str | None = None,
        step: float = 0.005,
        max_move: float = 0.5,
    ) -> pl.DataFrame:
        """What a user's position screen shows: per position, its ``liquidation_price``,
        ``bankruptcy_price``, ADL ``rank`` and ``lights`` (null when not eligible: bankrupt,
        or a pro-rata policy) and ``adl_mark``, the mark at which it would start being
        deleveraged under the current book.

        ``adl_mark`` comes from a gap model: the market's mark jumps from where it is to ``P``
        and every position then below maintenance is liquidated at ``P`` through the
        waterfall (current fund pools and triggers; other markets keep their marks).
        ``adl_mark`` is the nearest ``P`` on the grid ``mark * (1 ± k * step)``, moving in the
        position's favour (its counterparties' loss), at which the gap gives it an ADL fill;
        null if none within ``max_move``. With ``account`` the grid bracket is narrowed to
        one tick, and the rows (market order, longs first) come from :meth:`account`, not
        from whole-book frames. A trial runs on a copy of the engine (a few per cent of a
        second for 10k positions; it grows with the book): nothing changes. Trials that a gap
        model proves reach none of the positions asked about are skipped, with the same answer
        (docs/model.md §7): when nothing is liquidatable at the current marks, no fund pool has
        a trigger and the cross accounts' markets take the liquidation fee from the surplus,
        a gap to ``P`` deleverages nobody if the deficits at ``P`` (isolated positions of the
        other side, and cross accounts' negative TNC) fit in the fund; under ``bitmex`` at the
        bankruptcy price, an isolated position is not reached either when the lots with a
        deficit are no more than those of the isolated counterparties sure to pay that queue
        clearly ahead of it. The model costs one binary search per trial; the other trials
        are run.

        >>> import adl, polars as pl
        >>> eng = adl.Engine(maintenance_rate=0.05, qty_decimals=0, price_decimals=1, cash_decimals=3)
        >>> eng.load(pl.DataFrame({"account": [1, 11, 12], "side": ["short", "long", "long"],
        ...     "qty": [10.0] * 3, "entry_price": [100.0, 100.0, 90.0], "margin": [100.0, 1_000.0, 100.0]}))
        >>> eng.set_marks(100.0)   # the short is bankrupt at 110; the 90 long ranks first
        >>> eng.preview(side="long", step=0.01).select("account", "rank", "adl_mark").sort("account").rows()
        [(11, 2, None), (12, 1, 111.0)]
        >>> eng.preview(side="long", account=12, step=0.01)["adl_mark"].item()
        110.1
        """
        names = [symbol] if symbol is not None else list(self.markets().filter(pl.col("mark").is_not_null())["symbol"])
        sides = [side_value(side)] if side is not None else [1, -1]
        if account is not None:
            return self._preview_account(account, names, sides, float(step), float(max_move))
        positions = self.positions()
        found = []
        for name in names:
            for s in sides:
                with self._labelled_errors():
                    d = self._core.adl_marks(name, s, float(step), float(max_move), None)
                shown = self._shown()
                found.append(pl.DataFrame({
                    "account": shown.account(d["account"]),
                    "symbol": symbol_like(pl.Series("symbol", [name] * len(d["account"]), dtype=pl.String),
                                          self._symbol_dtype),
                    "side": pl.Series(["long" if s > 0 else "short"] * len(d["account"]), dtype=SIDE),
                    "adl_mark": pl.Series(d["mark"], dtype=pl.Float64).fill_nan(None),
                }))
        keys = ["account", "symbol", "side"]
        empty: dict[str, pl.DataType] = {"account": self._shown().account_dtype(), "symbol": positions["symbol"].dtype,
                                         "side": SIDE, "adl_mark": pl.Float64()}
        marks = pl.concat(found) if found else pl.DataFrame(schema=empty)
        queue = self.indicator().select(*keys, "rank", "lights")
        return (
            positions
            .join(marks, on=keys, how="inner")
            .join(queue, on=keys, how="left")
            .select(*keys, "qty", "liquidation_price", "bankruptcy_price", "rank", "lights", "adl_mark")
        )

    def _preview_account(self, account: int | str, names: list[str], sides: list[int], step: float,
                         max_move: float) -> pl.DataFrame:
        """``preview`` of one account's positions in ``names`` × ``sides``, from the account's
        own view (no whole-book frame): rows in market order, longs first."""
        view = self.account(account)
        code = self._account_in(account)
        shown = [v for v in view.positions if v.symbol in names and side_value(v.side) in sides]
        if not shown:
            raise InvalidInputError(f"account: {account} has no open position to preview here", "account", None)
        marks: list[float | None] = []
        for v in shown:
            with self._labelled_errors():
                d = self._core.adl_marks(v.symbol, side_value(v.side), step, max_move, code)
            mark = float(d["mark"][0])
            marks.append(None if mark != mark else mark)       # NaN: none within max_move
        return pl.DataFrame(
            {
                "account": pl.Series([v.account for v in shown], dtype=self._shown().account_dtype()),
                "symbol": symbol_like(pl.Series([v.symbol for v in shown], dtype=pl.String), self._symbol_dtype),
                "side": pl.Series([v.side for v in shown], dtype=SIDE),
                "qty": pl.Series([v.qty for v in shown], dtype=pl.Float64),
                "liquidation_price": pl.Series([v.liquidation_price for v in shown], dtype=pl.Float64),
                "bankruptcy_price": pl.Series([v.bankruptcy_price for v in shown], dtype=pl.Float64),
                "rank": pl.Series([v.queue.rank if v.queue else None for v in shown], dtype=pl.UInt32),
                "lights": pl.Series([v.queue.lights if v.queue else None for v in shown], dtype=pl.UInt8),
                "adl_mark": pl.Series(marks, dtype=pl.Float64),
            }
        )

    def liquidatable(self) -> pl.DataFrame:
        """Positions with equity < maintenance, worst (lowest equity / maintenance) first.

        >>> import adl, polars as pl
        >>> eng = adl.Engine()
        >>> eng.load(pl.DataFrame({"account": [1, 2], "side": ["long", "short"], "qty": [10.0, 10.0],
        ...     "entry_price": [100.0, 100.0], "margin": [44.0, 50.0]}))
        >>> eng.set_marks(96.0)
        >>> eng.liquidatable()["account"].to_list()
        [1]
        """
        return self._positions("liquidatable")

    def accounts(self) -> pl.DataFrame:
        """Per account: free ``cash`` (a cross account's wallet), ``equity`` (cash + Σ position
        equity ``margin + PnL`` at the marks) and the number of open ``positions``.

        >>> import adl
        >>> adl.Engine().accounts().columns
        ['account', 'cash', 'equity', 'positions']
        """
        a = self._core.accounts()
        return pl.DataFrame(
            {
                "account": self._shown().account(a["account"]),
                "cash": a["cash"],
                "equity": a["equity"],
                "positions": pl.Series(a["positions"], dtype=pl.UInt32),
            }
        )

    @checked(account=ACCOUNT, symbol=text(optional=True))
    def position(self, account: int | str, symbol: str | None = None, side: str | int = "long") -> PositionView:
        """One position as its holder's screen shows it, without whole-book frames: the
        columns of :meth:`positions` and its place in the ADL queue (``queue``, as
        :meth:`indicator` gives it). The first read after a mark change ranks that side again.

        >>> import adl, polars as pl
        >>> eng = adl.Engine()
        >>> eng.load(pl.DataFrame({"account": [1, 2], "side": ["short", "short"], "qty": [10.0, 10.0],
        ...     "entry_price": [100.0, 100.0], "margin": [20.0, 60.0]}))
        >>> eng.set_marks(96.0)
        >>> v = eng.position(2, side="short")      # equity 60 + 10·(100 − 96) = 100
        >>> (v.equity, v.bankruptcy_price, v.queue.rank, v.queue.lights, v.queue.notional_ahead)
        (100.0, 106.0, 2, 1, 960.0)
        """
        held = self._core.label_count()
        code = self._account_in(account, held)
        try:        # not `_labelled_errors`: a context manager costs a few µs of a 20 µs read
            raw = self._core.position_view(code, self._symbol(symbol), side_value(side))
        except AdlError as e:
            raise self._shown().error(e) from None
        return position_view(raw, self._labeller(held))

    @checked(account=ACCOUNT)
    def account(self, account: int | str) -> AccountView:
        """One account: cash, equity, cross totals and every position (as :meth:`position`).

        >>> import adl, polars as pl
        >>> eng = adl.Engine()
        >>> eng.load(pl.DataFrame({"account": [7], "side": ["long"], "qty": [1.0], "entry_price": [100.0],
        ...     "margin": [0.0], "margin_mode": ["cross"]}), accounts=pl.DataFrame({"account": [7], "cash": [30.0]}))
        >>> eng.set_marks(90.0)
        >>> a = eng.account(7)                      # TNC = 30 + (90 − 100) = 20
        >>> (a.cash, a.equity, a.tnc, len(a.positions))
        (30.0, 20.0, 20.0, 1)
        """
        held = self._core.label_count()
        code = self._account_in(account, held)
        try:
            cash, equity, cross, rows = self._core.account_view(code)
        except AdlError as e:
            raise self._shown().error(e) from None
        label = self._labeller(held)
        return account_view(label(code), cash, equity, cross, rows, label)

    def indicator(self) -> pl.DataFrame:
        """The ADL queue as users see it, for every eligible position of a market with a mark
        (empty under a pro-rata policy, which ranks nobody):
        ``score``, exact ``rank`` in its (symbol, side), ``percentile`` and ``lights`` (5 = first
        20 %) by the engine's ``lights`` method (by count or by cumulative quantity),
        ``quantile`` (lights - 1) and ``notional_ahead`` (value queued before it, in the settlement currency).

        >>> import adl, polars as pl
        >>> eng = adl.Engine()
        >>> eng.load(pl.DataFrame({"account": [1, 2], "side": ["short", "short"], "qty": [10.0, 10.0],
        ...     "entry_price": [100.0, 100.0], "margin": [20.0, 60.0]}))
        >>> eng.set_marks(96.0)
        >>> eng.indicator().select("account", "rank", "lights", "notional_ahead").rows()
        [(1, 1, 3, 0.0), (2, 2, 1, 960.0)]
        """
        d = self._core.indicator()
        shown = self._shown()
        return pl.DataFrame(
            {
                "account": shown.account(d["account"]),
                "symbol": shown.symbol(d["market"], d["names"]),
                "side": side_series(d["side"]),
                "score": d["score"],
                "rank": pl.Series(d["rank"], dtype=pl.UInt32),
                "percentile": d["percentile"],
                "lights": pl.Series(d["lights"], dtype=pl.UInt8),
                "notional_ahead": d["notional_ahead"],
            }
        ).with_columns(quantile=pl.col("lights") - 1)

    @checked(since=integer(0, U64))
    def events(self, since: int = 0) -> pl.DataFrame:
        """Audit log: the fill records (docs/model.md §5) the engine holds, in event order,
        of the events with id ``>= since``: a cursor, the id after the last event already
        read (``frame["event"].max() + 1``), so a reader gets each record once. Records are
        held unless :attr:`keep_fills` is off, until :meth:`drain_events` drops them.

        Examples
        --------
        >>> import adl, polars as pl
        >>> adl.Engine().events().columns[:5]
        ['event', 'ts', 'symbol', 'bankrupt_account', 'bankrupt_side']
        >>> eng = adl.Engine()
        >>> eng.load(pl.DataFrame({"account": [1, 2, 3], "side": ["long", "long", "short"],
        ...     "qty": [10.0, 10.0, 30.0], "entry_price": [100.0] * 3, "margin": [44.0, 44.0, 900.0]}))
        >>> eng.set_marks(96.0)
        >>> eng.liquidate(1, side="long", fill_price=95.0).events
        [0]
        >>> eng.liquidate(2, side="long", fill_price=95.0).events
        [1]
        >>> eng.events(since=1).select("event", "account", "qty").rows()
        [(1, 3, 10.0)]
        """
        cols = self._core.events(since)
        return fills_frame(cols, cols["names"], self._shown())

    @checked(upto=integer(0, U64))
    def drain_events(self, upto: int) -> int:
        """Drops the fill records of the events with id ``< upto`` (a cursor as in
        :meth:`events`: the id after the last event read) and returns how many it dropped.
        Refused (:class:`adl.InvalidInputError`, field ``upto``, nothing changed) past the
        next event's id. It changes the engine's state, so it is logged (:meth:`log_to`) and
        :attr:`drained_upto` travels in snapshots; results and ledgers are unaffected.

        A reader that ships fills elsewhere and keeps the engine's memory flat:

        >>> import adl, polars as pl
        >>> eng = adl.Engine()
        >>> eng.load(pl.DataFrame({"account": [1, 2, 3], "side": ["long", "long", "short"],
        ...     "qty": [10.0, 10.0, 30.0], "entry_price": [100.0] * 3, "margin": [44.0, 44.0, 900.0]}))
        >>> eng.set_marks(96.0)
        >>> cursor = 0
        >>> for account in (1, 2):
        ...     _ = eng.liquidate(account, side="long", fill_price=95.0)
        ...     new = eng.events(since=cursor)
        ...     cursor = new["event"].max() + 1
        ...     print(new.height, eng.drain_events(upto=cursor))
        1 1
        1 1
        >>> (eng.events().height, eng.drained_upto)
        (0, 2)
        """
        return int(self._core.drain_events(upto))

    @property
    def keep_fills(self) -> bool:
        """Whether events keep their fill records for :meth:`events`. Setting it to False
        stops recording (the records held stay until :meth:`drain_events`); True starts
        again. Results, ledgers and event ids do not depend on it. The setting is engine
        state: it is logged and travels in snapshots.

        >>> import adl
        >>> eng = adl.Engine(keep_fills=False)
        >>> eng.keep_fills
        False
        >>> eng.keep_fills = True
        >>> adl.Engine.restore(eng.snapshot()).keep_fills
        True
        """
        return bool(self._core.keep_fills)

    @keep_fills.setter
    @checked(keep=flag())
    def keep_fills(self, keep: bool) -> None:
        self._core.set_keep_fills(keep)
        if self._config is not None:
            self._config = replace(self._config, keep_fills=keep)

    @property
    def drained_upto(self) -> int:
        """The fill records of events with id below this were dropped by :meth:`drain_events`
        (0: never drained)."""
        return int(self._core.drained_upto)

    # ----- liquidation -------------------------------------------------------------

    def _symbol(self, symbol: str | None) -> str:
        if symbol is not None:
            return symbol
        names = self._names()
        if len(names) != 1:
            raise InvalidInputError("symbol: required when the engine has several markets", "symbol", None)
        return names[0]

    @checked(account=ACCOUNT, symbol=text(optional=True), fill_price=number(above=0.0, optional=True), force=flag(),
             dry_run=flag(), partial=flag(), max_adl=number(0.0, optional=True))
    def liquidate(
        self,
        account: int | str,
        symbol: str | None = None,
        side: str | int = "long",
        fill_price: float | None = None,
        *,
        force: bool = False,
        dry_run: bool = False,
        partial: bool = False,
        max_adl: float | None = None,
    ) -> LiquidationResult:
        """Liquidates one position through the waterfall: the book at ``fill_price`` (None =
        mark) if it pays the bankruptcy price; else the fund covers whole lots, ADL closes the
        rest at the bankruptcy price, and what no counterparty can take is bad debt.
        Refuses a position at or above maintenance unless ``force``. ``dry_run`` previews.
        ``partial`` (isolated positions) first tries to close only the fewest lots, at
        ``fill_price`` through the book, that bring the position back to maintenance (with
        tiers, often by dropping it to a lower tier); the closed lots' loss and the fee come
        out of its margin. Only when no part will do is the whole position liquidated.
        ``max_adl`` (contracts, rounded down to whole lots; None = no cap) is a severity budget
        (docs/severity.md): ADL closes at most that many; the other lots past the fund close
        against the book at ``fill_price``, the fund's leftover pays their deficit and the
        rest is bad debt (docs/model.md §2 step 5). It is logged with the call.

        >>> import adl, polars as pl
        >>> eng = adl.Engine(insurance_fund=3.0)
        >>> eng.load(pl.DataFrame({"account": [1, 2], "side": ["long", "short"],
        ...     "qty": [10.0, 10.0], "entry_price": [100.0, 100.0], "margin": [44.0, 500.0]}))
        >>> eng.set_marks(96.0)
        >>> capped = eng.liquidate(1, side="long", fill_price=95.0, max_adl=2.0, dry_run=True)
        >>> (capped.adl_qty, capped.external_qty, capped.bad_debt)   # 3 lots more at 95: 3·0.6
        (2.0, 8.0, 1.8)
        >>> res = eng.liquidate(1, side="long", fill_price=95.0)   # deficit 0.6 per lot
        >>> (res.from_fund, res.external_qty, res.adl_qty)          # fund covers 5 lots
        (3.0, 5.0, 5.0)
        """
        code = self._account_in(account)
        with self._labelled_errors():
            raw = self._core.liquidate(
                code, self._symbol(symbol), side_value(side),
                None if fill_price is None else float(fill_price), force, dry_run, partial,
                None if max_adl is None else float(max_adl),
            )
        return LiquidationResult(raw, self._shown())

    @checked(account=ACCOUNT, force=flag(), partial=flag())
    def liquidate_account(self, account: int | str, *, force: bool = False, partial: bool = False) -> LiquidationResult:
        """Liquidates every cross position of ``account`` at the marks, largest maintenance
        first (then market, longs first). Each takes its share of the account's net collateral
        (by maintenance) out of the wallet and goes through the waterfall as an isolated
        position would, so at its cross bankruptcy price ``P - side * TNC_i / q`` the account
        ends at exactly zero. Refused unless the account's net collateral is below its total
        maintenance (or ``force``). With ``partial``, each position in that order is first
        closed only as far as brings the account back to maintenance (its loss and fee out of
        the wallet), and the rest stay open once it is.

        >>> import adl, polars as pl
        >>> eng = adl.Engine(markets={"X": adl.Market(0, 0, 0.1), "Y": adl.Market(0, 0, 0.06)})
        >>> eng.load(pl.DataFrame({"account": [1, 1, 2, 3], "symbol": ["X", "Y", "X", "Y"],
        ...     "side": ["long", "short", "short", "long"], "qty": [10.0, 5.0, 10.0, 5.0],
        ...     "entry_price": [100.0, 200.0, 100.0, 190.0], "margin": [0.0, 0.0, 100.0, 100.0],
        ...     "margin_mode": ["cross", "cross", "isolated", "isolated"]}),
        ...     accounts=pl.DataFrame({"account": [1], "wallet": [50.0]}))
        >>> eng.set_marks({"X": 90.0, "Y": 200.0})   # TNC = 50 - 100 = -50, TMMR = 90 + 60
        >>> eng.liquidate_account(1).fills.select("symbol", "account", "qty", "price").rows()
        [('X', 2, 10.0, 93.0), ('Y', 3, 5.0, 196.0)]
        """
        code = self._account_in(account)
        with self._labelled_errors():
            raw = self._core.liquidate_account(code, force, partial)
        return LiquidationResult(raw, self._shown())

    @checked(force=flag(), partial=flag())
    def liquidate_many(self, frame: Frame, *, force: bool = False, partial: bool = False,
                       columns: ColumnMap = None) -> LiquidationResult:
        """Liquidates a batch in row order (columns ``account``, ``side``, optional ``symbol``
        and ``fill_price``; a null fill price means the mark; ``columns`` renames the
        caller's columns as in :meth:`load`). All rows are validated first:
        on error nothing is applied. Rows whose position an earlier row already closed
        through ADL are skipped and listed in ``skipped``. ``partial`` as in :meth:`liquidate`.

        >>> import adl, polars as pl
        >>> eng = adl.Engine()
        >>> eng.load(pl.DataFrame({"account": [1, 2, 3], "side": ["long", "long", "short"],
        ...     "qty": [10.0, 10.0, 30.0], "entry_price": [100.0] * 3, "margin": [44.0, 44.0, 900.0]}))
        >>> eng.set_marks(96.0)
        >>> res = eng.liquidate_many(pl.DataFrame({"account": [1, 2], "side": ["long", "long"],
        ...     "fill_price": [95.0, 95.0]}))
        >>> (res.events, res.adl_qty)
        ([0, 1], 20.0)
        """
        (df,) = mapped(columns, ("batch", frame))
        assert df is not None
        for c in ("account", "side"):
            if c not in df.columns:
                raise SchemaError(f"batch: missing column {c!r}", c, None)
        if "symbol" in df.columns:
            market, names = symbol_codes(df)
        else:
            market, names = np.zeros(df.height, dtype=np.uint32), [self._symbol(None)]
        if "fill_price" in df.columns:
            fp = df["fill_price"]
            if fp.dtype.is_float() and fp.is_nan().any():
                row = int(fp.is_nan().arg_max() or 0)
                raise InvalidInputError(f"fill_price[row {row}]: NaN (use null for the mark)", "fill_price", row)
            fp = cast_lossless(fp.fill_null(float("nan")), pl.Float64(), "fill_price")
        else:
            fp = pl.Series(np.full(df.height, np.nan))
        if is_text(df["account"].dtype):
            _no_nulls(df["account"], "account")
            found = df.select(pl.col("account").cast(pl.String)).join(
                self._labels().to_frame().with_row_index("code"), on="account", how="left", maintain_order="left")["code"]
            if found.null_count():
                row = int(found.is_null().arg_max() or 0)
                raise UnknownPositionError(f"account[row {row}]: {df['account'][row]!r} is not an account of this engine",
                                           df["account"][row], None, None)
            accounts = found.cast(pl.UInt64)
        else:
            (accounts,), _ = self._account_codes([("account", df["account"])])
        with self._labelled_errors():
            raw = self._core.liquidate_many(
                numpy_view(accounts),
                market,
                numpy_view(side_codes(df["side"])),
                numpy_view(fp),
                names,
                force,
                partial,
            )
        return LiquidationResult(raw, self._shown())
