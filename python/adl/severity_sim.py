"""Severity controllers inside a simulated cascade (``adl.simulate(..., severity=controller)``).

The mapping from the engine's events to the round model of docs/model.md §8 (docs/severity.md,
"In the simulator"); values in the settlement currency, V(P) the value of lots at price P:

- **round t** = one liquidation whose lots reach ADL: after the fund has covered what it can,
  Q_t lots are left for ADL (the paper's wave is a burst of such events; the event is the
  unit whose deficit is known before anything is decided);
- **D_t** = the deficit those Q_t lots leave at the book's fill price F:
  Σ σ_b·(V(P_ADL) − V(F)) over the fills an uncapped event would make;
- **U_t** = Σ u_i, u_i the unrealised profit at the mark (>= 0) of each opposite position
  (``RoundStart.book``: ``account``, ``capacity``); ``RoundStart.markets``: the symbol and
  Q_t in contracts;
- the controller's θ_t gives the **budget** B_t = θ_t·D_t and the cap k_t = ⌊θ_t·Q_t⌋ lots
  (every lot of the event carries the same deficit, so θ of the lots is θ of D, rounded down
  to whole lots); the engine ADLs at most k_t lots (``Engine.liquidate_capped``); the other
  lots past the fund close against the book at F, the fund's leftover pays their deficit and
  the rest is **bad debt**, as for lots no counterparty can take (model §2 step 5);
- **H_t** (``seized``) = the deficit the ADL'd lots took over, Σ σ_b·(V(P_ADL) − V(F));
- **B_t^needed** (ex-post) = the deficit the Q_t lots carry at the mark ``horizon`` (Δ) later,
  (Σ σ_b·(V(P_ADL) − V(P_{t+Δ})))⁺: had the venue waited Δ, that is what ADL had to cover.
  With Δ = 0 and a position liquidated before its bankruptcy price it is 0: the whole deficit
  was the book's slippage. The controller observes a round only once its horizon has passed
  (at the first later round with ts >= t + Δ), never before deciding;
- **burden** m_t = max_i k_i/q_i over the accounts ADL hit (lots closed / lots held), and
  **m_t^ILP** the exact min-max integer program (:func:`adl.lots.min_max_level`) over every
  opposite position's lots, for the ⌈θ*_t·Q_t⌉ lots that would cover the need,
  θ*_t = min(1, B_t^needed/D_t).

Every controller's rounds are its own cascade (a cap changes who is left for later events),
so each result carries its own :class:`adl.severity.Rounds`; compare totals, not rounds.

>>> import adl, polars as pl
>>> book = pl.DataFrame({"account": [1, 2, 3], "side": ["long", "short", "short"],
...     "qty": [10.0, 6.0, 6.0], "entry_price": [100.0] * 3, "margin": [50.0, 100.0, 300.0]})
>>> path = pl.DataFrame({"ts": [0, 1], "symbol": ["default"] * 2, "mark": [100.0, 94.0]})
>>> res = adl.simulate(book, path, insurance_fund=0.0, liquidation=adl.Slippage(0.0),
...                    severity=adl.severity.FixedTheta(0.5))
>>> res.severity.losses(lam=1.0).select("deficit", "need", "seized", "bad_debt", "tracking").row(0)
(10.0, 10.0, 5.0, 5.0, 5.0)
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from adl._adl import SeverityRound, SeverityStart
from adl.lots import min_max_level
from adl.severity import Controller, RoundOutcome, Rounds, RoundStart, _check_theta, _decisions, losses, summary


@dataclass
class _Pending:
    start: RoundStart
    ts: int
    market: int
    theta: float
    lots: int
    codes: list[int]       # the engine's account codes of the opposite positions
    opposite: list[int]    # their lots
    outcome: SeverityRound | None = None
    row: dict[str, Any] | None = None   # _round_row, once the outcome is known


@dataclass
class Driver:
    """Plays ``controller`` at each round of a simulation (the ``severity`` hook of
    ``adl._adl.Simulation.run``): it releases to ``observe`` the rounds whose horizon has
    passed, builds the :class:`RoundStart` (no need in it), asks for θ and returns the cap
    in lots. ``qty_scale[m]`` = lots per contract of market m; ``accounts`` maps the engine's
    account codes to the ids the user gave (string labels of a labelled book).
    """

    controller: Controller
    names: list[str]
    qty_scale: list[float]
    horizon: int
    accounts: Callable[[list[int]], pl.Series] | None = None   # engine codes -> shown ids
    # Per market, the sorted ts of its prices: a round's need is valued at the first price at
    # or after ts + Δ (else the last one), so it is known only once that price has printed.
    price_ts: list[np.ndarray[Any, Any]] = field(default_factory=list)
    played: list[_Pending] = field(default_factory=list)
    _released: int = 0

    def __call__(self, start: SeverityStart, previous: SeverityRound | None) -> int:
        if previous is not None:
            self.played[-1].outcome = previous
        now = start.ts
        while self._released < len(self.played):
            p = self.played[self._released]
            if p.outcome is None or self._known_at(p) > now:
                break
            self.controller.observe(self._outcome(p))
            self._released += 1
        symbol = self.names[start.market]
        lots = start.lots
        rs = RoundStart(
            len(self.played), str(start.event), max(0.0, start.deficit), float(sum(start.opposite_profit)),
            pl.DataFrame({"market": [symbol], "qty": [lots / self.qty_scale[start.market]]}),
            pl.DataFrame({"account": self._shown(start.opposite_account),
                          "capacity": pl.Series(start.opposite_profit, dtype=pl.Float64)}),
        )
        theta = _check_theta(self.controller.decide(rs), self.controller.name, rs.index)
        self.played.append(_Pending(rs, now, start.market, theta, lots, start.opposite_account, start.opposite_lots))
        return math.floor(theta * lots)

    def _known_at(self, p: _Pending) -> int:
        """When round ``p``'s need is known: Δ after it, and not before the price it is valued at."""
        due = p.ts + self.horizon
        if p.market >= len(self.price_ts) or not len(ts := self.price_ts[p.market]):
            return due
        i = int(np.searchsorted(ts, due, side="left"))
        return max(due, int(ts[min(i, len(ts) - 1)]))

    def _shown(self, codes: list[int]) -> pl.Series:
        if self.accounts is not None:
            return self.accounts(codes).alias("account")
        return pl.Series("account", codes, dtype=pl.UInt64)

    def _outcome(self, p: _Pending) -> RoundOutcome:
        r = _round_row(p)
        markets = p.start.markets.with_columns(need=pl.lit(r["need"])) if p.start.markets is not None else None
        return RoundOutcome(p.start, r["need"], r["ilp_burden"], p.theta, r["seized"], r["burden"], markets)


def _round_row(p: _Pending) -> dict[str, Any]:
    """One played round's numbers (see the module docstring), computed once."""
    o = p.outcome
    assert o is not None
    if p.row is not None:
        return p.row
    d, q, need = p.start.deficit, p.lots, o.need
    theta_star = min(1.0, need / d) if d > 0 else 1.0
    needed = min(q, math.ceil(theta_star * q - 1e-9))
    held = dict(zip(p.codes, p.opposite))
    closed: dict[int, int] = {}
    for a, k in zip(o.closed_account, o.closed_lots):
        closed[a] = closed.get(a, 0) + k
    burden = max((k / held[a] for a, k in closed.items() if held.get(a)), default=0.0)
    lots = [x for x in p.opposite if x > 0]
    ilp = float(min_max_level(lots, [1] * len(lots), min(needed, sum(lots)))) if lots and needed > 0 else 0.0
    p.row = {"need": need, "seized": o.covered, "burden": burden, "ilp_burden": ilp, "cap": o.cap,
             "adl_lots": o.adl_lots, "bad_debt": o.bad_debt, "haircut": o.haircut}
    return p.row


@dataclass(frozen=True)
class SeverityRun:
    """The severity rounds of one simulated cascade under one controller.

    - ``rounds``: the round model (:class:`adl.severity.Rounds`: D, U, need, m^ILP per round);
    - ``decisions``: the controller's θ, budget, seized (H_t) and burden per round;
    - ``table``: per round ``round, event, ts, symbol, qty`` (Q_t, contracts), ``deficit``,
      ``capacity``, ``theta, budget``, ``cap_qty`` (⌊θ·Q⌋ in contracts), ``adl_qty`` (ADL done),
      ``seized``, ``need``, ``overshoot`` = (seized − need)⁺, ``undershoot`` = (need − seized)⁺,
      ``bad_debt``, ``haircut`` (Σ x_c(Δ) of the ADL fills), ``burden, ilp_burden``.
    """

    policy: str
    online: bool
    rounds: Rounds
    decisions: pl.DataFrame
    table: pl.DataFrame

    def losses(self, lam: float = 1.0) -> pl.DataFrame:
        """:attr:`table` with the round model's ``tracking``, ``fairness`` (at ``lam``) and ``total``."""
        per = losses(self.rounds, self.decisions, lam=lam).select("round", "tracking", "fairness", "total")
        return self.table.join(per, on="round", how="left").sort("round")

    def summary(self, lam: float = 1.0) -> pl.DataFrame:
        """One row: ``policy, online, rounds, tracking, fairness, total, pct_envelope`` (of this
        cascade's B_inst), and the totals ``deficit, need, seized, overshoot, undershoot, adl_qty,
        bad_debt, haircut``.

        >>> import adl, polars as pl
        >>> book = pl.DataFrame({"account": [1, 2, 3], "side": ["long", "short", "short"],
        ...     "qty": [10.0, 6.0, 6.0], "entry_price": [100.0] * 3, "margin": [50.0, 100.0, 300.0]})
        >>> path = pl.DataFrame({"ts": [0, 1], "symbol": ["default"] * 2, "mark": [100.0, 94.0]})
        >>> prod = adl.simulate(book, path, insurance_fund=0.0, liquidation=adl.Slippage(0.0),
        ...                     severity=adl.severity.FixedTheta(1.0, name="production"))
        >>> s = prod.severity.summary(lam=1.0)       # fairness 10·(1 − 5/6); B_inst = 10
        >>> s["policy"].item(), round(s["total"].item(), 4), round(s["pct_envelope"].item(), 2)
        ('production', 1.6667, 16.67)
        """
        s = summary(self.rounds, self.decisions, lam=lam)
        if s.height == 0:
            s = pl.DataFrame({"policy": [self.policy], "online": [self.online], "tracking": [0.0], "fairness": [0.0],
                              "total": [0.0], "pct_envelope": [None]}, schema=s.schema)
        t = self.table
        return s.with_columns(rounds=pl.lit(t.height, pl.Int64)).with_columns(
            **{c: pl.lit(float(t[c].sum()), pl.Float64) for c in ("deficit", "need", "seized", "overshoot", "undershoot",
                                                                  "adl_qty", "bad_debt", "haircut")}
        ).select("policy", "online", "rounds", "tracking", "fairness", "total", "pct_envelope",
                 "deficit", "need", "seized", "overshoot", "undershoot", "adl_qty", "bad_debt", "haircut")


def severity_run(driver: Driver, rounds: list[SeverityRound]) -> SeverityRun:
    """Builds the :class:`SeverityRun` from the driver and the simulation's recorded rounds."""
    c = driver.controller
    rows, dec = [], []
    for p, o in zip(driver.played, rounds):
        if p.outcome is None or p.outcome.start.event != o.start.event:
            p.outcome, p.row = o, None
        r = _round_row(p)
        m = o.start.market
        scale = driver.qty_scale[m]
        budget = p.theta * p.start.deficit
        rows.append({
            "round": p.start.index, "event": o.start.event, "ts": o.start.ts, "symbol": driver.names[m],
            "qty": p.lots / scale, "deficit": p.start.deficit, "capacity": p.start.capacity, "theta": p.theta,
            "budget": budget, "cap_qty": r["cap"] / scale, "adl_qty": r["adl_lots"] / scale, "seized": r["seized"],
            "need": r["need"], "overshoot": max(0.0, r["seized"] - r["need"]), "undershoot": max(0.0, r["need"] - r["seized"]),
            "bad_debt": r["bad_debt"], "haircut": r["haircut"], "burden": r["burden"], "ilp_burden": r["ilp_burden"],
        })
        dec.append({"policy": c.name, "online": c.online, "round": p.start.index, "theta": p.theta, "budget": budget,
                    "seized": r["seized"], "burden": r["burden"]})
    schema = {"round": pl.Int64, "event": pl.UInt64, "ts": pl.Int64, "symbol": pl.String, **{k: pl.Float64 for k in (
        "qty", "deficit", "capacity", "theta", "budget", "cap_qty", "adl_qty", "seized", "need", "overshoot", "undershoot",
        "bad_debt", "haircut", "burden", "ilp_burden")}}
    table = pl.DataFrame(rows, schema=schema)
    model = Rounds.from_frame(
        table.select(label=pl.col("event").cast(pl.String), deficit="deficit", capacity="capacity", need="need",
                     ilp_burden="ilp_burden"),
        table.select("round", market="symbol", qty="qty", need="need"),
    )
    return SeverityRun(c.name, c.online, model, _decisions(dec), table)


__all__ = ["Driver", "SeverityRun", "severity_run"]
