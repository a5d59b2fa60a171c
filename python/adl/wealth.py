"""The wealth-space model of ADL (Chitra, arXiv:2512.01112; docs/model.md §4).

Account ``i`` has protected ``cash`` c_i >= 0 and ``pnl``; only its profit w_i = max(pnl_i, 0)
can be haircut. Equity e_i = c_i + pnl_i, deficit D = Σ max(-e_i, 0), capacity U = Σ w_i,
budget B = θ·D (or ``budget``). A policy picks haircuts h_i in [0, 1]; seized x_i = h_i·w_i,
H = Σ x_i = min(B, what the policy can take), post-ADL equity e'_i = e_i - x_i.

Vectorised NumPy on the accounts of one event: this is an analysis model, not the engine's
hot path (the engine works in contract space, in Rust).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, Literal, get_args

import numpy as np
import polars as pl

from adl._args import checked, number, text
from adl._io import Frame, account_codes, cast_lossless, collect
from adl.errors import InvalidInputError, SchemaError
from adl.inequality import ptsr_pmr

WealthPolicy = Literal["queue", "pro_rata", "capped_pro_rata", "levered_pro_rata", "min_max_leverage"]
Array = np.ndarray[Any, np.dtype[np.float64]]


def _column(df: pl.DataFrame, name: str, *, low: float | None = None, high: float | None = None) -> Array:
    s = cast_lossless(df[name], pl.Float64(), name)
    values: Array = s.to_numpy()
    bad = ~np.isfinite(values)
    if low is not None:
        bad |= values < low
    if high is not None:
        bad |= values > high
    if bad.any():
        row = int(np.argmax(bad))
        bounds = f" in [{low}, {high}]" if high is not None else (f" >= {low}" if low is not None else "")
        raise InvalidInputError(f"{name}[row {row}]: {values[row]!r} must be finite{bounds}", name, row)
    return values


def _water_fill(limit: Array, weight: Array, target: float) -> Array:
    """Amounts a_i = min(limit_i, λ·weight_i) with Σ a_i = target (0 <= target <= Σ limit):
    raise the common level λ, accounts drop out as they reach their limit."""
    amount = np.zeros_like(limit)
    active = (weight > 0) & (limit > 0)
    if target <= 0 or not active.any():
        return amount
    idx = np.flatnonzero(active)
    # An account saturates at λ_i = limit_i / weight_i; visit them in that order.
    order = idx[np.argsort(limit[idx] / weight[idx], kind="stable")]
    sat = limit[order] / weight[order]
    # Before account k saturates: Σ_{j<k} limit_j + λ Σ_{j>=k} weight_j.
    done = np.concatenate(([0.0], np.cumsum(limit[order])))[:-1]
    rest = np.cumsum(weight[order][::-1])[::-1]
    reached = done + sat * rest
    k = int(np.searchsorted(reached, target, side="left"))
    if k >= len(order):
        amount[order] = limit[order]
        return amount
    lam = (target - done[k]) / rest[k]
    amount[order[:k]] = limit[order[:k]]
    # Rounding in λ must not take a tiny holding past its limit (a haircut above 100 %).
    amount[order[k:]] = np.minimum(lam * weight[order[k:]], limit[order[k:]])
    return amount


def _queue(w: Array, score: Array, account: Array, target: float) -> Array:
    """Whole profits in descending score (ties: lower account first), the last one partial."""
    order = np.lexsort((account, -score))
    taken = np.minimum(w[order], np.maximum(target - (np.cumsum(w[order]) - w[order]), 0.0))
    x = np.zeros_like(w)
    x[order] = taken
    return x


def _min_max_leverage(w: Array, e: Array, lev: Array, account: Array, target: float) -> Array:
    """Lower the most levered accounts to a common level L. Seizing h of an account's profit
    closes the fraction h of its position, so its leverage becomes ℓ·e·(1 - h) / (e - h·w)
    (released margin stays in the account); solve for the level L at which Σ h·w = target."""
    x = np.zeros_like(w)
    can = (w > 0) & (e > 0) & (lev > 0)
    if target <= 0 or not can.any():
        return x

    def seized(level: float) -> Array:
        h = np.zeros_like(w)
        above = can & (lev > level)
        ell, eq, ww = lev[above], e[above], w[above]
        h[above] = np.clip(eq * (ell - level) / (ell * eq - level * ww), 0.0, 1.0)
        return h * w

    lo, hi = 0.0, float(lev[can].max())  # seized(lo) = Σ w >= target >= seized(hi) = 0
    for _ in range(200):
        mid = (lo + hi) / 2
        if seized(mid).sum() > target:
            lo = mid
        else:
            hi = mid
    x = seized(hi)
    # What the levels cannot reach is taken by leverage, highest first: the bisection's last
    # sliver, and accounts whose leverage a partial close does not lower (no cash beside the
    # profit: ℓ·e·(1 - h)/(e - h·w) = ℓ when w = e), where min-max becomes a leverage queue.
    short = target - float(x.sum())
    for i in np.lexsort((account, -lev)):
        if short <= 0:
            break
        if can[i]:
            take = min(float(w[i] - x[i]), short)
            x[i] += take
            short -= take
    return x


@checked(policy=text(choices=get_args(WealthPolicy)), theta=number(0.0, 1.0), budget=number(0.0, optional=True))
def allocate(
    accounts: Frame,
    *,
    policy: WealthPolicy,
    theta: float = 1.0,
    budget: float | None = None,
) -> pl.DataFrame:
    """Splits an ADL budget over the accounts' profits under a wealth-space ``policy``.

    Input columns: ``account``, ``cash`` (>= 0), ``pnl``; optional ``score`` (queue order,
    default ``pnl``), ``leverage`` (levered_pro_rata, min_max_leverage), ``adl_cap`` (β in
    [0, 1], capped_pro_rata, default 1). ``budget`` overrides ``theta``·D. Returns the input plus
    ``haircut`` (h), ``seized`` (x), ``equity_after`` and ``budget`` (B, the same on every row).

    >>> import adl, polars as pl
    >>> acc = pl.DataFrame({"account": [1, 2, 3], "cash": [0.0, 10.0, 10.0], "pnl": [-30.0, 40.0, 10.0]})
    >>> adl.allocate(acc, policy="pro_rata")["seized"].to_list()    # D = 30, U = 50: h = 0.6
    [0.0, 24.0, 6.0]
    """
    df = collect(accounts, "accounts")
    for name in ("account", "cash", "pnl"):
        if name not in df.columns:
            raise SchemaError(f"accounts: missing column {name!r}", name, None)
    if not (0.0 <= theta <= 1.0) or math.isnan(theta):
        raise InvalidInputError(f"theta: {theta} must be in [0, 1]", "theta", None)
    if budget is not None and not (budget >= 0 and math.isfinite(budget)):
        raise InvalidInputError(f"budget: {budget} must be a finite amount >= 0", "budget", None)
    # Ties go to the lower id: integers, or strings in their sorted order.
    account = account_codes(df["account"], text_ids=True)[0].astype(np.float64)
    cash = _column(df, "cash", low=0.0)
    pnl = _column(df, "pnl")
    w = np.maximum(pnl, 0.0)
    e = cash + pnl
    # Amounts near the float limit would turn sums into inf and haircuts into NaN: refuse.
    big = ~np.isfinite(e)
    if big.any():
        row = int(np.argmax(big))
        raise InvalidInputError(f"pnl[row {row}]: cash + pnl = {cash[row]!r} + {pnl[row]!r} overflows", "pnl", row)
    deficit = float(np.maximum(-e, 0.0).sum())
    for name, total in (("pnl", float(w.sum())), ("cash", deficit), ("cash", float(np.abs(e).sum()))):
        if not math.isfinite(total):
            raise InvalidInputError(f"{name}: the amounts are too large to sum in floating point", name, None)
    target = deficit * theta if budget is None else float(budget)   # B

    fills: dict[str, Callable[[float], Array]] = {
        "queue": lambda t: _queue(w, _column(df, "score") if "score" in df.columns else pnl, account, t),
        "pro_rata": lambda t: _water_fill(w, w, t),
        "capped_pro_rata": lambda t: _water_fill(w * cap, w, t),
        "levered_pro_rata": lambda t: _water_fill(w, _column(df, "leverage", low=0.0) * w, t),
        "min_max_leverage": lambda t: _min_max_leverage(w, e, _column(df, "leverage", low=0.0), account, t),
    }
    if policy not in fills:
        raise InvalidInputError(f"policy: {policy!r} is not one of {sorted(fills)}", "policy", None)
    if policy in ("levered_pro_rata", "min_max_leverage") and "leverage" not in df.columns:
        raise SchemaError(f"accounts: policy {policy!r} needs a 'leverage' column", "leverage", None)
    cap = _column(df, "adl_cap", low=0.0, high=1.0) if "adl_cap" in df.columns else np.ones_like(w)
    capacity = float((w * cap).sum()) if policy == "capped_pro_rata" else float(w.sum())
    seized = fills[policy](min(target, capacity))
    haircut = np.divide(seized, w, out=np.zeros_like(w), where=w > 0)
    return df.with_columns(
        haircut=pl.Series(haircut),
        seized=pl.Series(seized),
        equity_after=pl.Series(e - seized),
        budget=pl.lit(target, dtype=pl.Float64),
    )


@checked(b_needed=number(optional=True), need=number(optional=True))
def allocation_metrics(result: pl.DataFrame, *, b_needed: float | None = None,
                       need: float | None = None) -> dict[str, float]:
    """Metrics of an :func:`allocate` result (docs/model.md §4): ``deficit`` D, ``seized`` H,
    ``budget`` (B, the amount the allocation aimed at: the frame's ``budget`` column, else D),
    ``b_needed`` (the research model's ex-post need B_t^needed, docs/model.md §8, when given;
    NaN otherwise), ``overshoot`` = H − b_needed (H − budget when b_needed is not given),
    ``residual`` = D − H, ``max_haircut``, ``max_seized_pct_equity`` (max x/e over e > 0),
    ``accounts_hit``, ``ptsr`` = max(w − x)+ / (D − H) and ``pmr`` = max(w − x)+ /
    ((D − H)/D · max loss); NaN where a ratio is undefined. ``need`` is the deprecated name of
    ``b_needed``.

    >>> import adl, polars as pl
    >>> acc = pl.DataFrame({"account": [1, 2, 3], "cash": [0.0, 10.0, 10.0], "pnl": [-30.0, 40.0, 10.0]})
    >>> m = adl.allocation_metrics(adl.allocate(acc, policy="queue", theta=0.5))   # B = 15
    >>> (m["budget"], m["seized"], m["residual"], m["accounts_hit"], round(m["ptsr"], 4))    # 25 kept / 15
    (15.0, 15.0, 15.0, 1.0, 1.6667)
    """
    if need is not None:
        import warnings

        warnings.warn("allocation_metrics(need=...) is now b_needed=...", DeprecationWarning, stacklevel=2)
        b_needed = need if b_needed is None else b_needed
    for name in ("cash", "pnl", "seized", "haircut"):
        if name not in result.columns:
            raise SchemaError(f"result: missing column {name!r} (pass the frame allocate returned)", name, None)
    cash = result["cash"].cast(pl.Float64).to_numpy()
    pnl = result["pnl"].cast(pl.Float64).to_numpy()
    x = result["seized"].cast(pl.Float64).to_numpy()
    h = result["haircut"].cast(pl.Float64).to_numpy()
    w = np.maximum(pnl, 0.0)
    e = cash + pnl
    deficit = float(np.maximum(-e, 0.0).sum())
    seized = float(x.sum())
    budget = float(result["budget"][0]) if "budget" in result.columns and result.height else deficit
    residual = deficit - seized
    kept = float(np.maximum(w - x, 0.0).max()) if len(w) else 0.0
    max_loss = float(np.maximum(-e, 0.0).max()) if len(e) else 0.0
    nan = float("nan")
    positive = e > 0
    ptsr, pmr = ptsr_pmr(kept, residual, deficit, max_loss)
    return {
        "deficit": deficit,
        "seized": seized,
        "budget": budget,
        "b_needed": nan if b_needed is None else float(b_needed),
        "overshoot": seized - (budget if b_needed is None else float(b_needed)),
        "residual": residual,
        "max_haircut": float(h.max()) if len(h) else nan,
        "max_seized_pct_equity": float((x[positive] / e[positive]).max()) if positive.any() else nan,
        "accounts_hit": float((x > 0).sum()),
        "ptsr": nan if ptsr is None else ptsr,
        "pmr": nan if pmr is None else pmr,
    }
